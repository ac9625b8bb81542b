"""Multi-fidelity search (ASHA with multi-objective promotion): the rungs, the promotion rule, every
rung's evaluation in the archive, identical traces across executors and resumes, and the sources
that can (and cannot) be evaluated at a number of epochs. The learning curves are synthetic: a
tabular benchmark's final accuracy, reached sooner by some architectures than by others."""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwnas.core.options import OptionError
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.archive import Archive
from hwnas.optimize.config import ConfigError
from hwnas.optimize.fidelity import ASHAOptions, SuccessiveHalving, latest_per_architecture, mo_order, parse_scheduler
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs
from hwnas.spaces import get_space

BENCH = Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz"
OBJ = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"])
EPOCHS = (1, 3, 9)


@pytest.fixture(scope="module")
def curves(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark with ``accuracy@1``, ``accuracy@3`` and ``accuracy@9`` columns: each
    architecture's accuracy climbs to its final value at its own pace (ranks cross on the way)."""
    out = tmp_path_factory.mktemp("curves") / "curves.csv"
    with gzip.open(BENCH, "rt") as f:
        rows = list(csv.DictReader(f))
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*rows[0], *(f"accuracy@{e}" for e in EPOCHS)])
        for r in rows:
            acc = float(r["accuracy"])
            tau = 1 + 6 * int(hashlib.sha256(r["arch"].encode()).hexdigest()[:8], 16) / 2**32
            w.writerow([*r.values(), *(f"{acc * (1 - 0.5 * math.exp(-(e - 1) / tau)):.4f}" if e < 9 else acc
                                       for e in EPOCHS)])
    return out


def _config(curves: Path, evaluations: int = 30, strategy: str = "bo", **kw: object):
    return make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, strategy=strategy,
                       strategy_options={"bo": {"initial": 4}, "nsga2": {"pop_size": 6}}.get(strategy, {}),
                       evaluations=evaluations, seed=5, benchmark=str(curves), fidelity=ASHAOptions(1, 9, 3), **kw)


def _rows(run: Path) -> list[tuple[str, float | None, str, float]]:
    with Archive(run / "archive.sqlite", readonly=True) as a:
        return [(r.arch_id, r.fidelity, r.status, round(r.metrics.get("accuracy", -1.0), 6)) for r in a.records()]


def _ev(name: str, acc: float, lat: float, epochs: float | None = 1, violation: float = 0.0, ok: bool = True) -> Evaluation:
    space = get_space("nb201", input_shape="3x32x32")
    # a stable seed per name (str hashes change per process, and two names could then share an architecture)
    arch = space.sample(np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)), 1)[0]
    return Evaluation(arch, {"accuracy": acc, "pi5_onnx_latency_ms": lat}, "complete" if ok else "failed",
                      None if ok else "diverged", violation, 0.0, True, 0.0, epochs)


# ----- the rungs and the promotion rule ------------------------------------------------------------

def test_rungs_grow_by_eta_and_end_at_the_maximum() -> None:
    assert ASHAOptions(1, 9, 3).rungs() == (1, 3, 9)
    assert ASHAOptions(1, 10, 3).rungs() == (1, 3, 9, 10)
    assert ASHAOptions(2, 8, 2).rungs() == (2, 4, 8)
    assert ASHAOptions(4, 4, 3).rungs() == (4,)
    with pytest.raises(OptionError, match="max_epochs 2 is below min_epochs 3"):
        ASHAOptions(3, 2, 3)
    with pytest.raises(OptionError, match="eta"):
        parse_scheduler("asha", {"eta": 1})
    with pytest.raises(OptionError, match="--scheduler asha"):
        parse_scheduler("none", {"eta": 3})
    assert parse_scheduler("asha", {"max_epochs": 27}) == ASHAOptions(1, 27, 2)


def test_mo_order_ranks_fronts_then_hypervolume_contribution_then_violation() -> None:
    objectives = OBJ
    evs = [_ev("dominated", 50, 5), _ev("fast", 60, 1), _ev("middle", 70, 2.9), _ev("accurate", 90, 3),
           _ev("over budget", 99, 0.5, violation=0.2), _ev("crowded", 69, 3.0)]
    order = [evs[i].arch.string for i in mo_order(evs, objectives)]
    names = {e.arch.string: n for e, n in zip(evs, ["dominated", "fast", "middle", "accurate", "over", "crowded"])}
    ranked = [names[a] for a in order]
    assert set(ranked[:3]) == {"fast", "middle", "accurate"}  # the first front
    # the extremes add more hypervolume than the member squeezed between them
    assert ranked.index("middle") == 2
    assert ranked[3:5] == ["crowded", "dominated"] and ranked[-1] == "over"


