"""``hwnas bench-real``: does a search find a better model than a user would pick by hand, on real
data, in the time a user waits? What a careful user would do, end to end:

1. profile the device for ``mobilenet`` (or reuse its table);
2. time MobileNetV2 at several widths, adapted to the input (``hwnas.models.reference``); the
   budget is the measured latency of one of them (width 0.35 by default);
3. search under that budget for a wall-clock time, several seeds, with the strategy under test and
   with random search (same estimator, same scheduler, same time);
4. pick the largest-MACs architecture under the budget from 3,000 random draws (the "largest model
   that fits");
5. retrain every compared model (each search's most accurate pick and, where it differs, the
   fastest within one standard error of it (``accuracy-1se``), the largest-MACs pick, every
   MobileNetV2 width) with one fixed recipe on the training split, several seeds, and score each on
   the test split (never seen by the searches);
6. time every compared model side by side in one interleaved pass;
7. write ``summary.json``, ``results.md`` (a table with the command) and ``accuracy-latency.png``.

Each finished search and retraining is kept in the output folder; a rerun continues where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.bench.stats import ci95
from hwnas.core.files import output_folder, read_json, write_atomic, write_json
from hwnas.core.log import say
from hwnas.core.options import Scalar
from hwnas.optimize.defaults import TRAIN_ACCURACY_OPTIONS, strategy_defaults
from hwnas.optimize.fidelity import ASHAOptions

__all__ = ["RealBenchPlan", "run_real_bench"]

SPACE = "mobilenet"


@dataclass(frozen=True)
class RealBenchPlan:
    """What the benchmark runs. ``search_options`` are the search's ``train`` estimator options
    (its dataset is ``dataset``); ``fidelity`` its multi-fidelity scheduler (None: none)."""

    dataset: str = "fashion-mnist"
    input_shape: str = "1x28x28"
    scale: float = 0.25
    reference_width: float = 0.35
    widths: tuple[float, ...] = (0.25, 0.35, 0.5, 0.75, 1.0)
    strategy: str = "bo"
    time_budget_s: float = 1800.0
    seeds: int = 3
    retrain_seeds: int = 3
    retrain_epochs: int = 10
    draws: int = 3000
    # as `hwnas search --accuracy train --time-budget` (hwnas.optimize.defaults)
    search_options: Mapping[str, Scalar] = field(default_factory=lambda: dict(TRAIN_ACCURACY_OPTIONS))
    fidelity: ASHAOptions | None = ASHAOptions()
    strategy_options: Mapping[str, Scalar] = field(default_factory=dict)  # the strategy under test's
    claims: bool = True  # search with the trained reference as --reference and check what export claims

    def __post_init__(self) -> None:  # bo's cost term, as a time-budgeted `hwnas search --accuracy train` has it
        object.__setattr__(self, "strategy_options",
                           strategy_defaults(self.strategy, self.strategy_options, "train", self.time_budget_s))


@dataclass
class _Model:
    """One compared model: its name, what it is, how to build it with seeded weights, its input."""

    name: str
    kind: str  # "search", "random search", "largest-MACs", "MobileNetV2"
    build: Callable[[int], Any]
    arch: str = ""
    predicted_ms: float | None = None
    seed: int | None = None  # the search seed that found it


def run_real_bench(plan: RealBenchPlan, out: str | Path, *, device: str = "local-cpu",
                   command: Sequence[str] = (), log: Callable[[str], None] = say) -> dict[str, Any]:
    """Run the benchmark into ``out`` (resumable); returns the summary also written there."""
    from hwnas.device.spec import load_device
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.profiler import profile
    from hwnas.spaces import get_space

    out = output_folder(out, "benchmark folder")
    started = time.perf_counter()
    spec = load_device(device)
    space = get_space(SPACE, input_shape=plan.input_shape, scale=plan.scale)
    log(f"1. latency table of {spec.name} for {SPACE} (scale {plan.scale:g}) at {plan.input_shape}")
    table = profile(spec, space, progress=False)
    predictor = Predictor(table, space)
    refs = _references(plan)
    budget_ms = _budget(plan, spec, refs, out, log)
    largest = _largest_macs(space, predictor, budget_ms, plan.draws)
    ref_name = f"mobilenetv2-{plan.reference_width:g}"
    reference = _user_reference(plan, table, space, next(r for r in refs if r.name == ref_name), out, log)
    picks = _searches(plan, space, str(table.path), budget_ms, out / "runs", log, reference)
    models = [*picks, largest, *refs]
    log(f"5. retraining {len(models)} models x {plan.retrain_seeds} seeds, {plan.retrain_epochs} epochs each")
    accuracy = _retrain(plan, models, out / "retrain.json", log)
    log("6. timing every compared model, interleaved")
    measured = _measure(spec, models, plan.input_shape, out / "models")
    summary = _summarize(plan, models, accuracy, measured, budget_ms)
    if reference is not None:
        from hwnas.bench.claims import check_claims, claim_of

        log("7. what export claims against the reference, beside retraining")
        claims = {}
        for m in (p for p in picks if p.kind == "search" and (out / "runs" / p.name).is_dir()):  # not the -1se picks
            claim = claim_of(out / "runs" / m.name, out / "exports" / m.name, plan.retrain_epochs, log)
            if claim and claim["arch"] == m.arch:  # the card is about the model the benchmark retrained
                claims[m.name] = claim
        summary["claims"] = check_claims(claims, accuracy, measured, ref_name)
    summary.update(command=list(command), device=spec.name, fingerprint=table.fingerprint,
                   wall_s=time.perf_counter() - started, date=time.strftime("%Y-%m-%d"), plan=_plan_dict(plan))
    write_json(out / "summary.json", summary)
    write_atomic(out / "results.md", results_markdown(summary))
    _plot(out / "accuracy-latency.png", summary)
    return summary


def _budget(plan: RealBenchPlan, spec: Any, refs: Sequence[_Model], out: Path, log: Callable[[str], None]) -> float:
    """The reference width's measured latency; kept in ``budget.json``, so that a continued or
    extended benchmark (more seeds) searches every seed under the same budget."""
    from hwnas.core.errors import HwnasError

    path = out / "budget.json"
    name = f"mobilenetv2-{plan.reference_width:g}"
    if path.is_file():
        kept = read_json(path, HwnasError, "benchmark budget")
        if kept.get("reference") == name and kept.get("input_shape") == plan.input_shape:
            log(f"2. budget kept from {path}: latency_ms <= {kept['latency_ms']:.4f} ({name}, measured {kept['date']})")
            return float(kept["latency_ms"])
    log(f"2. timing MobileNetV2 at widths {', '.join(f'{w:g}' for w in plan.widths)}")
    measured = _measure(spec, refs, plan.input_shape, out / "models")
    write_json(path, {"reference": name, "input_shape": plan.input_shape, "latency_ms": measured[name],
                      "all_ms": measured, "date": time.strftime("%Y-%m-%d %H:%M")})
    log(f"   budget: latency_ms <= {measured[name]:.4f} ({name}, measured)")
    return float(measured[name])


def _user_reference(plan: RealBenchPlan, table: Any, space: Any, ref: _Model, out: Path,
                    log: Callable[[str], None]) -> Callable[[], dict[str, Any]] | None:
    """The record of ``--reference`` for the searches (made when a search first needs it): the
    reference width trained once with the recipe, timed beside the table's sentinels and scored on
    the test split, as a user's own model would be. None without ``plan.claims``."""
    if not plan.claims:
        return None
    made: dict[str, Any] = {}

    def record() -> dict[str, Any]:
        if not made:
            from hwnas.bench.claims import trained_reference
            from hwnas.evaluation.reference import reference_record

            path = trained_reference(ref.name, ref.build, plan.dataset, plan.retrain_epochs, plan.input_shape,
                                     out / "models", log)
            made.update(reference_record(path, table, space, dataset=plan.dataset))
        return made
    return record


