"""What each ``hwnas`` subcommand does (the parser is ``hwnas.cli.parser``)."""

from __future__ import annotations

import argparse
from collections import Counter
import json
import sys

import numpy as np

from hwnas.core.errors import InvalidInputShapeError
from hwnas.spaces import SPACES, SearchSpace, get_space


def _space(args: argparse.Namespace) -> SearchSpace:
    return get_space(args.space, input_shape=args.input, num_classes=args.classes, **dict(args.space_opt))


def cmd_spaces(args: argparse.Namespace) -> int:
    rows = []
    for name in SPACES.names():
        cls = SPACES.get(name)
        distinct = cls.n_distinct() if hasattr(cls, "n_distinct") else cls.size()
        rows.append({"name": name, "version": cls.version, "size": cls.size(), "distinct": distinct,
                     "genes": len(cls.cardinalities()), "description": cls.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    def count(n: int) -> str:
        return f"{n:,}" if n < 10**12 else f"{n:.3e}"

    print(f"{'space':<10} {'version':>7} {'architectures':>14} {'distinct':>14} {'genes':>5}  description")
    for r in rows:
        print(f"{r['name']:<10} {r['version']:>7} {count(r['size']):>14} {count(r['distinct']):>14} {r['genes']:>5}  {r['description']}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InvalidInputShapeError(f"--n must be >= 1, got {args.n}")
    space = _space(args)  # validates the input shape even though genotypes do not depend on it
    for arch in space.sample(np.random.default_rng(args.seed), args.n):
        print(arch.string)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from hwnas.spaces.facts import describe

    space = _space(args)
    arch = space.parse(args.arch)
    facts = describe(space, arch)
    if args.json:
        print(json.dumps({**facts.to_dict(), "space_version": space.version, "space_config": space.config()}, indent=2))
        return 0
    print(f"space      {space.name} (version {space.version})")
    print(f"arch       {arch.string}")
    print(f"id         {arch.id}")
    if arch.canonical != arch.string:
        print(f"canonical  {arch.canonical}")
    print(f"input      {args.input}")
    print(f"params     {facts.params:,}")
    print(f"MACs       {facts.macs:,} multiply-accumulates (fvcore); FLOPs {2 * facts.macs:,}")
    print(f"blocks     {len(facts.blocks)}")
    width = max(len(b.key) for b in facts.blocks)
    print(f"  {'#':>3}  {'key':<{width}}  {'params':>10}  {'MACs':>12}")
    for i, b in enumerate(facts.blocks):
        print(f"  {i:>3}  {b.key:<{width}}  {b.params:>10,}  {b.macs:>12,}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from hwnas.models.onnx_io import ParityCheck, check_writable, export_onnx

    space = _space(args)
    arch = space.parse(args.arch)
    check_writable(args.output)  # fail before spending time on the build
    model = space.build(arch, seed=args.seed)
    report = export_onnx(model, space.example_input(1, seed=args.seed), args.output, opset=args.opset,
                         dynamic_batch=not args.static_batch, exporter=args.exporter, parity=ParityCheck(seed=args.seed))
    print(f"wrote {report.path}: {space.name} {arch.string} (id {arch.id})")
    print(f"  opset {report.opset}, {report.exporter} exporter, onnx.checker passed, "
          f"onnxruntime ran it ({', '.join(report.providers)})")
    print(f"  max |torch - onnxruntime| = {report.max_abs_diff:.2e} over {report.n_parity_inputs} random inputs")
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """``hwnas devices`` / ``hwnas objectives``: the presets found by name, with their description."""
    from hwnas.core.presets import available
    from hwnas.core.tomlfile import read_toml
    from hwnas.core.errors import HwnasError

    rows = []
    for name, path in available(args.kind).items():
        try:
            description = str(read_toml(path, HwnasError, "preset").get("description", ""))
        except HwnasError as exc:
            description = f"(unreadable: {exc})"
        rows.append({"name": name, "path": str(path), "description": description})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}\n{'':<{width}}  {r['path']}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device, with_runtime
    from hwnas.latency.profiler import ProfileSettings, profile

    spec = with_runtime(load_device(args.device), precision=args.precision, calibration_data=args.calibration_data)
    space = _space(args)
    table = profile(spec, space, out=args.out, progress=not args.no_progress,
                    settings=ProfileSettings(context_models=args.context_models, seed=args.seed,
                                             energy_model=args.energy_model, force=args.force))
    fit = table.context.fit
    if fit:
        loo, raw = fit.leave_one_out, fit.raw_sum
        print(f"whole-model check on {fit.n_models} context models (leave-one-out): MAPE {loo['mape']:.1%}, "
              f"{loo['within_10']:.0%} within ±10%  (sum of isolated blocks: MAPE {raw['mape']:.1%}, "
              f"{raw['within_10']:.0%} within ±10%)")
    print(f"table: {table.path}  (statistic: {table.statistic})")
    return 0


def _arch_strings(args: argparse.Namespace) -> list[str]:
    """The architectures of ``--arch`` (repeatable) and ``--archs FILE`` (or ``-``), in order."""
    from hwnas.core.errors import UsageError
    from hwnas.core.files import read_text

    archs = list(args.arch)
    if args.archs:
        text = sys.stdin.read() if args.archs == "-" else read_text(args.archs, UsageError, "architectures file")
        archs += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not archs:
        raise UsageError("give --arch ARCH (repeatable) or --archs FILE ('-' for standard input)")
    return archs


def cmd_predict(args: argparse.Namespace) -> int:
    from hwnas.latency.predictor import Predictor
    from hwnas.latency.table import open_table

    table, space, accepted = open_table(args.table, allow_mismatch=args.allow_mismatch)
    archs = [space.parse(a) for a in _arch_strings(args)]  # every string checked before any work
    predictor = Predictor(table, space)
    pred = predictor.predict(archs)
    drift = None
    if args.now:  # time the table's sentinels on the device once: is it still as profiled?
        from hwnas.device.spec import spec_from_record
        from hwnas.device.connect import open_target
        from hwnas.latency.drift import measure_drift

        drift, _ = measure_drift(table, space, open_target(spec_from_record(table.device)))
    now = pred.latency_ms * drift.at(pred.latency_ms) if drift else None
    for i, arch in enumerate(archs):
        latency = float(pred.latency_ms[i])
        energy = None if pred.energy_mj is None else float(pred.energy_mj[i])
        if args.json:
            print(json.dumps({"latency_ms": latency, "statistic": table.statistic, "energy_mj": energy,
                              "latency_ms_now": None if now is None else float(now[i]),
                              "drift": drift.to_dict() if drift else None,
                              "energy_source": pred.energy_source, "energy_estimated": pred.energy_estimated,
                              "arch": arch.string, "arch_id": arch.id, "table": str(table.path),
                              "device": table.fingerprint.get("device"), "calibrated": table.calibration is not None,
                              "accepted_mismatches": accepted, "blocks": predictor.breakdown(arch)}))
            continue
        line = f"{latency:.4f} ms ({table.statistic})"
        if now is not None:
            line += f"  now {float(now[i]):.4f} ms"
        if energy is not None:
            line += f"  {energy:.4f} mJ ({'estimated' if pred.energy_estimated else pred.energy_source})"
        else:
            line += "  energy unavailable"
        print(line + (f"  {arch.string}" if len(archs) > 1 else ""))
    if drift is not None and not args.json:
        print(f"now: drift-corrected from sentinels timed once; {drift.describe()}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device
    from hwnas.latency.onnx_models import measure_models

    spec = load_device(args.device)
    rows = measure_models(spec, args.models, seed=args.seed)
    for r in rows:
        if args.json:
            print(json.dumps({**r.to_dict(), "device": spec.name}))
            continue
        energy = "" if r.energy_mj is None else f"  {r.energy_mj:.4f} mJ"
        memory = "" if r.peak_memory_kb is None else f"  {r.peak_memory_kb:,.1f} KiB peak  {r.model_kb:,.1f} KiB weights"
        print(f"{r.latency_ms:.4f} ms ({r.statistic}; median {r.p50_ms:.4f}, single runs spread {r.cv:.0%}"
              f"{'' if r.stable else ', UNSTABLE'}){energy}  {r.params:,} params  {r.macs / 1e6:.2f} M MACs{memory}  {r.path}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device
    from hwnas.device.connect import open_target

    target = open_target(load_device(args.device))
    target.check_provider()
    state, warnings = target.preflight()
    if args.json:
        print(json.dumps({"device": target.spec.name, "conditions": state, "warnings": warnings}, indent=2))
    else:
        busy = state.get("busy_cores")
        print(f"{target.spec.name}: load {state.get('load_1m')}, usable cores {state.get('usable_cores')}, "
              f"busy {busy if busy is not None else 'unknown'}, governor {state.get('governors') or 'unknown'}, "
              f"clock {state.get('freq_mhz') or '?'} of {state.get('max_freq_mhz') or '?'} MHz, "
              f"temperature {state.get('temperature_c') or 'unknown'} C")
        for line in warnings:
            print(f"warning: {line}")
        print("ready to measure" if not warnings else f"{len(warnings)} warning(s): measurements now may not match a table")
    return 1 if warnings else 0


def cmd_validate(args: argparse.Namespace) -> int:
    from hwnas.device.spec import load_device
    from hwnas.latency.validate import validate

    spec = load_device(args.device) if args.device else None
    r = validate(args.table, samples=args.samples, seed=args.seed, calibrate=args.calibrate, spec=spec,
                 allow_mismatch=args.allow_mismatch, progress=not args.no_progress)
    drift = r["drift"]
    print(f"drift: {drift['describe']}" + (f"\nwarning: {drift['warning']}" if drift["warning"] else ""))
    rows = [("hwnas predictor", "predictor"), ("  drift-corrected", "drift_corrected"),
            ("sum of isolated blocks", "raw_block_sum")]
    for name, key in rows:
        m = r[key]
        print(f"{name:<24} MAPE {m['mape']:6.1%}   within ±10% {m['within_10']:6.1%}   Spearman rho {m['spearman_rho']:.3f}")
    if r["unstable_models"] or r["unstable_table_entries"]:
        print(f"unstable: {len(r['unstable_models'])} of {r['samples']} measurements stayed unstable after "
              f"re-measurement; {len(r['unstable_table_entries'])} table entries are flagged unstable"
              + (f" (e.g. {r['unstable_table_entries'][0]})" if r["unstable_table_entries"] else ""))
    if r["unconfirmed_models"] or r["unconfirmed_table_entries"] or r["unconfirmed_context_models"]:
        print(f"changed while measured: {len(r['unconfirmed_models'])} of {r['samples']} models now, and "
              f"{len(r['unconfirmed_table_entries'])} entries and {len(r['unconfirmed_context_models'])} context models "
              "of the table, differed by more than the protocol's sweep_tol between their two fastest sweeps")
    if "calibration" in r:
        c = r["calibration"]
        print(f"calibration stored in the table: scale {c['scale']:.4f}, offset {c['offset_ms']:+.4f} ms; in-sample "
              f"MAPE {c['in_sample']['mape']:.1%}, within ±10% {c['in_sample']['within_10']:.0%} "
              "(validate again with another --seed for a held-out check)")
    print(f"{r['samples']} models, statistic {r['statistic']}, seed {r['seed']}; report {r['report_path']}"
          + (f", plot {r['plot_path']}" if r.get("plot_path") else ""))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from hwnas.optimize.config import ConfigError
    from hwnas.optimize.objectives import load_objectives, objectives_from_specs
    from hwnas.optimize.minimize import minimize, resume
    from hwnas.optimize.config import Termination
    from hwnas.cli.reference import against_reference, measure_reference_of
    from hwnas.optimize.defaults import strategy_defaults, train_sources_defaults
    from hwnas.optimize.problem import Problem, Sources

    if args.resume:
        result = resume(args.resume, changes=_resume_changes(args), executor=args.executor,
                        progress=not args.no_progress)
    else:
        missing = [f for f in ("space", "run_dir") if not getattr(args, f)]
        if missing:
            raise ConfigError(f"--{missing[0].replace('_', '-')} is required (or --resume RUN_DIR)")
        if bool(args.objectives) == bool(args.objective):
            raise ConfigError("give either --objectives PRESET.toml or --objective NAME:min|max (repeatable)")
        objectives = load_objectives(args.objectives) if args.objectives else objectives_from_specs(args.objective)
        if args.device and not args.table:  # one call from data to model: the device's table, made if need be
            from hwnas.device.spec import load_device
            from hwnas.latency.profiler import cached_table

            space = get_space(args.space, input_shape=args.input, num_classes=args.classes, **dict(args.space_opt))
            args.table = str(cached_table(load_device(args.device), space, progress=not args.no_progress).path)
        accuracy_options, fidelity = train_sources_defaults(args.accuracy, dict(args.accuracy_opt), args.scheduler,
                                                            dict(args.scheduler_opt))
        sources = Sources(table=args.table, benchmark=args.benchmark, columns=dict(args.metric), accuracy=args.accuracy,
                          accuracy_options=accuracy_options, time_limit_s=args.time_limit,
                          allow_mismatch=args.allow_mismatch, fidelity=fidelity)
        reference = measure_reference_of(args) if args.reference else None
        problem = Problem.build(args.space, objectives, input_shape=args.input, num_classes=args.classes,
                                space_options=dict(args.space_opt), budgets=args.budget, sources=sources,
                                reference=reference)
        stop = Termination(args.evaluations, args.time_budget)
        result = minimize(problem, args.strategy, evaluations=stop, run_dir=args.run_dir, seed=args.seed,
                          strategy_options=strategy_defaults(args.strategy, dict(args.strategy_opt), args.accuracy,
                                                             args.time_budget),
                          executor=args.executor,
                          progress=not args.no_progress)
    names = result.config.objectives.names
    state = "feasible" if result.feasible else "LEAST-VIOLATING (no candidate met the budget)"
    spent = f" in {result.seconds:.0f} s of the {result.config.time_budget_s:g} s budget" if result.config.time_budget_s else ""
    rungs = ""
    if result.config.fidelity:
        counts = Counter(int(e.fidelity) for e in result.evaluations if e.expensive and e.fidelity is not None)
        rungs = " (" + ", ".join(f"{counts[r]} at {r} epochs" for r in result.config.fidelity.rungs()) + ")"
    print(f"{result.config.strategy}: {result.used} evaluations{rungs}{spent}, front of {len(result.front)} ({state})")
    for m in result.front:
        print("  " + "  ".join(f"{n}={m[n]:.4g}" for n in names) + f"  {m['arch']}")
    print(f"run: {result.run_dir}/  (front.json, front.csv, front.png, history.csv, archive.sqlite)")
    rec = result.recommend()
    if rec:
        print(f"recommended: {rec.arch}\n  why: {rec.why} [predicted by the search; `hwnas export "
              f"{result.run_dir} --out DIR --retrain` measures it]")
        against = against_reference(result.config.reference, rec.member)
        if against:
            print(f"  against your reference: {against}")
    return 0


# options a resumed search compares with the run's stored value (equal: fine; else refused, but
# --evaluations, which extends or shortens the run); the rest of the run's options cannot be given
RESUME_COMPARED = {"--seed": "seed", "--strategy": "strategy", "--space": "space", "--input": "input_shape",
                   "--classes": "num_classes", "--time-limit": "time_limit_s", "--evaluations": "evaluations",
                   "--time-budget": "time_budget_s"}
RESUME_FREE = {"--resume", "--executor", "--no-progress", "-q", "--quiet", "-v", "--verbose"}


def _resume_changes(args: argparse.Namespace) -> dict[str, object]:
    """The settings a ``--resume`` command line gives explicitly: compared with the run's by the
    search; an option the run fixed at its start (objectives, budgets, sources) is refused here."""
    from hwnas.optimize.config import ConfigError

    given = [a.split("=", 1)[0] for a in args.argv if a.startswith("-")]
    changes: dict[str, object] = {}
    for flag in given:
        if flag in RESUME_COMPARED:
            field = RESUME_COMPARED[flag]
            changes[field] = getattr(args, {"input_shape": "input", "num_classes": "classes",
                                            "time_limit_s": "time_limit", "time_budget_s": "time_budget"}.get(field, field))
        elif flag not in RESUME_FREE:
            raise ConfigError(f"{flag}: a resumed run keeps the settings it was started with; give only --evaluations, "
                              "--time-budget, --executor or --no-progress with --resume (or start a new --run-dir)")
    return changes


def cmd_retrain(args: argparse.Namespace) -> int:
    from hwnas.deploy.retrain import retrain

    report = retrain(args.run_dir, epochs=args.epochs, dataset=args.dataset, seed=args.seed, limit=args.limit)
    ok = [m for m in report["models"] if m["status"] == "complete"]
    print(f"{len(ok)} of {len(report['models'])} front members retrained on {report['dataset']} "
          f"({report['settings']['epochs']} epochs); report {args.run_dir}/retrain.json")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from hwnas.deploy.export import ExportSettings, export_front

    settings = ExportSettings(retrain=args.retrain, epochs=args.epochs, limit=args.limit, seed=args.seed,
                              budgets=tuple(args.budget), threads=args.threads, int8=args.int8, select=args.select)
    index = export_front(args.run_dir, args.out, settings, device=args.device, argv=["hwnas", *args.argv],
                         progress=not args.no_progress)
    over = index["over_budget"]
    print(f"exported {index['exported']} of {index['front_size']} front members to {args.out}/ "
          f"(ONNX + cards, index.json), measured on {index['device']}"
          + (f"; {len(over)} BREAK THE BUDGET: {', '.join(over)}" if over else "; all within budget"))
    rec = index.get("recommended")
    if rec:
        print(f"recommended: {rec['name']}.onnx ({rec['arch']})\n  why: {rec['why']}")
        if rec.get("against_reference"):
            print(f"  against your reference: {rec['against_reference']} (both measured here)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from hwnas.deploy.report import write_report

    path = write_report(args.run_dir, out=args.out, export_dir=args.export)
    print(f"report: {path}")
    return 0