def test_asha_promotes_the_top_third_of_a_rung_once_and_never_a_failed_one() -> None:
    sh = SuccessiveHalving(OBJ, ASHAOptions(1, 9, 3))
    assert sh.levels == (1, 3, 9)
    sh.add(_ev("a", 60, 2))
    sh.add(_ev("b", 50, 3))
    assert sh.promotions() == []  # fewer than eta results: nothing to promote yet
    sh.add(_ev("failed", 0, 1, ok=False))
    assert sh.promotions() == []  # a failed result is not a result of its rung
    sh.add(_ev("c", 40, 4))
    promoted = sh.promotions()
    assert [(a.string, e) for a, e in promoted] == [(_ev("a", 0, 0).arch.string, 3)]
    assert sh.promotions() == []  # once
    for k, name in enumerate("defgh"):
        sh.add(_ev(name, 10 + k, 10))
    assert len(sh.promotions()) == 1  # 8 results: the top two, one already promoted
    assert sh.counts() == {1: 8, 3: 0, 9: 0}


def test_a_front_is_made_of_each_architectures_highest_complete_rung() -> None:
    low, high, failed = _ev("x", 50, 2, epochs=1), _ev("x", 80, 2, epochs=3), _ev("x", 0, 2, epochs=9, ok=False)
    assert latest_per_architecture([low, high, failed]) == [high]
    plain = [_ev("y", 1, 1, epochs=None), _ev("z", 2, 2, epochs=None)]
    assert latest_per_architecture(plain) == plain


# ----- a search -----------------------------------------------------------------------------------

def test_a_multi_fidelity_search_records_every_rung_and_promotes_only_what_ran_below(curves: Path, tmp_path: Path) -> None:
    result = run_search(_config(curves, 40), tmp_path / "r", progress=False, log=lambda _m: None)
    rows = _rows(tmp_path / "r")
    assert result.used == len(rows) == 40
    per_rung = {e: sum(1 for r in rows if r[1] == e) for e in EPOCHS}
    assert per_rung[1] > per_rung[3] > per_rung[9] >= 1, per_rung
    seen: dict[str, set[float]] = {}
    for arch_id, epochs, _, _ in rows:
        if epochs > 1:  # promoted: it ran at the rung below first
            assert EPOCHS[EPOCHS.index(epochs) - 1] in seen.get(arch_id, set())
        seen.setdefault(arch_id, set()).add(epochs)
    # each (architecture, rung) is trained once; accuracy after more epochs is what the curve says
    assert len({(r[0], r[1]) for r in rows}) == len(rows)
    front_epochs = {m["arch_id"]: m["epochs"] for m in result.front}
    assert all(front_epochs[a] == max(seen[a]) for a in front_epochs)


@pytest.mark.parametrize("strategy", ["random", "nsga2", "evolution"])
def test_every_strategy_runs_under_asha(curves: Path, tmp_path: Path, strategy: str) -> None:
    result = run_search(_config(curves, 24, strategy), tmp_path / "r", progress=False, log=lambda _m: None)
    assert result.used == 24 and any(e.fidelity == 3 for e in result.evaluations)


def test_a_resumed_or_extended_multi_fidelity_search_gives_the_uninterrupted_trace(curves: Path, tmp_path: Path) -> None:
    run_search(_config(curves, 36), tmp_path / "whole", progress=False, log=lambda _m: None)
    whole = _rows(tmp_path / "whole")
    run_search(_config(curves, 20), tmp_path / "cut", progress=False, log=lambda _m: None)
    run_search({"evaluations": 36}, tmp_path / "cut", resume=True, progress=False, log=lambda _m: None)
    assert _rows(tmp_path / "cut") == whole
    # killed mid-rung: the rows after the 25th are lost, the resumed run makes them again
    with sqlite3.connect(tmp_path / "cut" / "archive.sqlite") as db:
        db.execute("DELETE FROM evaluation WHERE seq > 25")
    (tmp_path / "cut" / "archive.sqlite.seal").unlink()
    result = run_search({}, tmp_path / "cut", resume=True, progress=False, log=lambda _m: None)
    assert _rows(tmp_path / "cut") == whole and result.used == 36


def test_a_process_pool_gives_the_local_multi_fidelity_trace(curves: Path, tmp_path: Path) -> None:
    config = _config(curves, 24, "random")
    run_search(config, tmp_path / "local", progress=False, log=lambda _m: None)
    run_search(config, tmp_path / "pool", progress=False, log=lambda _m: None, executor="processes:2")
    assert _rows(tmp_path / "pool") == _rows(tmp_path / "local")