def _plan_dict(plan: RealBenchPlan) -> dict[str, Any]:
    d = asdict(plan)
    d["search_options"] = dict(plan.search_options)
    d["strategy_options"] = dict(plan.strategy_options)
    return d


def _references(plan: RealBenchPlan) -> list[_Model]:
    from hwnas.models.reference import mobilenet_v2

    out = []
    for w in sorted({*plan.widths, plan.reference_width}):
        ref = mobilenet_v2(w, plan.input_shape)
        out.append(_Model(ref.name, "MobileNetV2", ref.build))
    return out


def _largest_macs(space: Any, predictor: Any, budget_ms: float, draws: int) -> _Model:
    """The architecture with the most multiply-adds among ``draws`` random ones predicted within the budget."""
    from hwnas.evaluation.sources import FactsMetrics

    archs = space.sample_architectures(np.random.default_rng([0, 3000]), draws)
    latency = predictor.predict(archs).latency_ms
    macs = FactsMetrics(space).evaluate(archs)["macs"]
    fits = np.flatnonzero(latency <= budget_ms)
    if not len(fits):
        raise RuntimeError(f"none of {draws} random architectures is predicted within {budget_ms:.4f} ms")
    best = int(fits[np.argmax(macs[fits])])
    arch = archs[best]
    return _Model("largest-macs", "largest-MACs", lambda seed: space.build(arch, seed=seed, calibrate_bn=False),
                  arch.string, float(latency[best]))


