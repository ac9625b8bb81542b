"""search.Problem and minimize: one frozen description of what is optimised, one call that runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.optimize.config import ConfigError, RunConfig, make_config
from hwnas.optimize.objectives import parse_budget
from hwnas.optimize.minimize import minimize
from hwnas.optimize.problem import Problem, Sources

BENCH = Path(__file__).parents[1] / "data" / "nb201_canonical.csv.gz"


def _problem(**extra: object) -> Problem:
    return Problem.build("nb201", ["accuracy:max", "pi5_onnx_latency_ms:min"], budgets=["pi5_onnx_latency_ms<=3"],
                         sources=Sources(benchmark=BENCH, **extra))


def test_a_problem_is_frozen_typed_and_survives_its_run_config() -> None:
    problem = _problem()
    assert problem.sources.accuracy == "table" and Path(problem.sources.benchmark).is_absolute()
    assert [c.text for c in problem.objectives.constraints] == ["pi5_onnx_latency_ms<=3"]
    with pytest.raises(AttributeError):
        problem.space = "mobilenet"  # type: ignore[misc]
    config = RunConfig.of(problem, strategy="random", evaluations=7, seed=3)
    assert config.problem == problem
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))).problem == problem  # as the archive holds it
    with pytest.raises(TypeError, match="tabel"):  # a typed record: a misspelt source is Python's own error
        _problem(tabel="x.json")
    with pytest.raises(ConfigError, match="unknown setting 'tabel'"):  # the flat form names it too
        make_config(space="nb201", objectives=problem.objectives, tabel="x.json")


def test_feasibility_is_the_problems() -> None:
    problem = _problem()
    metrics = {"pi5_onnx_latency_ms": np.array([1.0, 3.0, 4.5, np.nan]), "accuracy": np.array([50.0, 60, 70, 80])}
    assert problem.feasible(metrics).tolist() == [True, True, False, False]
    assert problem.violation(metrics).tolist()[:3] == [0.0, 0.0, 0.5]
    assert problem.violation(metrics, among=["accuracy"]).tolist() == [0.0] * 4  # no budget on accuracy


def test_minimize_is_what_the_command_line_and_hwnas_search_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hwnas.cli import main
    import hwnas

    result = minimize(_problem(), "nsga2", evaluations=12, run_dir=tmp_path / "m", seed=5,
                      strategy_options={"pop_size": 4})
    assert result.used == 12 and all(m.feasible for m in result.front)
    via_api = hwnas.search(_problem(), tmp_path / "a", strategy="nsga2", strategy_options={"pop_size": 4},
                           evaluations=12, seed=5)
    assert main(["search", "--space", "nb201", "--benchmark", str(BENCH), "--objective", "accuracy:max", "--objective",
                 "pi5_onnx_latency_ms:min", "--budget", "pi5_onnx_latency_ms<=3", "--strategy", "nsga2",
                 "--strategy-opt", "pop_size=4", "--evaluations", "12", "--seed", "5", "--run-dir",
                 str(tmp_path / "c"), "--no-progress"]) == 0
    printed = capsys.readouterr().out  # the summary ends with the model to ship, and why
    best = max(via_api.front, key=lambda m: m["accuracy"])
    assert f"recommended: {best.arch}\n  why: the most accurate of the {len(via_api.front)} front members" in printed
    assert via_api.recommend() is not None and via_api.recommend().arch == best.arch  # type: ignore[union-attr]
    fronts = [[m["arch_id"] for m in json.loads((tmp_path / d / "front.json").read_text())["front"]] for d in "mac"]
    assert fronts[0] == fronts[1] == fronts[2] and fronts[0]
    assert via_api.used == result.used


def test_cheapness_is_declared_by_each_metric_source() -> None:
    from hwnas.evaluation.sources import BenchmarkMetrics, FactsMetrics
    from hwnas.optimize.evaluator import CandidateEvaluator
    from hwnas.optimize.objectives import ObjectiveError, objectives_from_specs
    from hwnas.spaces import get_space

    space = get_space("nb201", input_shape="3x32x32")
    objectives = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"]).with_budgets(
        [parse_budget("params<=1e6")])
    with pytest.raises(ObjectiveError, match="'params' is cheap is for its source"):
        objectives.is_cheap("params")  # a budget-only metric: not known until its source says
    bench = BenchmarkMetrics(BENCH, space, expensive=("accuracy",))  # the benchmark stands in for training
    evaluator = CandidateEvaluator(objectives, [bench, FactsMetrics(space)])
    assert evaluator.cheap_metrics == ["pi5_onnx_latency_ms", "params"] and evaluator.expensive_metrics == ["accuracy"]
    assert evaluator.objectives.is_cheap("params")
    # an objective declared cheap whose source trains for it is refused, naming both
    wrong = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"], cheap={"accuracy", "pi5_onnx_latency_ms"})
    with pytest.raises(ConfigError, match="'accuracy' is declared cheap, but its source computes it as expensive"):
        CandidateEvaluator(wrong, [bench])
