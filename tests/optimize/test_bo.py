"""The model-based strategy (issue 22): exact acquisition, surrogates, a feasible pool, resume by
replay, a clear win over random search on a table where accuracy is a known function of the
genes, the drawn pools of the large spaces, and the Optuna peers beside it."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from pymoo.indicators.hv import HV

from hwnas.bench import BenchPlan, load_problem, run_bench, scores, tabular_problem
from hwnas.cli import main
from hwnas.core.errors import HwnasError
from hwnas.optimize.archive import Archive
import hwnas.optimize.loop as search_module
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs, parse_budget
from hwnas.optimize.strategies import STRATEGIES
from hwnas.optimize.strategies import acquisition
from hwnas.optimize.strategies.acquisition import expected_hv_improvement, expected_improvement
from hwnas.optimize.strategies.surrogates import SURROGATES, make_surrogate
from hwnas.optimize.strategies.base import StrategyError
from hwnas.spaces import NB201Space, get_space

BENCH = Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz"
OBJ = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"])


def _bo_config(seed: int = 0, evaluations: int = 20, budgets=(), **options) -> dict:
    return make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, budgets=list(budgets), strategy="bo",
                       strategy_options={"initial": 5, **options}, evaluations=evaluations, seed=seed,
                       benchmark=str(BENCH))


def _trace(run: Path) -> list[tuple[str, str, bool]]:
    with Archive(run / "archive.sqlite") as a:
        return [(r.arch, r.status, r.expensive) for r in a.records()]


# ----- acquisition ---------------------------------------------------------------------------
def _mc_ehvi(cheap: np.ndarray, mean: float, sd: float, front: np.ndarray, ref: np.ndarray, n: int = 40_000) -> float:
    """Monte Carlo EHVI with pymoo's hypervolume: the definition, computed the slow way."""
    rng = np.random.default_rng(0)
    hv = HV(ref_point=ref)
    base = hv(front)
    ys = rng.normal(mean, sd, size=n)
    # HVI is piecewise linear in y: interpolate it on a fine grid instead of n HV calls
    grid = np.linspace(ys.min(), ys.max(), 400)
    hvi = [hv(np.vstack([front, [y, *cheap]])) - base for y in grid]
    return float(np.mean(np.interp(ys, grid, hvi)))


@pytest.mark.parametrize("k", [1, 2])
def test_ehvi_is_the_expected_hypervolume_improvement(k: int) -> None:
    rng = np.random.default_rng(k)
    front = rng.uniform(0, 1, size=(6, 1 + k))
    front = front[np.argsort(front[:, 0])]
    ref = np.full(1 + k, 1.1)
    cands = rng.uniform(0, 1, size=(5, k))
    mean, sd = rng.uniform(0, 1, 5), rng.uniform(0.05, 0.4, 5)
    got = expected_hv_improvement(cands, mean, sd, front[:, 1:], front[:, 0], lower=np.zeros(k),
                                  ref=ref, rng=np.random.default_rng(0))
    want = [_mc_ehvi(c, m, s, front, ref) for c, m, s in zip(cands, mean, sd)]
    np.testing.assert_allclose(got, want, rtol=0.02, atol=1e-4)
    # an empty front: the whole box above the candidate, up to the reference point
    alone = expected_hv_improvement(cands[:1], mean[:1], np.full(1, 1e-9), np.zeros((0, k)), np.zeros(0),
                                    lower=np.zeros(k), ref=ref, rng=np.random.default_rng(0))
    assert alone[0] == pytest.approx(np.prod(1.1 - cands[0]) * (1.1 - mean[0]), rel=1e-6)


