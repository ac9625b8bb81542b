"""`hwnas bench`: trace format, determinism, metrics against hand-computed values, import order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.bench import BenchError, BenchPlan, import_nb201, load_problem, run_bench, scores, tabular_problem
from hwnas.cli import main
from hwnas.spaces.nb201 import benchmark_order

BENCH = Path(__file__).resolve().parents[1] / "data" / "nb201_canonical.csv.gz"
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
OBJ = ["accuracy:max", "pi5_onnx_latency_ms:min"]


def _read_traces(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted((out / "traces").rglob("*.csv"))}


def test_end_to_end_bench_writes_traces_summary_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "b"
    summary = run_bench(tabular_problem("nb201", BENCH, OBJ),
                        BenchPlan(["nsga2", "evolution"], 15, 2), out, workers=2, command=["test"])
    assert sorted(summary["strategies"]) == ["evolution", "nsga2", "random"]  # random is always beside them
    assert summary["seeds"] == [0, 1] and summary["checkpoints"] == [10, 15]
    for name in summary["strategies"]:
        for seed in (0, 1):
            rows = list(csv.DictReader((out / "traces" / name / f"seed{seed}.csv").open()))
            assert [int(r["eval"]) for r in rows] == list(range(1, 16))
            assert set(rows[0]) == {"eval", "arch", "status", "accuracy", "pi5_onnx_latency_ms"}
    s = json.loads((out / "summary.json").read_text())
    cp = s["strategies"]["nsga2"]["checkpoints"]["15"]
    assert set(cp) == {"hv", "igd", "regret"} and cp["hv"]["ci95"][0] <= cp["hv"]["mean"] <= cp["hv"]["ci95"][1]
    assert 0 < cp["hv"]["mean"] <= 1.0 + 1e-9
    assert "Mann-Whitney" in s["strategies"]["nsga2"]["vs_random"]["test"]
    assert s["versions"]["pymoo"] and s["hypervolume"]["reference_point"] == [1.1, 1.1]
    assert (out / "hv.png").read_bytes()[:4] == b"\x89PNG" and (out / "front.png").read_bytes()[:4] == b"\x89PNG"
    # the same command gives identical traces, whatever the number of workers
    again = tmp_path / "again"
    run_bench(tabular_problem("nb201", BENCH, OBJ),
              BenchPlan(["nsga2", "evolution"], 15, 2), again, workers=1, plots=False)
    assert _read_traces(out) == _read_traces(again)


def test_metrics_match_hand_computed_values(tmp_path: Path) -> None:
    cells = benchmark_order()[:4]
    table = tmp_path / "tiny.csv"
    # (accuracy, latency): A (90, 1), B (80, 0.5), C (95, 2), D (85, 1.5); D is dominated by A
    values = [(90, 1.0), (80, 0.5), (95, 2.0), (85, 1.5)]
    table.write_text("arch,accuracy,lat\n" + "".join(f"{c},{a},{l}\n" for c, (a, l) in zip(cells, values)))
    problem = load_problem(tabular_problem("nb201", table, ["accuracy:max", "lat:min"], input_shape="3x32x32"))
    assert len(problem.true_front) == 3
    # scaled: A (1/3, 1/3), B (1, 0), C (0, 1); reference (1.1, 1.1)
    true_hv = (1 / 3) * 0.1 + (2 / 3) * (1.1 - 1 / 3) + 0.1 * 1.1

    def row(a: float, l: float) -> dict:
        return {"status": "complete", "violation": 0.0, "accuracy": a, "lat": l}

    only_a = scores(problem, [row(90, 1.0)])
    assert only_a["hv"] == pytest.approx((1.1 - 1 / 3) ** 2 / true_hv)
    assert only_a["igd"] == pytest.approx(2 * np.hypot(2 / 3, 1 / 3) / 3)
    # budgets at the 10/25/50/75% latency quantiles: 0.65, 0.875, 1.25, 1.625
    np.testing.assert_allclose(problem.cost_levels, [0.65, 0.875, 1.25, 1.625])
    assert only_a["regret"] == pytest.approx(0.0)
    only_c = scores(problem, [row(95, 2.0)])
    assert only_c["hv"] == pytest.approx(0.1 * 1.1 / true_hv)
    assert only_c["regret"] == pytest.approx((0 + 0 + 10 + 10) / 4)  # nothing found within 1.25 or 1.625
    everything = scores(problem, [row(a, l) for a, l in values])
    assert everything["hv"] == pytest.approx(1.0) and everything["igd"] == pytest.approx(0.0)
    failed = scores(problem, [{"status": "failed", "violation": 0.0, "accuracy": float("nan"), "lat": 1.0}])
    assert failed["hv"] == 0.0


def test_import_uses_the_benchmark_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "indexed.csv"
    src.write_text("index,acc,lat\n0,91.5,1.2\n15624,70,3\n7,88,2\n")
    dst = tmp_path / "arch.csv"
    assert main(["bench", "import", "--input", str(src), "--output", str(dst)]) == 0
    rows = list(csv.DictReader(dst.open()))
    assert rows[0] == {"arch": INDEX0, "acc": "91.5", "lat": "1.2"}
    assert [r["arch"] for r in rows] == [benchmark_order()[i] for i in (0, 15624, 7)]
    for text, message in [("index,acc\n15625,1\n", "outside 0..15624"), ("index,acc\n3,1\n3,2\n", "appears twice"),
                          ("idx,acc\n3,1\n", "no index column 'index'"), ("index,acc\nx,1\n", "not an integer")]:
        src.write_text(text)
        with pytest.raises(BenchError, match=message):
            import_nb201(src, dst)
    src.write_text("number,acc\n0,1\n")
    assert main(["bench", "import", "--input", str(src), "--output", str(dst), "--index-column", "number"]) == 0
    assert list(csv.DictReader(dst.open()))[0]["arch"] == INDEX0


def test_bench_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["bench", "--space", "nb201", "--table", str(BENCH), "--objective", "accuracy:max",
            "--objective", "pi5_onnx_latency_ms:min", "--strategies", "random,rl", "--evaluations", "10",
            "--seeds", "2", "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "rl" in text and "seeds 0..1" in text
    assert json.loads((out / "summary.json").read_text())["command"] == ["hwnas", *argv]
    bad = list(argv)
    bad[bad.index("pi5_onnx_latency_ms:min")] = "no_such_column:min"
    assert main(bad) == 1
    assert "no column 'no_such_column'" in capsys.readouterr().err
    bad = list(argv)
    bad[bad.index("random,rl")] = "random,annealing"
    assert main(bad) == 2
    assert "unknown strategy 'annealing'" in capsys.readouterr().err