def _searches(plan: RealBenchPlan, space: Any, table: str, budget_ms: float, runs: Path,
              log: Callable[[str], None], reference: Callable[[], dict[str, Any]] | None = None) -> list[_Model]:
    """Each seed's search with the strategy under test and with random search; their recommended
    models. The strategy's searches carry ``reference()`` as the user's model (the budget stays the
    measured one: both searches search under the same number)."""
    from hwnas.optimize.config import Termination
    from hwnas.optimize.minimize import minimize, resume
    from hwnas.optimize.problem import Problem, Sources

    sources = Sources(table=table, accuracy="train", accuracy_options={"dataset": plan.dataset, **plan.search_options},
                      fidelity=plan.fidelity)

    def problem(with_reference: bool) -> Problem:
        return Problem.build(SPACE, "accuracy-latency", input_shape=plan.input_shape, space_options={"scale": plan.scale},
                             budgets=[f"latency_ms<={budget_ms:.6g}"], sources=sources,
                             reference=reference() if with_reference and reference else None)
    picks = []
    for seed in range(plan.seeds):
        for strategy in dict.fromkeys([plan.strategy, "random"]):
            run = runs / f"{strategy}-seed{seed}"
            log(f"3. search {strategy}, seed {seed}, {plan.time_budget_s:g} s -> {run}")
            if (run / "archive.sqlite").is_file():
                result = resume(run, log=lambda _m: None)
            else:
                result = minimize(problem(strategy == plan.strategy), strategy,
                                  evaluations=Termination(seconds=plan.time_budget_s), run_dir=run,
                                  seed=seed, strategy_options=plan.strategy_options if strategy == plan.strategy else {})
            # the most accurate pick, and the fastest within one standard error of it when that differs
            for how, suffix in (("accuracy", ""), ("accuracy-1se", "-1se")):
                rec = result.recommend(how)
                if rec is None:
                    log(f"   {strategy} seed {seed}: no feasible front member; nothing to compare")
                    break
                if suffix and rec.arch == picks[-1].arch:
                    continue
                arch = space.parse(rec.arch)
                picks.append(_Model(f"{strategy}-seed{seed}{suffix}", "search" if strategy == plan.strategy
                                    else "random search", lambda s, a=arch: space.build(a, seed=s, calibrate_bn=False),
                                    arch.string, float(rec.member["latency_ms"]), seed))
                log(f"   {how}: {arch.string}: accuracy {rec.member['accuracy']:.2f} (search's estimate), "
                    f"latency {rec.member['latency_ms']:.4f} ms predicted")
    return picks