def test_ehvi_samples_the_cheap_region_when_the_grid_is_too_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    front = rng.uniform(0, 1, size=(8, 3))
    cands, mean, sd = rng.uniform(0, 1, size=(4, 2)), rng.uniform(0, 1, 4), rng.uniform(0.05, 0.3, 4)
    kw = dict(lower=np.zeros(2), ref=np.full(3, 1.1))
    exact = expected_hv_improvement(cands, mean, sd, front[:, 1:], front[:, 0], rng=np.random.default_rng(0), **kw)
    monkeypatch.setattr(acquisition, "MAX_CELLS", 4)
    monkeypatch.setattr(acquisition, "MC_POINTS", 200_000)
    sampled = expected_hv_improvement(cands, mean, sd, front[:, 1:], front[:, 0], rng=np.random.default_rng(0), **kw)
    np.testing.assert_allclose(sampled, exact, rtol=0.03, atol=2e-4)


def test_expected_improvement_matches_its_closed_form_limits() -> None:
    assert expected_improvement(1.0, np.array([0.0]), np.array([1e-12]))[0] == pytest.approx(1.0)
    assert expected_improvement(0.0, np.array([0.0]), np.array([1.0]))[0] == pytest.approx(1 / np.sqrt(2 * np.pi))
    assert expected_improvement(0.0, np.array([5.0]), np.array([0.1]))[0] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", SURROGATES.names())
def test_surrogates_learn_a_function_and_know_where_they_have_not_looked(name: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(80, 4))
    y = 3 * X[:, 0] + X[:, 1] ** 2
    model = make_surrogate(name, 7).fit(X, y)
    inside = rng.uniform(-1, 1, size=(200, 4))
    mean, sd = model.predict(inside)
    assert np.corrcoef(mean, 3 * inside[:, 0] + inside[:, 1] ** 2)[0, 1] > 0.9 and np.all(sd > 0)
    far = np.full((1, 4), 6.0)
    assert model.predict(far)[1][0] >= np.median(sd)  # no more certain far away than among the data
    again = make_surrogate(name, 7).fit(X, y).predict(inside)
    np.testing.assert_array_equal(again[0], mean)  # a seeded fit is a deterministic function
    with pytest.raises(HwnasError, match="unknown surrogate"):
        make_surrogate("bogus", 0)


# ----- the strategy in the loop ----------------------------------------------------------------
def test_nothing_infeasible_is_proposed_let_alone_evaluated(tmp_path: Path) -> None:
    budget = parse_budget("pi5_onnx_latency_ms<=2")
    for batch in (1, 4):
        run = tmp_path / f"b{batch}"
        result = run_search(_bo_config(evaluations=16, budgets=(budget,), batch=batch), run, progress=False)
        records = _trace(run)
        assert len(records) == 16 and all(status == "complete" and expensive for _, status, expensive in records)
        assert all(m["pi5_onnx_latency_ms"] <= 2 for m in result.front) and result.feasible
        assert len({a for a, _, _ in records}) == 16  # nothing asked twice


def test_a_crashed_bo_search_resumes_by_replay_to_the_uninterrupted_trace(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    reference = run_search(_bo_config(seed=3, evaluations=18, batch=3), tmp_path / "ref", progress=False)
    real = search_module.CandidateEvaluator.expensive
    calls = {"n": 0}

    def crash_after_ten(self, arch, epochs=None):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt  # the process dies in the middle of a batch
        return real(self, arch, epochs)

    monkeypatch.setattr(search_module.CandidateEvaluator, "expensive", crash_after_ten)
    with pytest.raises(KeyboardInterrupt):
        run_search(_bo_config(seed=3, evaluations=18, batch=3), tmp_path / "run", progress=False)
    assert 0 < len(_trace(tmp_path / "run")) < 18
    monkeypatch.setattr(search_module.CandidateEvaluator, "expensive", real)
    resumed = run_search({}, tmp_path / "run", resume=True, progress=False, log=lambda _m: None)
    assert _trace(tmp_path / "run") == _trace(tmp_path / "ref")
    assert resumed.front == reference.front


def _synthetic_table(path: Path) -> None:
    """Every nb201 class, accuracy a known additive function of where each operation sits on a
    live edge (plus a little noise), latency another: some placements buy accuracy cheaply,
    others dearly, so the front is made of specific cells that random draws rarely hit."""
    rng = np.random.default_rng(11)
    space = get_space("nb201", input_shape="3x32x32")
    archs = NB201Space.distinct_architectures(10**6)
    live_ops = space.surrogate_features(np.array([a.genes for a in archs]))[:, :30]  # one-hot of live edges' ops
    gain = rng.uniform(0, 3, size=30)
    cost = rng.uniform(0, 2, size=30)
    gain[::5], cost[::5] = 0.0, 0.0  # 'none' adds nothing
    acc = 70 + live_ops @ gain + rng.normal(0, 0.2, len(archs))
    lat = 1 + live_ops @ cost + rng.uniform(0, 0.1, len(archs))
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "accuracy", "lat"])
        w.writerows([a.string, f"{x:.4f}", f"{y:.4f}"] for a, x, y in zip(archs, acc, lat))


