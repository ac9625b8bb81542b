"""A wall-time budget: the search stops once the next evaluation would end past it, keeps it to
within one evaluation's time, counts it over every resume, and says so."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.sources import BenchmarkMetrics, MetricSource
from hwnas.optimize.archive import Archive
from hwnas.optimize.config import ConfigError, RunConfig, Termination
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs

BENCH = Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz"
OBJ = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"])
EVAL_S = 0.12


class Slow(MetricSource):
    """An accuracy estimator that takes EVAL_S per candidate (a short training)."""

    provides = ("accuracy",)
    cheap = False

    def __init__(self, space, **_):
        self.table = BenchmarkMetrics(BENCH, space)

    def evaluate(self, archs):
        time.sleep(EVAL_S)
        return {"accuracy": self.table.evaluate(archs)["accuracy"]}


ACCURACY.register("test-slow", Slow)


def _config(budget_s: float, **kw: object) -> RunConfig:
    return make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, strategy="random",
                       strategy_options={"batch": 4}, evaluations=kw.pop("evaluations", None) or 100_000,
                       benchmark=str(BENCH), accuracy="test-slow", time_budget_s=budget_s, **kw)


def test_a_search_stops_within_one_evaluation_of_its_time_budget(tmp_path: Path) -> None:
    budget = 1.5
    result = run_search(_config(budget), tmp_path / "r", progress=False, log=lambda _m: None)
    assert result.stopped == "time budget" and result.config.time_budget_s == budget
    walls = [e.wall_s for e in result.evaluations if e.expensive]
    assert 3 <= result.used == len(walls) < budget / EVAL_S + 1
    # kept: no evaluation started once what was left could not hold one more
    assert result.seconds <= budget + max(walls) + 0.5
    with Archive(tmp_path / "r" / "archive.sqlite", readonly=True) as archive:
        assert archive.meta("time_spent_s") == pytest.approx(result.seconds, abs=0.5)
        assert archive.count() == result.used


def test_a_resumed_search_counts_the_time_already_spent(tmp_path: Path) -> None:
    run = tmp_path / "r"
    first = run_search(_config(0.8), run, progress=False, log=lambda _m: None)
    # the same budget again: already spent, nothing new runs
    again = run_search({}, run, resume=True, progress=False, log=lambda _m: None)
    assert again.stopped == "time budget" and again.used == first.used
    more = run_search({"time_budget_s": 2.0}, run, resume=True, progress=False, log=lambda _m: None)
    assert more.used > first.used and more.seconds <= 2.0 + EVAL_S * 4 + 0.5
    assert [e.arch.id for e in more.evaluations if e.expensive][:first.used] == \
        [e.arch.id for e in first.evaluations if e.expensive]  # the same trace, continued


def test_evaluations_and_time_whichever_comes_first(tmp_path: Path) -> None:
    result = run_search(_config(60.0, evaluations=5), tmp_path / "r", progress=False, log=lambda _m: None)
    assert result.used == 5 and result.stopped == "evaluations"
    assert Termination(seconds=10).count == 100_000 and Termination().count == 100
    with pytest.raises(ConfigError, match="time_budget_s must be a positive number"):
        _config(float(np.nan))


def test_the_command_line_takes_a_time_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.cli import main

    run = tmp_path / "c"
    args = ["search", "--space", "nb201", "--benchmark", str(BENCH), "--objective", "accuracy:max",
            "--objective", "pi5_onnx_latency_ms:min", "--strategy", "random", "--time-budget", "0.5",
            "--run-dir", str(run), "--no-progress"]
    assert main(args) == 0
    assert " s of the 0.5 s budget, front of " in capsys.readouterr().out
    assert main(["search", "--resume", str(run), "--time-budget", "1", "--no-progress"]) == 0
    with Archive(run / "archive.sqlite", readonly=True) as archive:
        assert RunConfig.from_dict(archive.meta("config")).time_budget_s == 1.0


def test_a_resumed_search_starts_nothing_it_could_not_finish(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # what was left is less than the slowest archived evaluation: a resume with it runs nothing
    monkeypatch.setattr(__import__(__name__), "EVAL_S", 0.6)
    run = tmp_path / "r"
    first = run_search(_config(1.5), run, progress=False, log=lambda _m: None)
    slowest = max(e.wall_s for e in first.evaluations if e.expensive)
    assert slowest >= 0.6
    again = run_search({"time_budget_s": first.seconds + 0.7 * slowest}, run, resume=True, progress=False,
                       log=lambda _m: None)
    assert again.used == first.used and again.stopped == "time budget"
