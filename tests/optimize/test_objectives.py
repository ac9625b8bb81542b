"""Objective presets, budgets and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwnas.optimize.objectives import ObjectiveError, PresetError, load_objectives, objectives_from_specs, parse_budget

PRESETS = Path(__file__).resolve().parents[2] / "objectives"


@pytest.mark.parametrize("path", sorted(PRESETS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_presets_load(path: Path) -> None:
    objs = load_objectives(path)
    assert objs.objectives[0].name == "accuracy" and not objs.objectives[0].cheap
    assert all(o.cheap for o in objs.objectives[1:])


def test_required_presets_exist() -> None:
    assert load_objectives(PRESETS / "accuracy-latency.toml").names == ["accuracy", "latency_ms"]
    assert load_objectives(PRESETS / "accuracy-latency-energy.toml").names == ["accuracy", "latency_ms", "energy_mj"]


@pytest.mark.parametrize(
    ("text", "name", "op", "bound"),
    [("latency_ms<=5", "latency_ms", "<=", 5.0), (" energy_mj < 2.5 ", "energy_mj", "<", 2.5), ("accuracy>=90", "accuracy", ">=", 90.0),
     ("params<1e6", "params", "<", 1e6)],
)
def test_budgets_parse(text: str, name: str, op: str, bound: float) -> None:
    c = parse_budget(text)
    assert (c.name, c.op, c.bound, c.hard) == (name, op, bound, True)


@pytest.mark.parametrize("text", ["latency_ms=5", "latency_ms<=", "<=5", "latency ms<=5", "latency_ms<=five", "latency_ms<=inf"])
def test_malformed_budgets(text: str) -> None:
    with pytest.raises(ObjectiveError, match="budget"):
        parse_budget(text)


def test_violation_is_relative_and_zero_inside() -> None:
    c = parse_budget("latency_ms<=4")
    np.testing.assert_allclose(c.violation(np.array([3.0, 4.0, 5.0, 8.0])), [0, 0, 0.25, 1.0])
    assert c.violation(np.array([np.nan]))[0] == np.inf
    g = parse_budget("accuracy>=90")
    np.testing.assert_allclose(g.violation(np.array([95.0, 81.0])), [0, 0.1])
    strict = parse_budget("latency_ms<4")
    assert strict.violation(np.array([4.0]))[0] > 0 and strict.violation(np.array([3.9]))[0] == 0


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('[[objective]]\nname = "accuracy"\ndirection = "up"\n', "objective[0].direction"),
        ('[[objective]]\ndirection = "max"\n', "objective[0].name"),
        ('[[objective]]\nname = "a"\ndirection = "max"\nweight = 2\n', "objective[0].weight"),
        ('[[objective]]\nname = "a"\ndirection = "max"\ncheap = "no"\n', "objective[0].cheap"),
        ('[[objective]]\nname = "a"\ndirection = "max"\n[[constraint]]\nbudget = "a=<3"\n', "constraint[0].budget"),
        ('[[objective]]\nname = "a"\ndirection = "max"\n[[constraint]]\nbudget = "a<=3"\nhard = "yes"\n', "constraint[0].hard"),
        ('goal = "fast"\n', "goal"),
        ('description = "nothing"\n', "objective"),
    ],
)
def test_malformed_presets_name_the_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(PresetError) as exc:  # a bad file: exit 1, not a usage error
        load_objectives(path)
    assert str(exc.value).startswith(f"{path}: field '{field}")


def test_objectives_from_specs_marks_all_but_the_first_max_cheap() -> None:
    objs = objectives_from_specs(["accuracy:max", "pi5_onnx_latency_ms:min", "pi5_onnx_energy_mj:min"])
    assert [o.cheap for o in objs.objectives] == [False, True, True]
    assert objs.expensive == ["accuracy"]
    with pytest.raises(ObjectiveError, match="NAME:min"):
        objectives_from_specs(["accuracy"])
    with pytest.raises(ObjectiveError, match="repeat"):
        objectives_from_specs(["a:max", "a:min"])
