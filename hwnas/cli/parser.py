"""The ``hwnas`` argument parser: one function per stage's commands."""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from hwnas.cli.option_keys import ACCURACY_KEYS, SPACE_KEYS, STRATEGY_KEYS
from hwnas.core.versions import __version__


def _space_option(text: str) -> tuple[str, int | float]:
    key, sep, value = text.partition("=")
    try:
        number: int | float = int(value) if value.lstrip("-").isdigit() else float(value)
    except ValueError:
        number = math.nan
    if not sep or not key or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"space option {text!r} is not KEY=NUMBER, e.g. C=16 or scale=0.25")
    return key, number


def _keys(table: dict[str, str]) -> str:
    return "; ".join(f"{name}: {keys}" for name, keys in table.items())


def _add_space_args(p: argparse.ArgumentParser, *, input_required: bool = True) -> None:
    p.add_argument("--space", required=True, help="search space: nb201, mobilenet, dppnet or a registered one (hwnas spaces lists them)")
    p.add_argument("--input", required=input_required, default="3x32x32", metavar="CxHxW",
                   help="input shape without batch, e.g. 1x28x28, 3x32x32, 3x224x224")
    p.add_argument("--classes", type=at_least(2, 1_000_000), default=10, help="number of output classes (default 10)")
    p.add_argument("--space-opt", type=_space_option, action="append", default=[], metavar="KEY=VALUE",
                   help=f"a macro setting of the space (repeatable); keys: {_keys(SPACE_KEYS)}")


MAX_EVALUATIONS = 10_000_000  # hwnas.optimize.config.MAX_EVALUATIONS (not imported: --help stays cheap)
SEED_MAX = 2**63 - 1  # numpy.random.default_rng takes any non-negative integer; keep it in int64
MAX_WORKERS = 8 * (os.cpu_count() or 1)  # more local processes than this only thrash the machine


