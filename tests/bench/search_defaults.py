"""Which configuration should ``hwnas search --accuracy train`` use by default? A script, not a test.

Each arm (a strategy, its options, the estimator's options and the scheduler) searches
``mobilenet`` (scale 0.25, 1x28x28) under the budget of ``hwnas bench-real`` (MobileNetV2 0.35's
measured latency) for the same wall time, over several search seeds. Each search's most accurate
pick is retrained with one recipe (4 epochs, SGD, cosine) on the training split and scored on the
test split, which no search reads. Searches and retrainings run one thread each, two workers side
by side, so every arm runs under the same conditions; the arms of one seed run at the same time.

    python tests/bench/search_defaults.py OUT prepare            # table and budget, on a quiet machine
    python tests/bench/search_defaults.py OUT work 0 2 & python tests/bench/search_defaults.py OUT work 1 2
    python tests/bench/search_defaults.py OUT report             # the table, per arm

Options after the verb: ``--seconds`` (600), ``--seeds`` (3), ``--dataset`` (fashion-mnist@10000),
``--retrain-seeds`` (2). Everything finished is kept in OUT; a rerun skips it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.bench.real import RealBenchPlan, _budget, _references
from hwnas.bench.stats import ci95
from hwnas.optimize.fidelity import ASHAOptions

# name -> (strategy, strategy options, train options, scheduler); the ASHA arms use bench-real's
# documented reduced protocol (1, 2 and 4 epochs on half the training split)
ASHA = ASHAOptions(min_epochs=1, max_epochs=4, eta=2)
ARMS: dict[str, tuple[str, dict[str, Any], dict[str, Any], ASHAOptions | None]] = {
    "bo-cost1": ("bo", {"cost_exponent": 1}, {"subset": 0.5}, ASHA),
    "bo": ("bo", {}, {"subset": 0.5}, ASHA),
    "random": ("random", {}, {"subset": 0.5}, ASHA),
    "bo-no-asha": ("bo", {}, {}, None),  # the estimator's own defaults (3 epochs, whole split), no scheduler
}


def _space() -> Any:
    from hwnas.spaces import get_space

    return get_space("mobilenet", input_shape="1x28x28", scale=0.25)


def prepare(out: Path) -> None:
    from hwnas.device.spec import load_device
    from hwnas.latency.profiler import profile

    spec = load_device("local-cpu")
    table = profile(spec, _space(), progress=False)
    plan = RealBenchPlan(widths=(0.35,))
    budget = _budget(plan, spec, _references(plan), out, print)
    (out / "table.json").write_text(json.dumps({"table": str(Path(table.path).resolve()), "budget_ms": budget}))


def _search(out: Path, arm: str, seed: int, seconds: float, dataset: str) -> dict[str, Any]:
    from hwnas.optimize.config import Termination
    from hwnas.optimize.minimize import minimize
    from hwnas.optimize.problem import Problem, Sources

    path = out / "picks" / f"{arm}-seed{seed}.json"
    if path.is_file():
        return json.loads(path.read_text())
    setup = json.loads((out / "table.json").read_text())
    strategy, options, train, fidelity = ARMS[arm]
    sources = Sources(table=setup["table"], accuracy="train",
                      accuracy_options={"dataset": dataset, "threads": 1, **train}, fidelity=fidelity)
    problem = Problem.build("mobilenet", "accuracy-latency", input_shape="1x28x28", space_options={"scale": 0.25},
                            budgets=[f"latency_ms<={setup['budget_ms']:.6g}"], sources=sources)
    run = out / "runs" / f"{arm}-seed{seed}"
    if run.exists():  # an interrupted search is started again: its clock would mix two conditions
        import shutil

        shutil.rmtree(run)
    result = minimize(problem, strategy, evaluations=Termination(seconds=seconds), run_dir=run, seed=seed,
                      strategy_options=options)
    rec = result.recommend("accuracy")
    rungs: dict[str, int] = {}
    for e in result.evaluations:
        if e.expensive and e.fidelity is not None:
            rungs[f"{e.fidelity:g}"] = rungs.get(f"{e.fidelity:g}", 0) + 1
    pick = {"arm": arm, "seed": seed, "evaluations": result.used, "rungs": rungs, "seconds": result.seconds,
            "arch": rec.arch if rec else None, "search_accuracy": rec.member["accuracy"] if rec else None,
            "predicted_ms": rec.member["latency_ms"] if rec else None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pick, indent=1))
    return pick


def _retrain(out: Path, pick: dict[str, Any], seeds: int, dataset: str) -> None:
    import torch

    from hwnas.data.datasets import load_dataset, make_splits, standardize
    from hwnas.evaluation.training import TrainingFailed, TrainSettings, accuracy_on, fit, normalised

    if pick["arch"] is None or len(pick.get("test_accuracy") or []) == seeds:  # nothing found, or done
        return
    space = _space()
    ds = load_dataset(dataset)
    splits = make_splits(ds, 0)
    x, y = normalised(ds, *standardize(ds, splits.train))
    torch.set_num_threads(1)
    acc = []
    for seed in range(seeds):
        try:
            model = fit(space.build(space.parse(pick["arch"]), seed=seed, calibrate_bn=False), x, y, splits.train,
                        TrainSettings(epochs=4, seed=seed))
            acc.append(accuracy_on(model, x, y, splits.test))
        except TrainingFailed:
            acc.append(float("nan"))
    pick["test_accuracy"] = acc
    (out / "picks" / f"{pick['arm']}-seed{pick['seed']}.json").write_text(json.dumps(pick, indent=1))


def work(out: Path, worker: int, workers: int, args: argparse.Namespace) -> None:
    jobs = [(arm, seed) for seed in range(args.seeds) for arm in ARMS]
    for i, (arm, seed) in enumerate(jobs):
        if i % workers == worker:
            t0 = time.perf_counter()
            pick = _search(out, arm, seed, args.seconds, args.dataset)
            _retrain(out, pick, args.retrain_seeds, args.dataset)
            print(f"{arm} seed {seed}: {pick['evaluations']} evaluations, pick {pick['predicted_ms']:.4f} ms, "
                  f"test {pick.get('test_accuracy')} ({time.perf_counter() - t0:.0f} s)", flush=True)


def report(out: Path) -> None:
    picks = [json.loads(p.read_text()) for p in sorted((out / "picks").glob("*.json"))]
    print("| arm | seeds | evaluations (mean) | pick's predicted ms (mean) | test accuracy % (mean over seeds, 95% interval) "
          "| minus random, paired by search seed |")
    print("|---|---|---|---|---|---|")
    by_arm = {arm: {p["seed"]: p for p in picks if p["arm"] == arm and p.get("test_accuracy")} for arm in ARMS}
    base = {s: float(np.nanmean(p["test_accuracy"])) for s, p in by_arm["random"].items()}
    for arm, got in by_arm.items():
        if not got:
            continue
        acc = {s: float(np.nanmean(p["test_accuracy"])) for s, p in got.items()}
        diff = [acc[s] - base[s] for s in acc if s in base]
        a, d = ci95(list(acc.values())), ci95(diff) if len(diff) > 1 else None
        dtext = "-" if arm == "random" or d is None else f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"
        print(f"| {arm} | {len(got)} | {np.mean([p['evaluations'] for p in got.values()]):.1f} "
              f"| {np.mean([p['predicted_ms'] for p in got.values()]):.3f} "
              f"| {a['mean']:.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}] | {dtext} |")
    for p in picks:
        print(p["arm"], p["seed"], p["evaluations"], p["rungs"], f"{p['predicted_ms']:.4f}", p["search_accuracy"],
              p.get("test_accuracy"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("verb", choices=("prepare", "work", "report"))
    parser.add_argument("worker", nargs="*", type=int)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--retrain-seeds", type=int, default=2)
    parser.add_argument("--dataset", default="fashion-mnist@10000")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.verb == "prepare":
        prepare(args.out)
    elif args.verb == "work":
        work(args.out, *args.worker, args)
    else:
        report(args.out)


if __name__ == "__main__":
    main()
