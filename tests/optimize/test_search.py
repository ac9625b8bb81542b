"""The search loop and every registered strategy, on a real (sliced) tabular benchmark."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hwnas.cli import main
from hwnas.evaluation.accuracy import ACCURACY
from hwnas.evaluation.sources import BenchmarkError, BenchmarkMetrics, MetricSource
from hwnas.optimize.archive import Archive
from hwnas.optimize.loop import make_config, run_search
from hwnas.optimize.objectives import objectives_from_specs, parse_budget
from hwnas.optimize.strategies import STRATEGIES
from hwnas.spaces import NB201Space

BENCH = Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz"
OBJ = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min"])
BUDGET = parse_budget("pi5_onnx_latency_ms<=3")
SMALL = {"random": {}, "nsga2": {"pop_size": 10}, "rl": {"batch": 5}, "evolution": {"population": 10}, "progressive": {"beam": 5}}


def config(strategy: str, seed: int = 0, evaluations: int = 30, budgets=(BUDGET,), **kw):
    return make_config(space="nb201", input_shape="3x32x32", objectives=OBJ, budgets=list(budgets), strategy=strategy,
                       strategy_options=SMALL.get(strategy, {}), evaluations=evaluations, seed=seed, benchmark=str(BENCH), **kw)


def trace(run_dir: Path) -> list[tuple[str, str, bool]]:
    with Archive(run_dir / "archive.sqlite") as a:
        return [(r.arch, r.status, r.expensive) for r in a.records()]


@pytest.fixture(params=STRATEGIES.names())
def strategy(request: pytest.FixtureRequest) -> str:
    return request.param


def test_strategy_runs_and_respects_a_hard_budget(strategy: str, tmp_path: Path) -> None:
    result = run_search(config(strategy), tmp_path, progress=False)
    assert result.used == 30 and result.feasible and result.front
    with Archive(tmp_path / "archive.sqlite") as a:
        records = list(a.records())
        assert sum(r.expensive for r in records) == 30
        for r in records:
            if r.expensive:  # only candidates inside the budget were evaluated
                assert r.status == "complete" and r.metrics["pi5_onnx_latency_ms"] <= 3
            else:
                assert r.status == "infeasible" and "accuracy" not in r.metrics
        assert a.meta("config")["strategy"] == strategy and a.meta("versions")["hwnas"]
    for m in result.front:
        assert m["feasible"] and m["pi5_onnx_latency_ms"] <= 3
    front = json.loads((tmp_path / "front.json").read_text())
    assert front["feasible"] and not front["least_violating"] and front["seed"] == 0
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "front.csv").read_text().splitlines()[0].startswith("arch,arch_id,accuracy")


def test_same_seed_same_trace_and_different_seeds_differ(strategy: str, tmp_path: Path) -> None:
    a = run_search(config(strategy, seed=5, evaluations=20), tmp_path / "a", progress=False)
    b = run_search(config(strategy, seed=5, evaluations=20), tmp_path / "b", progress=False)
    run_search(config(strategy, seed=6, evaluations=20), tmp_path / "c", progress=False)
    assert trace(tmp_path / "a") == trace(tmp_path / "b")
    assert trace(tmp_path / "a") != trace(tmp_path / "c")
    assert a.front == b.front


def test_traces_are_identical_in_a_fresh_process(tmp_path: Path) -> None:
    here = {}
    for s in STRATEGIES.names():
        run_search(config(s, seed=9, evaluations=15), tmp_path / f"here-{s}", progress=False)
        here[s] = trace(tmp_path / f"here-{s}")
    script = (
        "import json, sys; sys.path.insert(0, %r); from test_search import config, trace; from hwnas.optimize.loop import run_search; "
        "from hwnas.optimize.strategies import STRATEGIES; from pathlib import Path; out = {}\n"
        "for s in STRATEGIES.names():\n"
        "    run_search(config(s, seed=9, evaluations=15), Path(%r) / s, progress=False); out[s] = trace(Path(%r) / s)\n"
        "print(json.dumps(out))"
    ) % (str(Path(__file__).parent), str(tmp_path / "fresh"), str(tmp_path / "fresh"))
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env).stdout
    fresh = json.loads(out.strip().splitlines()[-1])
    assert {s: [tuple(x) for x in t] for s, t in fresh.items()} == here


def test_nothing_meets_the_budget_gives_the_marked_least_violating_front(tmp_path: Path) -> None:
    result = run_search(config("nsga2", budgets=[parse_budget("pi5_onnx_latency_ms<=0.1")], evaluations=5), tmp_path, progress=False)
    assert not result.feasible and result.front
    assert result.stopped.startswith("candidate cap")
    front = json.loads((tmp_path / "front.json").read_text())
    assert front["least_violating"] and "NOT a feasible front" in front["note"]
    assert all(not m["feasible"] and m["accuracy"] is not None for m in front["front"])
    # the front holds the least-violating (here: fastest) of all the candidates the search saw
    with Archive(tmp_path / "archive.sqlite") as a:
        seen = [r.metrics["pi5_onnx_latency_ms"] for r in a.records()]
    assert len(seen) > 100 and all(r > 0.1 for r in seen)  # repeats of a seen cell are not re-recorded
    assert min(m["pi5_onnx_latency_ms"] for m in front["front"]) == pytest.approx(min(seen))


class Flaky(MetricSource):
    """An accuracy estimator that fails in every way a real one can."""

    provides = ("accuracy",)
    cheap = False

    def __init__(self, space, **_):
        self.table = BenchmarkMetrics(BENCH, space)

    def evaluate(self, archs):
        arch = archs[0]
        kind = int(arch.id, 16) % 5
        if kind == 0:
            raise RuntimeError("loss diverged")
        if kind == 1:
            return {"accuracy": np.array([np.nan])}
        if kind == 2:
            time.sleep(5)
        if kind == 3:
            raise MemoryError
        return {"accuracy": self.table.evaluate(archs)["accuracy"]}


def test_failed_evaluations_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    ACCURACY.register("test-flaky", Flaky)
    cfg = config("random", evaluations=12, budgets=(), accuracy="test-flaky", time_limit_s=0.2)
    result = run_search(cfg, tmp_path, progress=False)
    assert result.used == 12
    with Archive(tmp_path / "archive.sqlite") as a:
        reasons = {r.reason for r in a.records() if r.status == "failed"}
        statuses = [r.status for r in a.records()]
    assert "complete" in statuses
    assert {"RuntimeError: loss diverged", "accuracy is NaN or infinite", "time limit of 0.2 s exceeded",
            "out of memory"} <= reasons
    assert all(m["accuracy"] is not None for m in result.front)


@pytest.mark.slow  # test_safety kills a two-worker search at random moments
def test_resume_after_sigkill_at_several_moments_reaches_the_same_front(tmp_path: Path) -> None:
    for strategy in ("nsga2", "rl"):
        reference = run_search(config(strategy, seed=2, evaluations=40), tmp_path / f"ref-{strategy}", progress=False)
        ref_trace = trace(tmp_path / f"ref-{strategy}")
        rng = np.random.default_rng(0)
        for k in rng.integers(3, 35, size=2):
            run = tmp_path / f"killed-{strategy}-{k}"
            code = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).parent)!r}); from test_search import config; "
                    "from hwnas.optimize.loop import run_search; from hwnas.optimize.evaluator import CandidateEvaluator as E\n"
                    "real = E.timed\n"
                    "def slow(*a, **kw):\n    time.sleep(0.02); return real(*a, **kw)\n"
                    "E.timed = slow\n"
                    f"search(config({strategy!r}, seed=2, evaluations=40), {str(run)!r}, progress=False)")
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            db = run / "archive.sqlite"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    if db.exists() and sqlite3.connect(db).execute("SELECT COUNT(*) FROM evaluation").fetchone()[0] >= k:
                        break
                except sqlite3.Error:
                    pass
                time.sleep(0.01)
            assert proc.poll() is None, "the search ended before it was killed"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            before = trace(run)
            assert 0 < len(before) < len(ref_trace)
            resumed = run_search({}, run, resume=True, progress=False, log=lambda _m: None)
            after = trace(run)
            assert after[: len(before)] == before  # nothing completed was lost or redone
            assert after == ref_trace
            assert resumed.front == reference.front


def test_benchmark_lookup_resolves_isomorphic_cells_and_names_missing_ones(tmp_path: Path) -> None:
    bench = BenchmarkMetrics(BENCH, NB201Space)
    a = NB201Space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    assert a.string != a.canonical
    assert bench.evaluate([a])["accuracy"][0] == bench.evaluate([NB201Space.parse(a.canonical)])["accuracy"][0]
    small = tmp_path / "small.csv"
    small.write_text("arch,accuracy\n" + a.canonical + ",50.0\n")
    other = NB201Space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    with pytest.raises(BenchmarkError, match="no row for .*nor_conv_3x3"):
        BenchmarkMetrics(small, NB201Space).evaluate([other])
    # a class takes the mean of its rows, whichever copy is canonical; an empty cell is left out
    twin = NB201Space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|")
    twin_copy = NB201Space.parse("|skip_connect~0|+|none~0|skip_connect~1|+|none~0|nor_conv_1x1~1|none~2|")
    assert twin.id == twin_copy.id and twin.string != twin_copy.string
    pair = tmp_path / "pair.csv"
    pair.write_text(f"arch,accuracy,lat\n{twin.string},50.0,2\n{a.canonical},70,1\n{twin_copy.string},60.0,\n")
    table = BenchmarkMetrics(pair, NB201Space)
    got = table.evaluate([twin_copy, a])
    assert got["accuracy"].tolist() == [55.0, 70.0] and got["lat"].tolist() == [2.0, 1.0]
    assert table.ids() == [twin.id, a.id] and table.column("accuracy").tolist() == [55.0, 70.0]
    bad = tmp_path / "bad.csv"
    bad.write_text("arch,accuracy\n|bogus|,1\n")
    with pytest.raises(BenchmarkError, match="row 2"):
        BenchmarkMetrics(bad, NB201Space)


def test_search_cli_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = Path(__file__).resolve().parents[2] / "objectives" / "accuracy-latency.toml"
    argv = ["search", "--space", "nb201", "--objectives", str(preset), "--metric", "latency_ms=pi5_onnx_latency_ms",
            "--budget", "latency_ms<=3", "--strategy", "evolution", "--strategy-opt", "population=8",
            "--evaluations", "15", "--seed", "1", "--run-dir", str(tmp_path / "run"), "--benchmark", str(BENCH), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "evolution: 15 evaluations" in out and "(feasible)" in out
    assert main(argv) == 1  # the run dir already holds a search
    assert "--resume" in capsys.readouterr().err
    assert main(["search", "--resume", str(tmp_path / "run"), "--no-progress"]) == 0
    for bad, message, code in [
        (["--budget", "latency_ms=3"], "budget 'latency_ms=3'", 2),
        (["--strategy", "annealing"], "unknown strategy 'annealing'", 2),
        (["--objectives", str(tmp_path / "none.toml")], "no such objectives preset", 1),
    ]:
        args = list(argv)
        for flag, value in zip(bad[::2], bad[1::2]):
            args[args.index(flag) + 1] = value
        args[args.index("--run-dir") + 1] = str(tmp_path / f"r{len(message)}")
        assert main(args) == code
        err = capsys.readouterr().err
        assert message in err and len([line for line in err.splitlines() if ": error: " in line]) == 1
    from hwnas.core.errors import HwnasError
    from hwnas.spaces import get_space

    with pytest.raises(HwnasError, match="progressive search grows cells"):
        STRATEGIES.get("progressive")(get_space("mobilenet", input_shape="1x28x28"), OBJ, np.random.default_rng(0))


def test_a_strategy_that_finds_nothing_new_ends_the_search_with_that_reason() -> None:
    from hwnas.evaluation.sources import FactsMetrics, MetricSource
    from hwnas.optimize.asktell import MAX_STALE_BATCHES, run_strategy
    from hwnas.optimize.evaluator import CandidateEvaluator
    from hwnas.optimize.objectives import objectives_from_specs
    from hwnas.spaces import get_space

    space = get_space("nb201", input_shape="1x8x8", N=1)

    class Accuracy(MetricSource):
        provides, cheap = ("accuracy",), False

        def evaluate(self, archs):
            return {"accuracy": np.full(len(archs), 50.0)}

    class Same:  # what bo does when the budgets leave nothing unseen: it repeats a known candidate
        name = "same"

        def __init__(self) -> None:
            self.space, self.arch = space, space.sample(np.random.default_rng(0), 1)[0]

        def ask(self):
            return [self.arch]

        def tell(self, _outcomes) -> None:
            pass

    evaluator = CandidateEvaluator(objectives_from_specs(["accuracy:max", "params:min"]), [Accuracy(), FactsMetrics(space)])
    trace, used, asked, why = run_strategy(Same(), evaluator, evaluator.objectives, 10)
    assert used == 1 and asked == 1 + MAX_STALE_BATCHES and why.startswith("nothing new")