def test_a_cost_exponent_divides_the_expected_improvement_by_the_relative_latency() -> None:
    from hwnas.optimize.strategies.bo import BayesianOptimization, BOOptions

    space = get_space("nb201", input_shape="3x32x32")
    objectives = OBJ.with_budgets([parse_budget("pi5_onnx_latency_ms<=3")]).resolved(lambda m: m != "accuracy")
    archs = space.sample(np.random.default_rng(0), 3)
    # three candidates with the same predicted accuracy; the second is the cheapest
    pool = {"archs": archs, "F": np.array([[2.0], [0.5], [1.0]])}
    mean, sd = np.full(3, -1.0), np.full(3, 0.5)
    picks = {}
    for exponent in (0.0, 1.0):
        bo = BayesianOptimization(space, objectives, np.random.default_rng(0), BOOptions(cost_exponent=exponent),
                                  cheap=lambda a: {})
        assert bo.acquisition == "ei"
        picks[exponent] = bo._greedy(pool, np.array([[1.0]]), np.array([0.0]), mean, sd, y_range=(-1.0, 1.0))[0]
        cost = bo._relative_cost(pool)
        assert np.allclose(cost, [2.0, 0.5, 1.0] if exponent else 1.0)  # over the pool's median latency
    assert picks[0.0] == archs[0] and picks[1.0] == archs[1]  # a tie goes to pool order; a cost breaks it


def test_bo_beats_random_search_clearly_where_accuracy_follows_the_genes(tmp_path: Path) -> None:
    table = tmp_path / "synthetic.csv"
    _synthetic_table(table)
    out = tmp_path / "bench"
    summary = run_bench(tabular_problem("nb201", table, ["accuracy:max", "lat:min"]),
                        BenchPlan(["bo"], 30, 4, strategy_options={"bo": {"initial": 8}}),
                        out, workers=2, plots=False)
    bo, rnd = summary["strategies"]["bo"]["final"], summary["strategies"]["random"]["final"]
    # measured: forest regret 0.53x random's and HV +0.09; gp 0.32x and +0.13
    assert bo["regret"]["mean"] < 0.7 * rnd["regret"]["mean"]
    assert bo["hv"]["mean"] > rnd["hv"]["mean"] + 0.05


def test_bo_draws_pools_for_large_spaces_with_params_and_flops() -> None:
    from hwnas.evaluation.sources import Evaluation, FactsMetrics

    for name, shape, limit in (("mobilenet", "1x28x28", 2e6), ("dppnet", "1x8x8", 9e4)):  # about the median
        space = get_space(name, input_shape=shape)
        budget = parse_budget(f"params<={limit:g}")
        objectives = objectives_from_specs(["accuracy:max", "params:min"]).with_budgets([budget])
        facts = FactsMetrics(space)
        strategy = STRATEGIES.get("bo").create(space, objectives, np.random.default_rng(0),
                                               {"pool": 12, "initial": 3, "batch": 2}, cheap=facts.evaluate)
        assert strategy.fixed_pool is None  # too many to list: pools are drawn
        asked: set[str] = set()
        for _ in range(3):
            batch = strategy.ask()
            assert batch and not asked & {a.id for a in batch}
            asked |= {a.id for a in batch}
            params = facts.evaluate(batch)["params"]
            assert np.all(params <= limit)  # the budget filtered the pool
            strategy.tell([Evaluation(a, {"accuracy": float(80 + p / 1e4), "params": float(p)}, expensive=True)
                           for a, p in zip(batch, params)])
        assert strategy.state()["observed"] == len(asked) >= 6


