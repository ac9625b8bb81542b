"""Choosing what to ship from a front: by accuracy within the budgets, the fastest within one
standard error of the most accurate, the knee, or the extremes; and one recommendation with its
reason."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.core.errors import UsageError
from hwnas.optimize.choice import (accuracy_images, default_selection, knee_distance, recommend, select, speed_metric,
                                   standard_error)
from hwnas.optimize.objectives import objectives_from_specs, parse_budget

OBJ = objectives_from_specs(["accuracy:max", "latency_ms:min"])
BUDGETED = OBJ.with_budgets([parse_budget("latency_ms<=2")])


def _front() -> list[dict[str, object]]:
    # a front listed cheapest first, as front.json holds it; the last member breaks the budget
    rows = [(60.0, 0.5), (75.0, 0.8), (88.0, 1.0), (90.0, 1.6), (91.0, 1.95), (93.0, 3.0)]
    return [{"arch": f"a{i}", "arch_id": f"id{i}", "accuracy": acc, "latency_ms": lat, "feasible": lat <= 2}
            for i, (acc, lat) in enumerate(rows)]


def test_accuracy_takes_the_most_accurate_members_within_every_budget() -> None:
    chosen = select(_front(), BUDGETED, "accuracy", 2)
    assert [m["arch"] for m in chosen] == ["a4", "a3"]  # a5 is more accurate but breaks the budget
    assert default_selection(BUDGETED) == "accuracy" and default_selection(OBJ) == "extremes"


def test_extremes_spread_from_one_end_to_the_other() -> None:
    assert [m["arch"] for m in select(_front(), OBJ, "extremes", 2)] == ["a0", "a5"]
    assert len(select(_front(), OBJ, "extremes")) == 6


def test_the_knee_is_where_the_front_bends() -> None:
    members = _front()[:5]  # feasible ones
    d = knee_distance(members, OBJ)
    assert int(np.argmin(d)) == 2 and d.min() == 0.0  # 88% at 1.0 ms: past it, little accuracy per ms
    assert select(members, OBJ, "knee", 1)[0]["arch"] == "a2"
    with pytest.raises(UsageError, match="--select 'best'"):
        select(members, OBJ, "best")


def test_a_recommendation_says_why_in_the_users_terms() -> None:
    rec = recommend(_front(), BUDGETED, accuracy_n=2000)
    assert rec is not None and rec.arch == "a4"
    assert "most accurate of the 5 front members within every budget" in rec.why
    assert "accuracy 91.00% (95% interval 89.7-92.2, 2,000 images)" in rec.why
    assert "latency 1.95 ms against the budget latency_ms<=2 (2.5% to spare)" in rec.why
    knee = recommend(_front()[:5], OBJ)
    assert knee is not None and knee.arch == "a2" and "knee" in knee.why
    assert recommend([], OBJ) is None


def test_within_one_standard_error_the_fastest_comes_first() -> None:
    # 91% on 500 images: one standard error is 1.28 points, so 90% at 1.6 ms ties with it
    assert standard_error(91.0, 2000) == pytest.approx(100 * np.sqrt(0.91 * 0.09 / 2000))
    assert standard_error(0.91, 2000) == pytest.approx(np.sqrt(0.91 * 0.09 / 2000)) and standard_error(91.0, None) == 0
    chosen = select(_front(), BUDGETED, "accuracy-1se", accuracy_n=500)
    assert [m["arch"] for m in chosen] == ["a3", "a4", "a2", "a1", "a0"]
    # on 2,000 images nothing ties (0.64 points); on 80 the error reaches 88% at 1.0 ms; with none, `accuracy`
    assert select(_front(), BUDGETED, "accuracy-1se", 1, accuracy_n=2000)[0]["arch"] == "a4"
    assert select(_front(), BUDGETED, "accuracy-1se", 1, accuracy_n=80)[0]["arch"] == "a2"
    assert select(_front(), BUDGETED, "accuracy-1se", 1)[0]["arch"] == "a4"
    assert speed_metric(BUDGETED) == "latency_ms"
    rec = recommend(_front(), BUDGETED, accuracy_n=500, how="accuracy-1se")
    assert rec is not None and rec.arch == "a3"
    assert "least latency_ms of the 5 front members within every budget whose accuracy is within one standard " \
           "error (1.28 over 500 images) of the most accurate (91.00)" in rec.why


def test_the_validation_split_size_is_read_from_the_runs_sources() -> None:
    sources = [{"source": "table"}, {"source": "train", "split_sizes": [7000, 1500, 1500]}]
    assert accuracy_images(sources) == 1500
    assert accuracy_images([{"source": "benchmark"}]) is None and accuracy_images(None) is None


def test_the_command_line_offers_every_selection() -> None:
    from hwnas.cli.parser import build_parser
    from hwnas.optimize.choice import SELECTIONS

    parser = build_parser()
    for how in SELECTIONS:
        assert parser.parse_args(["export", "runs/a", "--out", "m", "--select", how]).select == how
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "runs/a", "--out", "m", "--select", "best"])