def _retrain(plan: RealBenchPlan, models: Sequence[_Model], path: Path, log: Callable[[str], None]) -> dict[str, list[float]]:
    """Test accuracy (%) of each model per retraining seed; kept in ``path`` as each one finishes."""
    from hwnas.core.errors import HwnasError
    from hwnas.core.threads import torch_threads
    from hwnas.data.datasets import load_dataset, make_splits, standardize
    from hwnas.evaluation.training import TrainingFailed, TrainSettings, accuracy_on, fit, normalised
    from hwnas.measure.conditions import threads_now

    done: dict[str, Any] = read_json(path, HwnasError, "retraining results") if path.is_file() else {}
    recipe = {"epochs": plan.retrain_epochs, "dataset": plan.dataset}
    if done and done.get("recipe") != recipe:
        raise HwnasError(f"{path}: made with another recipe ({done.get('recipe')}); use another --out")
    done["recipe"] = recipe
    ds = load_dataset(plan.dataset)
    splits = make_splits(ds, 0)
    x, y = normalised(ds, *standardize(ds, splits.train))
    results: dict[str, list[float]] = {}
    for m in models:
        for seed in range(plan.retrain_seeds):
            key = f"{m.name}|{m.arch}|{seed}"
            if key not in done:
                t0 = time.perf_counter()
                with torch_threads(threads_now()[0]):
                    try:
                        model = fit(m.build(seed), x, y, splits.train, TrainSettings(epochs=plan.retrain_epochs, seed=seed))
                        done[key] = accuracy_on(model, x, y, splits.test)
                    except TrainingFailed:
                        done[key] = float("nan")
                write_json(path, done)
                log(f"   {m.name} seed {seed}: test accuracy {done[key]:.2f}% ({time.perf_counter() - t0:.0f} s)")
            results.setdefault(m.name, []).append(float(done[key]))
    return results


def _measure(spec: Any, models: Sequence[_Model], input_shape: str, folder: Path) -> dict[str, float]:
    """Each model's latency (ms, the device protocol's statistic), all timed in one interleaved pass."""
    import torch

    from hwnas.core.threads import torch_threads
    from hwnas.latency.measurement import measure_files
    from hwnas.models.onnx_io import ParityCheck, export_onnx
    from hwnas.spaces import parse_shape

    shape = parse_shape(input_shape)
    folder = output_folder(folder, "models folder")
    items = []
    with torch_threads(1):
        for m in models:
            path = folder / f"{m.name}.onnx"
            example = torch.randn((spec.batch_size, *shape), generator=torch.Generator().manual_seed(0))
            export_onnx(m.build(0).eval(), example, path, dynamic_batch=False,
                        parity=ParityCheck(providers=(spec.runtime.provider,)))
            items.append((path, [shape]))
    stats, _ = measure_files(spec, spec.protocol, items, seed=0)
    return {m.name: float(s.value(spec.protocol.statistic)) for m, s in zip(models, stats)}