def test_two_expensive_objectives_use_a_random_scalarisation_per_ask(tmp_path: Path) -> None:
    objectives = objectives_from_specs(["accuracy:max", "pi5_onnx_energy_mj:min", "pi5_onnx_latency_ms:min"],
                                       cheap={"pi5_onnx_latency_ms"})
    cfg = make_config(space="nb201", input_shape="3x32x32", objectives=objectives, strategy="bo",
                      strategy_options={"initial": 4, "batch": 2}, evaluations=12, seed=1, benchmark=str(BENCH))
    result = run_search(cfg, tmp_path / "a", progress=False)
    again = run_search(cfg, tmp_path / "b", progress=False)
    assert result.used == 12 and result.front and _trace(tmp_path / "a") == _trace(tmp_path / "b")
    assert len({a for a, _, _ in _trace(tmp_path / "a")}) == 12 and again.front == result.front


def test_bo_options_are_checked() -> None:
    space = get_space("nb201", input_shape="3x32x32")
    cls = STRATEGIES.get("bo")
    with pytest.raises(HwnasError, match="cheap-metric function"):
        cls(space, OBJ, np.random.default_rng(0))
    for bad, match in (({"batch": 0}, "batch=0: must be in"), ({"surrogate": "svm"}, "not one of forest"),
                       ({"acquisition": "ucb"}, "not one of auto, ehvi, ei"), ({"initial": "x"}, "initial='x': not a number"),
                       ({"warp": "maybe"}, "give 1 or 0"), ({"pol": 3}, "unknown option 'pol'")):
        with pytest.raises(StrategyError, match=match):
            cls.create(space, OBJ, np.random.default_rng(0), bad, cheap=lambda a: {})
    assert cls.parse_options({"warp": "false", "batch": 2}) == cls.Options(batch=2, warp=False)