def at_least(low: int, high: int | None = None) -> Any:
    """An argparse type: an integer in [``low``, ``high``], else one line naming the option and the limit."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{value} is above the maximum {high:,}")
        return value

    parse.__name__ = f"integer >= {low}" if high is None else f"integer in [{low}, {high}]"
    return parse


def SEED(text: str) -> int:  # noqa: N802 - argparse shows the name
    value = at_least(0)(text)
    if value > SEED_MAX:
        raise argparse.ArgumentTypeError(f"{value} is above the maximum seed {SEED_MAX}")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number of seconds")
    return value


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``hwnas search: error: ... (hwnas search --help)``, exit 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: error: {printable(message)} (see {self.prog} --help)\n")


def printable(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _add_precision_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("fp32", "int8", "fp16"),
                   help="the precision the device runs (overrides the spec's runtime.precision): int8 quantizes "
                        "every timed file statically (QDQ, per-channel weights)")
    p.add_argument("--calibration-data", metavar="DATASET",
                   help="int8: calibrate whole models on this dataset's train split, e.g. mnist5k "
                        "(default: the spec's runtime.calibration_data, else seeded random inputs)")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def _spaces_commands(sub: Any) -> None:
    p = sub.add_parser("spaces", help="list the search spaces and their sizes")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func="cmd_spaces")

    p = sub.add_parser("sample", help="print random architectures, one per line")
    _add_space_args(p, input_required=False)
    p.add_argument("--n", type=at_least(1, 1_000_000), default=1, help="how many (default 1)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the run's numpy Generator (default 0)")
    p.set_defaults(func="cmd_sample")

    p = sub.add_parser("describe", help="parameters, MACs (FLOPs = 2 x MACs) and block list of an architecture")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func="cmd_describe")

    p = sub.add_parser("build", help="export an architecture to a verified ONNX file")
    _add_space_args(p)
    p.add_argument("--arch", required=True, help="architecture string (quote it)")
    p.add_argument("--output", required=True, help="path of the .onnx file to write")
    p.add_argument("--opset", type=at_least(17, 23), default=17,
                   help="ONNX opset: 17 to 20 (torchscript exporter), 18 to 23 (dynamo) (default 17)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch exporter (default torchscript, much faster than dynamo; docs/benchmarks has the timing)")
    p.add_argument("--static-batch", action="store_true", help="fix the batch dimension at 1")
    p.set_defaults(func="cmd_build")

def _device_commands(sub: Any) -> None:  # long: one parser per command, each option documented
    for kind, what in (("devices", "device specs (--device NAME)"), ("objectives", "objective presets (--objectives NAME)")):
        p = sub.add_parser(kind, help=f"list the {what}: ./{kind}, the source tree, the installed package")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func="cmd_presets", kind=kind)

    p = sub.add_parser("profile", help="time every block of a space on a device into a latency table")
    p.add_argument("--device", required=True, help="device spec: a preset name (hwnas devices) or a TOML file")
    _add_space_args(p)
    _add_precision_args(p)
    p.add_argument("--out", help="table path (default latency_tables/<device>/<space>[-<option><value>]-<CxHxW>.json)")
    p.add_argument("--context-models", type=at_least(3, 100_000), default=None,
                   help="whole models timed alongside the blocks to fit the boundary correction "
                        "(default 40; 80 for int8, whose quantize/dequantize boundaries need more)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the context models and weights (default 0)")
    p.add_argument("--energy-model", action="store_true",
                   help="with meter 'none': estimate energy from MACs and memory traffic (labelled 'estimated')")
    p.add_argument("--force", action="store_true", help="re-profile from scratch instead of continuing the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="cmd_profile")

    p = sub.add_parser("predict", help="predict an architecture's latency (and energy) from a table")
    p.add_argument("--table", required=True, help="latency table (JSON)")
    p.add_argument("--arch", action="append", default=[], help="architecture string (quote it; repeatable)")
    p.add_argument("--archs", metavar="FILE", help="architectures, one per line ('-': standard input; blank lines "
                                                   "and lines starting with # are skipped)")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per architecture, with the statistic "
                                                       "and a per-block breakdown")
    p.add_argument("--allow-mismatch", action="store_true", help="use a table made on another device or runtime")
    p.add_argument("--now", action="store_true", help="time the table's sentinels on the device once (seconds) and "
                                                      "print each drift-corrected prediction beside the table's")
    p.set_defaults(func="cmd_predict")

    p = sub.add_parser("measure", help="time any ONNX model(s) on a device with its tables' protocol and statistic")
    p.add_argument("models", nargs="+", metavar="MODEL.onnx", help="ONNX files; several are timed interleaved")
    p.add_argument("--device", default="local-cpu", help="device preset or spec (default local-cpu)")
    p.add_argument("--json", action="store_true", help="print JSON lines, one per model")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the inputs and the measuring order (default 0)")
    p.set_defaults(func="cmd_measure")

    p = sub.add_parser("doctor", help="check a device's state before measuring: load, busy cores, clock, heat")
    p.add_argument("--device", required=True, help="device spec (TOML)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func="cmd_doctor")

    p = sub.add_parser("validate", help="measure random whole models and report the table's prediction error")
    p.add_argument("--table", required=True, help="latency table (JSON)")
    p.add_argument("--samples", type=at_least(3, 100_000), default=50, help="random models to measure (default 50)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the sampled models (default 0)")
    p.add_argument("--calibrate", action="store_true", help="fit scale and offset on these models and store them in the table")
    p.add_argument("--device", help="device spec to measure with (default: the one stored in the table)")
    p.add_argument("--allow-mismatch", action="store_true", help="use a table made on another device or runtime")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="cmd_validate")

def _search_commands(sub: Any) -> None:
    p = sub.add_parser("search", help="multi-objective search under a budget; writes the Pareto front")
    p.add_argument("--space", help="search space: nb201, mobilenet, dppnet or a registered one (hwnas spaces lists them)")
    p.add_argument("--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)")
    p.add_argument("--classes", type=at_least(2, 1_000_000), default=10, help="number of output classes (default 10)")
    p.add_argument("--space-opt", type=_space_option, action="append", default=[], metavar="KEY=VALUE",
                   help=f"a macro setting of the space (repeatable); keys: {_keys(SPACE_KEYS)}")
    p.add_argument("--objectives", help="objectives preset, e.g. objectives/accuracy-latency.toml")
    p.add_argument("--objective", action="append", default=[], metavar="NAME:min|max",
                   help="an objective instead of a preset (repeatable; all but the first max one are cheap)")
    p.add_argument("--budget", action="append", default=[], metavar="'METRIC<=X'",
                   help="a hard budget, e.g. 'latency_ms<=5', or a factor of --reference's value, 'latency_ms<=0.9x' "
                        "(repeatable)")
    p.add_argument("--reference", metavar="MODEL.onnx",
                   help="your own model as the yardstick: timed on the table's device beside its sentinels, its "
                        "latency (in the table's terms) is the budget, latency_ms<=1x unless --budget says otherwise")
    p.add_argument("--strategy", default="bo", help="bo, nsga2, progressive, evolution, rl or random (default bo)")
    p.add_argument("--strategy-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help=f"a strategy option (repeatable); keys: {_keys(STRATEGY_KEYS)}")
    p.add_argument("--evaluations", type=at_least(1, MAX_EVALUATIONS),
                   help="expensive evaluations to spend (default 100; with --time-budget alone, as many as fit)")
    p.add_argument("--time-budget", type=positive_seconds, metavar="SECONDS",
                   help="stop once the next evaluation would end past this much wall time (counted over "
                        "every --resume); with --evaluations, whichever comes first. With --accuracy train, "
                        "bo then weighs each candidate's expected improvement by its latency, a proxy for its "
                        "training time (--strategy-opt cost_exponent=1 unless given)")
    p.add_argument("--seed", type=SEED, default=0, help="the run's one seed (default 0)")
    p.add_argument("--run-dir", help="folder for the archive and the front")
    p.add_argument("--table", help="the device's latency table: provides latency_ms (and energy_mj)")
    p.add_argument("--device", help="without --table: the device (preset or spec) whose table is reused from "
                                    "latency_tables/, or profiled first when there is none for this space and input")
    p.add_argument("--benchmark", help="a tabular benchmark (CSV or Parquet) with an 'arch' column")
    p.add_argument("--metric", type=_key_value, action="append", default=[], metavar="NAME=COLUMN",
                   help="map a metric to a benchmark column, e.g. latency_ms=pi5_onnx_latency_ms")
    p.add_argument("--accuracy", help="accuracy estimator (default 'table' with --benchmark)")
    p.add_argument("--accuracy-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help=f"an accuracy estimator option (repeatable); keys: {_keys(ACCURACY_KEYS)}")
    p.add_argument("--scheduler", choices=("none", "asha"),
                   help="asha: multi-fidelity search, training epochs as the fidelity (successive halving with "
                        "multi-objective promotion), the default with --accuracy train unless --accuracy-opt epochs=N "
                        "fixes the training (asha then trains on half the training split unless --accuracy-opt "
                        "subset=... says otherwise); none: every candidate at the estimator's epochs")
    p.add_argument("--scheduler-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an asha option (repeatable); keys: min_epochs (default 1), max_epochs (4), eta (2)")
    p.add_argument("--time-limit", type=positive_seconds, help="seconds one expensive evaluation may take (then: failed)")
    p.add_argument("--allow-mismatch", action="store_true", help="use a latency table made on another device or runtime")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted search from its archive")
    p.add_argument("--executor", default="local", metavar="KIND",
                   help="where expensive evaluations run: local (default), processes:N, dask-local:N, "
                        "dask://HOST:PORT[?resources=GPU=1] (Dask needs: pip install 'hwnas[dask]')")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="cmd_search")

def _deploy_commands(sub: Any) -> None:
    p = sub.add_parser("retrain", help="retrain a search's front from scratch at full fidelity (val and test accuracy)")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--epochs", type=at_least(1, 10_000), default=15, help="training epochs (default 15)")
    p.add_argument("--dataset", help="dataset (default: the one the search used)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the weights and batch order (default 0)")
    p.add_argument("--limit", type=at_least(1, 100_000), help="retrain only N front members, spread along the front")
    p.set_defaults(func="cmd_retrain")

    p = sub.add_parser("export", help="export the front as verified ONNX models with cards, re-measured on the device")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--out", required=True, help="output folder for <name>.onnx, <name>.json, <name>.md, index.json")
    p.add_argument("--device", help="device spec to verify and measure on (default: the device of the run's table)")
    p.add_argument("--retrain", action="store_true", help="retrain each model from scratch at full fidelity first")
    p.add_argument("--epochs", type=at_least(1, 10_000), default=15, help="retraining epochs (default 15)")
    p.add_argument("--select", choices=("accuracy", "accuracy-1se", "knee", "extremes"),  # choice.SELECTIONS
                   help="which members first: accuracy (the most accurate within every budget), accuracy-1se (of "
                        "those within one standard error of the most accurate, the fastest), knee (the front's "
                        "knee) or extremes (spread between the front's ends); default: accuracy when the run has a "
                        "hard budget, else extremes")
    p.add_argument("--limit", type=at_least(1, 100_000), help="export only the first N members of --select")
    p.add_argument("--budget", action="append", default=[], metavar="'METRIC<=X'",
                   help="an extra budget to check the measured models against (repeatable)")
    p.add_argument("--seed", type=SEED, default=0, help="seed of retraining and export inputs (default 0)")
    p.add_argument("--threads", type=at_least(1, 4096), help="torch threads for retraining (default: torch's, one per core)")
    p.add_argument("--int8", action="store_true",
                   help="also write each model statically quantized (<name>.int8.onnx), measured and scored beside "
                        "fp32 (implied when the device's precision is int8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func="cmd_export")

    p = sub.add_parser("report", help="write a static HTML report (plots, sortable model table) for a run")
    p.add_argument("run_dir", help="a search's run directory")
    p.add_argument("--out", help="output folder (default RUN_DIR/report)")
    p.add_argument("--export", help="export folder (default: the last hwnas export of this run)")
    p.set_defaults(func="cmd_report")

def _bench_commands(sub: Any) -> None:
    p = sub.add_parser("bench", help="compare strategies on a tabular benchmark: many seeds, random beside each, "
                                     "performance over time ('hwnas bench import --help' converts indexed tables)")
    p.add_argument("--space", required=True, help="search space of the table's architectures")
    p.add_argument("--input", default="3x32x32", metavar="CxHxW", help="input shape (default 3x32x32)")
    p.add_argument("--table", required=True, help="tabular benchmark (CSV, CSV.gz or Parquet) with an 'arch' column")
    p.add_argument("--objective", action="append", default=[], metavar="COLUMN:min|max",
                   help="an objective column (repeatable); all but the first max one are cheap")
    p.add_argument("--cheap", help="comma-separated columns that are cheap (overrides the default)")
    p.add_argument("--budget", action="append", default=[], metavar="'COLUMN<=X'", help="a hard budget (repeatable)")
    p.add_argument("--strategies", default="random,nsga2,rl,evolution,progressive,bo", help="comma-separated (random is always added)")
    p.add_argument("--peers", help="comma-separated peers run the same way, e.g. optuna-tpe,optuna-nsga2 "
                                   "(needs the extra: pip install 'hwnas[peers]')")
    p.add_argument("--reference-evaluations", type=at_least(1, MAX_EVALUATIONS), metavar="N",
                   help="also run random search with N evaluations (random@N), e.g. 10x --evaluations")
    p.add_argument("--evaluations", type=at_least(1, MAX_EVALUATIONS), default=100, help="expensive evaluations per run (default 100)")
    p.add_argument("--seeds", type=at_least(1, 100_000), default=20, help="seeds 0..N-1 per strategy (default 20)")
    p.add_argument("--workers", type=at_least(1, MAX_WORKERS), help="processes (default: one per core)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func="cmd_bench")

    p = sub.add_parser("bench-real", help="real data: does a search beat MobileNetV2 widths, the largest model that "
                                          "fits and random search? (profile, search, retrain, measure; hours)")
    p.add_argument("--out", required=True, help="output folder (a rerun continues where it stopped)")
    p.add_argument("--device", default="local-cpu", help="device preset or spec (default local-cpu)")
    p.add_argument("--dataset", default="fashion-mnist", help="dataset (default fashion-mnist)")
    p.add_argument("--input", default="1x28x28", metavar="CxHxW", help="input shape (default 1x28x28)")
    p.add_argument("--scale", type=float, default=0.25, help="the mobilenet space's width scale (default 0.25)")
    p.add_argument("--reference-width", type=float, default=0.35, help="the MobileNetV2 width whose measured "
                                                                       "latency is the budget (default 0.35)")
    p.add_argument("--widths", default="0.25,0.35,0.5,0.75,1.0", help="MobileNetV2 widths compared (comma-separated)")
    p.add_argument("--strategy", default="bo", help="the strategy under test (default bo); random search runs beside it")
    p.add_argument("--strategy-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the strategy under test (repeatable), e.g. proxy=synflow for bo "
                        "(bo: cost_exponent=1 unless given, as hwnas search --accuracy train --time-budget)")
    p.add_argument("--time-budget", type=positive_seconds, default=1800.0, metavar="SECONDS",
                   help="each search's wall time (default 1800)")
    p.add_argument("--seeds", type=at_least(1, 1000), default=3, help="search seeds (default 3)")
    p.add_argument("--retrain-seeds", type=at_least(1, 1000), default=3, help="retraining seeds per model (default 3)")
    p.add_argument("--retrain-epochs", type=at_least(1, 10_000), default=10, help="the retraining recipe's epochs (default 10)")
    p.add_argument("--search-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help=f"an option of the searches' train estimator (repeatable; with asha, subset=0.5 unless "
                        f"given); keys: {ACCURACY_KEYS['train']}")
    p.add_argument("--no-claims", action="store_true", help="skip the check of what export claims against the trained "
                   "reference (by default the strategy searches with it as --reference)")
    p.add_argument("--scheduler", choices=("none", "asha"), help="the searches' scheduler (default asha, as hwnas "
                                                                 "search --accuracy train)")
    p.add_argument("--scheduler-opt", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="an asha option: min_epochs (default 1), max_epochs (4), eta (2)")
    p.set_defaults(func="cmd_bench_real")

    p = sub.add_parser("bench-import", help="convert a table indexed by NAS-Bench-201 number to arch strings "
                                            "(also: hwnas bench import)")
    p.add_argument("--input", required=True, help="CSV with an index column 0..15624")
    p.add_argument("--output", required=True, help="CSV to write, with an 'arch' column")
    p.add_argument("--index-column", default="index", help="name of the index column (default 'index')")
    p.set_defaults(func="cmd_bench_import")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hwnas",
        description="Hardware-aware multi-objective NAS: profile a device, search under its budget, "
        "export the Pareto front as verified ONNX models.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"hwnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _spaces_commands(sub)
    _device_commands(sub)
    _search_commands(sub)
    _deploy_commands(sub)
    _bench_commands(sub)
    for command in sub.choices.values():  # on every command, where users type them: hwnas search -q ...
        command.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
        command.add_argument("-v", "--verbose", action="count", default=0, help="more detail (debug messages)")
    return parser
