"""``hwnas bench-real``'s parts: the MobileNetV2 references, the paired comparisons and the tables.
The benchmark itself runs for hours (``hwnas bench-real --help``); a miniature of it, end to end,
is a slow test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hwnas.bench.real import RealBenchPlan, _Model, _plan_dict, _summarize, results_markdown
from hwnas.models.reference import MOBILENET_V2_DEPTHS, mobilenet_v2
from hwnas.spaces import get_space


def test_mobilenet_v2_follows_the_paper_at_every_width_and_keeps_a_1280_head() -> None:
    counts = [mobilenet_v2(w, "1x28x28").counts() for w in (0.25, 0.35, 0.5, 1.0)]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in zip(counts, counts[1:]))  # params and MACs grow with width
    ref = mobilenet_v2(0.35, "1x28x28")
    model = ref.build(seed=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    blocks = ref.space.blocks(ref.arch)
    assert [b.kind for b in blocks].count("mbconv") == sum(MOBILENET_V2_DEPTHS) == 16
    assert all((b.config["kernel"], b.config["expansion"]) == (3, 6) for b in blocks if b.kind == "mbconv")
    # the 24..320 channels scaled by 0.35 and rounded to multiples of 8, as torchvision's width_mult does
    assert sorted({b.config["cout"] for b in blocks if b.kind == "mbconv"}) == [8, 16, 24, 32, 56, 112]
    head = dict(model.named_modules())["blocks.17"]
    assert sum(p.numel() for p in head.parameters()) > 1280 * 112  # the 1x1 head conv to 1280 channels
    # weights come from the seed alone
    again = ref.build(seed=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    # downsampling adapted to the input as the mobilenet space adapts it
    assert ref.space._strides() == get_space("mobilenet", input_shape="1x28x28", scale=0.25)._strides()


def _models() -> list[_Model]:
    def never(seed: int) -> None:
        raise AssertionError("not built")

    return [_Model("bo-seed0", "search", never, "a", 0.5, 0), _Model("random-seed0", "random search", never, "b", 0.6, 0),
            _Model("largest-macs", "largest-MACs", never, "c", 0.9),
            _Model("mobilenetv2-0.25", "MobileNetV2", never), _Model("mobilenetv2-0.35", "MobileNetV2", never),
            _Model("mobilenetv2-0.5", "MobileNetV2", never)]


def test_comparisons_pair_retraining_seeds_and_find_the_matched_width() -> None:
    plan = RealBenchPlan(widths=(0.25, 0.35, 0.5))
    accuracy = {"bo-seed0": [90.0, 91.0, 92.0], "random-seed0": [89.0, 89.5, 91.0], "largest-macs": [89.5, 90.0, 91.5],
                "mobilenetv2-0.25": [87.0, 88.0, 88.0], "mobilenetv2-0.35": [88.0, 89.0, 89.0],
                "mobilenetv2-0.5": [91.0, 92.0, 93.0]}
    measured = {"bo-seed0": 0.5, "random-seed0": 0.6, "largest-macs": 0.95, "mobilenetv2-0.25": 0.7,
                "mobilenetv2-0.35": 1.0, "mobilenetv2-0.5": 1.6}
    summary = _summarize(plan, _models(), accuracy, measured, budget_ms=1.0)
    bo = summary["comparisons"][0]
    assert bo["model"] == "bo-seed0"
    assert bo["vs_reference"]["mean"] == pytest.approx(2.333, abs=1e-3)  # (2 + 2 + 3) / 3, paired by seed
    assert bo["vs_reference"]["ci95"][0] > 0
    assert bo["vs_largest_macs"]["mean"] == pytest.approx(0.6667, abs=1e-3)
    assert bo["vs_random_search"]["mean"] == pytest.approx(1.1667, abs=1e-3)
    # 91.0 on average matches MobileNetV2 0.35 (88.7), not 0.5 (92.0): 2x faster than 0.35
    assert bo["matches"] == {"model": "mobilenetv2-0.35", "speedup": pytest.approx(2.0)}
    assert "vs_random_search" not in summary["comparisons"][1]
    summary.update(command=["hwnas", "bench-real", "--out", "x"], device="local-cpu", wall_s=60.0, date="2026-12-04",
                   plan=_plan_dict(plan))
    text = results_markdown(summary)
    assert "`hwnas bench-real --out x`" in text and "| bo-seed0 | +2.33 [" in text
    assert "| mobilenetv2-0.35 | MobileNetV2 | 1.0000 | - | 88.67 [" in text


def test_a_one_standard_error_pick_is_paired_with_random_searchs_pick_by_the_same_rule() -> None:
    def never(seed: int) -> None:
        raise AssertionError("not built")

    models = _models() + [_Model("bo-seed0-1se", "search", never, "d", 0.3, 0),
                          _Model("random-seed0-1se", "random search", never, "e", 0.2, 0)]
    accuracy = {"bo-seed0": [90.0, 91.0, 92.0], "random-seed0": [89.0, 89.5, 91.0], "largest-macs": [89.5, 90.0, 91.5],
                "mobilenetv2-0.25": [87.0, 88.0, 88.0], "mobilenetv2-0.35": [88.0, 89.0, 89.0],
                "mobilenetv2-0.5": [91.0, 92.0, 93.0], "bo-seed0-1se": [89.0, 90.0, 91.0],
                "random-seed0-1se": [88.0, 90.0, 90.0]}
    measured = {name: 0.5 for name in accuracy}
    summary = _summarize(RealBenchPlan(widths=(0.25, 0.35, 0.5)), models, accuracy, measured, budget_ms=1.0)
    rows = {c["model"]: c for c in summary["comparisons"]}
    assert rows["bo-seed0-1se"]["vs_random_search"]["mean"] == pytest.approx(2 / 3)  # (1 + 0 + 1) / 3
    assert rows["bo-seed0"]["vs_random_search"]["mean"] == pytest.approx(1.1667, abs=1e-3)


def test_a_claim_is_checked_against_the_retrained_difference_and_the_measured_speed_up() -> None:
    from hwnas.bench.claims import check_claims

    accuracy = {"bo-seed0": [90.0, 91.0, 92.0], "mobilenetv2-0.35": [88.0, 89.0, 89.0], "bo-seed1": [88.0, 88.5, 89.5]}
    measured = {"bo-seed0": 0.5, "bo-seed1": 0.8, "mobilenetv2-0.35": 1.0}
    claims = {"bo-seed0": {"accuracy_points": 1.5, "accuracy_points_ci95": [0.1, 2.9], "speedup": 2.1},
              "bo-seed1": {"accuracy_points": 1.5, "accuracy_points_ci95": [0.5, 2.5], "speedup": 1.25},
              "gone": {"accuracy_points": 0.0, "accuracy_points_ci95": [-1.0, 1.0], "speedup": 1.0}}
    rows = check_claims(claims, accuracy, measured, "mobilenetv2-0.35")
    assert [r["model"] for r in rows] == ["bo-seed0", "bo-seed1"]  # a model not retrained is not judged
    first, second = rows
    assert first["retrained_points"]["mean"] == pytest.approx(2.333, abs=1e-3) and first["in_interval"]
    assert second["retrained_points"]["mean"] == pytest.approx(0.0) and not second["in_interval"]
    assert first["measured_speedup"] == pytest.approx(2.0) and first["speedup_error"] == pytest.approx(np.log(1.05))


@pytest.mark.slow  # profiles mobilenet for local-cpu when no table is there, then a 2-minute miniature
def test_a_miniature_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [sys.executable, "-m", "hwnas", "bench-real", "--out", str(out), "--dataset", "fashion-mnist@1000",
           "--time-budget", "30", "--seeds", "1", "--retrain-seeds", "2", "--retrain-epochs", "1", "--widths", "0.25,0.35",
           "--scheduler-opt", "max_epochs=3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"summary.json", "results.md", "accuracy-latency.png", "retrain.json"} <= {p.name for p in out.iterdir()}
    assert "| largest-macs | largest-MACs |" in (out / "results.md").read_text()
    summary = json.loads((out / "summary.json").read_text())  # the bo search carried the trained reference
    assert all(c["claimed_ci95"][0] <= c["claimed_points"] <= c["claimed_ci95"][1] for c in summary["claims"])
    assert (out / "models" / "mobilenetv2-0.35-trained.onnx").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)  # resumed: nothing retrained again
    assert again.returncode == 0 and "test accuracy" not in again.stderr


def test_the_benchmark_searches_as_a_time_budgeted_training_search_does() -> None:
    from hwnas.optimize.defaults import strategy_defaults, train_sources_defaults

    plan = RealBenchPlan()
    options, fidelity = train_sources_defaults("train", {}, None, {})
    assert dict(plan.search_options) == options and plan.fidelity == fidelity
    assert dict(plan.strategy_options) == strategy_defaults("bo", {}, "train", plan.time_budget_s) == {"cost_exponent": 1.0}
    assert dict(RealBenchPlan(strategy="nsga2").strategy_options) == {}  # the cost term is bo's only