# ----- peers ---------------------------------------------------------------------------------
def test_optuna_peers_run_beside_hwnas_with_the_same_trace_format(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "b"
    summary = run_bench(tabular_problem("nb201", BENCH, ["accuracy:max", "pi5_onnx_latency_ms:min"]),
                        BenchPlan(["random"], 12, 2, peers=["optuna-tpe", "optuna-nsga2"], reference_evaluations=40),
                        out, workers=2, plots=False)
    assert set(summary["strategies"]) == {"random", "optuna-tpe", "optuna-nsga2", "random@40"}
    assert summary["strategies"]["optuna-tpe"]["peer"] and not summary["strategies"]["random"]["peer"]
    assert summary["strategies"]["random@40"]["evaluations"] == 40
    ours = (out / "traces" / "random" / "seed0.csv").read_text().splitlines()[0]
    for peer in ("optuna-tpe", "optuna-nsga2"):
        for seed in (0, 1):
            rows = list(csv.DictReader((out / "traces" / peer / f"seed{seed}.csv").open()))
            assert [int(r["eval"]) for r in rows] == list(range(1, 13))  # 12 expensive evaluations, counted alike
            assert len({r["arch"] for r in rows}) == 12 and all(r["status"] == "complete" for r in rows)
        assert (out / "traces" / peer / "seed0.csv").read_text().splitlines()[0] == ours
    # scored exactly like ours: the summary's number is the score of the written traces
    problem = load_problem(tabular_problem("nb201", BENCH, ["accuracy:max", "pi5_onnx_latency_ms:min"], input_shape="3x32x32"))
    hv = []
    for seed in (0, 1):
        rows = list(csv.DictReader((out / "traces" / "optuna-tpe" / f"seed{seed}.csv").open()))
        hv.append(scores(problem, [{**r, "violation": 0.0, "accuracy": float(r["accuracy"]),
                                    "pi5_onnx_latency_ms": float(r["pi5_onnx_latency_ms"])} for r in rows])["hv"])
    assert summary["strategies"]["optuna-tpe"]["final"]["hv"]["mean"] == pytest.approx(np.mean(hv))
    assert json.loads((out / "summary.json").read_text())["strategies"]["optuna-tpe"]["peer"] is True
    again = tmp_path / "again"
    run_bench(tabular_problem("nb201", BENCH, ["accuracy:max", "pi5_onnx_latency_ms:min"]),
              BenchPlan(["random"], 12, 1, peers=["optuna-tpe"]), again, workers=1, plots=False)
    assert (again / "traces" / "optuna-tpe" / "seed0.csv").read_text() == \
        (out / "traces" / "optuna-tpe" / "seed0.csv").read_text()  # seeded: the same trace again


def test_an_optuna_peer_under_a_hard_budget_spends_evaluations_only_inside_it(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    run_bench(tabular_problem("nb201", BENCH, ["accuracy:max", "pi5_onnx_latency_ms:min"],
                              budgets=["pi5_onnx_latency_ms<=2"]),
              BenchPlan(["random"], 10, 1, peers=["optuna-tpe"]), tmp_path, workers=1, plots=False)
    rows = list(csv.DictReader((tmp_path / "traces" / "optuna-tpe" / "seed0.csv").open()))
    # candidates that break the budget were told to the sampler as constrained, not counted
    assert len(rows) == 10 and all(float(r["pi5_onnx_latency_ms"]) <= 2 for r in rows)


def test_a_missing_optuna_is_one_line_naming_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    code = main(["bench", "--space", "nb201", "--table", str(BENCH), "--objective", "accuracy:max",
                 "--objective", "pi5_onnx_latency_ms:min", "--peers", "optuna-tpe", "--seeds", "1",
                 "--evaluations", "5", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "hwnas[peers]" in err[0]
    assert not (tmp_path / "o").exists()  # refused before any work


def test_a_zero_cost_proxy_joins_the_surrogate_for_a_preselected_few_and_keeps_the_trace_seeded(tmp_path: Path) -> None:
    from hwnas.evaluation.sources import Evaluation

    config = make_config(space="nb201", input_shape="3x8x8", space_options={"N": 1}, objectives=OBJ, strategy="bo",
                         strategy_options={"initial": 4, "proxy": "synflow", "proxy_pool": 6, "enumerate_limit": 0,
                                           "pool": 200}, evaluations=8, seed=1, benchmark=str(BENCH))
    first = run_search(config, tmp_path / "a", progress=False, log=lambda _m: None)
    run_search(config, tmp_path / "b", progress=False, log=lambda _m: None)
    assert _trace(tmp_path / "a") == _trace(tmp_path / "b") and first.used == 8
    # the proxy is computed for the preselected candidates and the observations only, not the pool of 200
    from hwnas.optimize.evaluator import make_evaluator

    space = config.build_space()
    evaluator, _, _ = make_evaluator(config, space)
    bo = STRATEGIES.get("bo").create(space, evaluator.objectives, np.random.default_rng(1), config.strategy_options,
                                     cheap=evaluator.cheap)
    for _ in range(3):
        batch = bo.ask()
        bo.tell([Evaluation(a, {"accuracy": 50.0 + len(a.string) % 7,
                                **{m: float(v[0]) for m, v in evaluator.cheap([a]).items()}}, expensive=True) for a in batch])
    before = len(bo._proxy_cache)
    bo.ask()
    assert 0 < len(bo._proxy_cache) - before <= 6  # the preselected few, not the pool of 200
    with pytest.raises(Exception, match="proxy"):
        STRATEGIES.get("bo").parse_options({"proxy": "magic"})