def test_a_source_without_fidelity_is_refused(tmp_path: Path) -> None:
    config = make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, evaluations=5, benchmark=str(BENCH),
                         fidelity=ASHAOptions(1, 9, 3))
    with pytest.raises(ConfigError, match="learning-curve columns such as 'accuracy@1'"):
        run_search(config, tmp_path / "r", progress=False, log=lambda _m: None)


def test_rungs_the_benchmark_does_not_hold_are_refused(curves: Path, tmp_path: Path) -> None:
    config = make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, evaluations=5, benchmark=str(curves),
                         fidelity=ASHAOptions(1, 27, 3))
    with pytest.raises(ConfigError, match="the rungs need epochs 27"):
        run_search(config, tmp_path / "r", progress=False, log=lambda _m: None)


def test_the_command_line_runs_asha_and_says_what_each_rung_got(curves: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "hwnas", "search", "--space", "nb201", "--objective", "accuracy:max",
            "--objective", "pi5_onnx_latency_ms:min", "--benchmark", str(curves), "--evaluations", "20", "--no-progress"]
    done = subprocess.run([*base, "--scheduler", "asha", "--scheduler-opt", "max_epochs=9", "--scheduler-opt", "eta=3",
                           "--run-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bo: 20 evaluations (" in done.stdout and " at 3 epochs" in done.stdout
    wrong = subprocess.run([*base, "--scheduler-opt", "eta=3", "--run-dir", str(tmp_path / "s")], capture_output=True,
                           text=True, timeout=300)
    assert wrong.returncode == 2 and "--scheduler-opt needs --scheduler asha" in wrong.stderr


def test_a_training_search_defaults_to_the_benchmarked_configuration() -> None:
    from hwnas.optimize.defaults import strategy_defaults, train_sources_defaults

    # --accuracy train alone: ASHA over 1, 2 and 4 epochs, half the training split
    assert train_sources_defaults("train", {"dataset": "digits"}, None, {}) == \
        ({"subset": 0.5, "dataset": "digits"}, ASHAOptions(1, 4, 2))
    assert ASHAOptions().rungs() == (1, 2, 4)
    # what the user gives wins: a subset, no scheduler, other rungs
    assert train_sources_defaults("train", {"subset": 1.0}, "asha", {"max_epochs": 9}) == \
        ({"subset": 1.0}, ASHAOptions(1, 9, 2))
    assert train_sources_defaults("train", {}, "none", {}) == ({}, None)
    assert train_sources_defaults("train", {"epochs": 2}, None, {}) == ({"epochs": 2}, None)  # a fixed training
    # an estimator that does not train has no scheduler unless asked
    assert train_sources_defaults("supernet", {}, None, {}) == ({}, None)
    with pytest.raises(OptionError, match="needs --scheduler asha"):
        train_sources_defaults("table", {}, None, {"eta": 2})
    # bo's cost term: only for a training search under a wall-clock budget, and never over the user's
    assert strategy_defaults("bo", {}, "train", 1800.0) == {"cost_exponent": 1.0}
    assert strategy_defaults("bo", {"cost_exponent": "0"}, "train", 1800.0) == {"cost_exponent": "0"}
    assert strategy_defaults("bo", {}, "train", None) == {} == strategy_defaults("bo", {}, "table", 60.0)
    assert strategy_defaults("random", {}, "train", 1800.0) == {}


def test_the_command_line_search_records_the_training_defaults(tmp_path: Path) -> None:
    from hwnas.cli import main
    from hwnas.optimize import RunDir

    base = ["search", "--space", "nb201", "--input", "1x8x8", "--space-opt", "N=1", "--space-opt", "C=4",
            "--objective", "accuracy:max", "--objective", "params:min", "--accuracy", "train",
            "--accuracy-opt", "dataset=digits", "--accuracy-opt", "threads=1", "--evaluations", "2", "--no-progress"]
    assert main([*base, "--time-budget", "600", "--run-dir", str(tmp_path / "d")]) == 0
    config = RunDir(tmp_path / "d").config()
    assert config.fidelity == ASHAOptions(1, 4, 2) and config.accuracy_options["subset"] == 0.5
    assert config.strategy == "bo" and config.strategy_options["cost_exponent"] == 1.0
    # a fixed training length and no time budget: the single-fidelity search, no cost term
    assert main([*base, "--accuracy-opt", "epochs=1", "--run-dir", str(tmp_path / "f")]) == 0
    config = RunDir(tmp_path / "f").config()
    assert config.fidelity is None and "subset" not in config.accuracy_options
    assert "cost_exponent" not in config.strategy_options