def _paired(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean difference a - b over retraining seeds (paired by seed) with its 95% interval."""
    return ci95([x - y for x, y in zip(a, b)])


def _summarize(plan: RealBenchPlan, models: Sequence[_Model], accuracy: dict[str, list[float]],
               measured: dict[str, float], budget_ms: float) -> dict[str, Any]:
    rows = [{"name": m.name, "kind": m.kind, "arch": m.arch, "seed": m.seed, "predicted_ms": m.predicted_ms,
             "measured_ms": measured[m.name], "test_accuracy": ci95(accuracy[m.name]),
             "test_accuracy_per_seed": accuracy[m.name]} for m in models]
    ref = accuracy[f"mobilenetv2-{plan.reference_width:g}"]
    comparisons = []
    for m in models:
        if m.kind not in ("search", "random search"):
            continue
        mine = accuracy[m.name]
        row: dict[str, Any] = {"model": m.name, "vs_reference": _paired(mine, ref),
                               "vs_largest_macs": _paired(mine, accuracy["largest-macs"])}
        if m.kind == "search":  # random search's pick by the same selection, else its most accurate
            rival = next((r for r in (m.name.replace(plan.strategy, "random", 1), f"random-seed{m.seed}")
                          if r in accuracy), None)
            if rival:
                row["vs_random_search"] = _paired(mine, accuracy[rival])
        # the widest MobileNetV2 it matches in accuracy, and how much faster it is than that one
        matched = [r for r in models if r.kind == "MobileNetV2" and np.mean(accuracy[r.name]) <= np.mean(mine)]
        if matched:
            best = max(matched, key=lambda r: np.mean(accuracy[r.name]))
            row["matches"] = {"model": best.name, "speedup": measured[best.name] / measured[m.name]}
        comparisons.append(row)
    return {"budget_ms": budget_ms, "models": rows, "comparisons": comparisons}


def _times(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x"


def _interval(c: Mapping[str, Any]) -> str:
    lo, hi = c["ci95"]
    return f"{c['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def results_markdown(summary: Mapping[str, Any]) -> str:
    """The benchmark's tables, as ``docs/benchmarks/`` holds them."""
    plan = summary["plan"]
    lines = [f"# Real data: {plan['dataset']} ({summary['date']})", "",
             f"Command: `{' '.join(summary['command'])}`", "",
             f"Device {summary['device']}; budget latency_ms <= {summary['budget_ms']:.4f} (MobileNetV2 "
             f"{plan['reference_width']:g}, measured); searches of {plan['time_budget_s']:g} s with `{plan['strategy']}` "
             f"and `random`, {plan['seeds']} seed(s); every model retrained {plan['retrain_epochs']} epochs, "
             f"{plan['retrain_seeds']} seed(s); test split; {summary['wall_s'] / 60:.0f} min in all.", "",
             "| model | kind | measured ms | predicted ms | test accuracy % (95% interval) |", "|---|---|---|---|---|"]
    for r in summary["models"]:
        acc = r["test_accuracy"]
        pred = "-" if r["predicted_ms"] is None else f"{r['predicted_ms']:.4f}"
        lines.append(f"| {r['name']} | {r['kind']} | {r['measured_ms']:.4f} | {pred} | {acc['mean']:.2f} "
                     f"[{acc['ci95'][0]:.2f}, {acc['ci95'][1]:.2f}] |")
    lines += ["", "| found model | minus MobileNetV2 ref (points) | minus largest-MACs | minus random search "
              "| matches (speed-up) |", "|---|---|---|---|---|"]
    for c in summary["comparisons"]:
        rnd = _interval(c["vs_random_search"]) if "vs_random_search" in c else "-"
        match = f"{c['matches']['model']} ({c['matches']['speedup']:.2f}x)" if "matches" in c else "-"
        lines.append(f"| {c['model']} | {_interval(c['vs_reference'])} | {_interval(c['vs_largest_macs'])} | {rnd} "
                     f"| {match} |")
    if summary.get("claims"):
        lines += ["", "What `hwnas export --retrain` claimed against the trained reference (one seed, test-split "
                  "interval), beside retraining both over the seeds:", "",
                  "| found model | claimed points (95% interval) | retrained points | in the interval | "
                  "claimed speed-up | measured speed-up |", "|---|---|---|---|---|---|"]
        for c in summary["claims"]:
            lo, hi = c["claimed_ci95"]
            lines.append(f"| {c['model']} | {c['claimed_points']:+.2f} [{lo:+.2f}, {hi:+.2f}] | "
                         f"{_interval(c['retrained_points'])} | {'yes' if c['in_interval'] else 'no'} | "
                         f"{c['claimed_speedup']:.2f}x | {_times(c['measured_speedup'])} |")
    return "\n".join(lines) + "\n"


def _plot(path: Path, summary: Mapping[str, Any]) -> None:
    from hwnas.core.plots import add_legend, new_axes, save_figure

    fig, ax = new_axes(6.4, 4.8)
    markers = {"search": "o", "random search": "s", "largest-MACs": "^", "MobileNetV2": "D"}
    for kind, marker in markers.items():
        rows = [r for r in summary["models"] if r["kind"] == kind]
        if rows:
            ax.errorbar([r["measured_ms"] for r in rows], [r["test_accuracy"]["mean"] for r in rows],
                        yerr=[[r["test_accuracy"]["mean"] - r["test_accuracy"]["ci95"][0] for r in rows],
                              [r["test_accuracy"]["ci95"][1] - r["test_accuracy"]["mean"] for r in rows]],
                        fmt=marker, label=kind, capsize=3)
    ax.axvline(summary["budget_ms"], color="grey", linestyle="--", label="budget")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("test accuracy (%)")
    add_legend(ax)
    save_figure(fig, path)
