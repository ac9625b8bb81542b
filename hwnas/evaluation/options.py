"""Checking an accuracy estimator's options before any work: an unknown key, a value of the wrong
type or out of range is one usage error naming the option (``epochs=-1`` must not train nothing,
``lr=nan`` must not fill a front with failures)."""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any

from hwnas.core.errors import UsageError

Bounds = tuple[float, float]  # inclusive; (low, inf) for "at least low"
POSITIVE: Bounds = (math.nextafter(0.0, 1.0), math.inf)
FLAG_TEXT = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class EstimatorOptionError(UsageError, ValueError):
    """An estimator option that is unknown, or whose value has the wrong type or range (exit 2)."""


@dataclasses.dataclass(frozen=True)
class Option:
    kind: type  # int, float, bool or str
    bounds: Bounds | None = None  # numbers only
    choices: tuple[str, ...] = ()  # text only


def schema(settings: type, bounds: Mapping[str, Bounds], choices: Mapping[str, tuple[str, ...]] | None = None,
           **extra: Option) -> dict[str, Option]:
    """The options of a settings dataclass (types from its annotations) plus ``extra`` ones."""
    hints = typing.get_type_hints(settings)
    out = {f.name: Option(hints[f.name], bounds.get(f.name), (choices or {}).get(f.name, ()))
           for f in dataclasses.fields(settings)}
    return {**out, **extra}


def check_options(who: str, options: Mapping[str, Any], known: Mapping[str, Option]) -> None:
    """Raise EstimatorOptionError for the first option that ``known`` does not accept."""
    for key, value in options.items():
        option = known.get(key)
        if option is None:
            raise EstimatorOptionError(f"{who}: unknown option {key!r} (options: {', '.join(known)})")
        _check(f"{who}: option {key}={value!r}", value, option)


def _check(where: str, value: Any, option: Option) -> None:
    if option.kind is bool:
        if value not in (0, 1) and str(value).strip().lower() not in FLAG_TEXT:
            raise EstimatorOptionError(f"{where}: give 1 or 0 (true or false)")
        return
    if option.kind is str:
        if not isinstance(value, str) or not value:
            raise EstimatorOptionError(f"{where}: not a name")
        if option.choices and value not in option.choices:
            raise EstimatorOptionError(f"{where}: not one of {', '.join(option.choices)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EstimatorOptionError(f"{where}: not a number")
    if option.kind is int and not isinstance(value, int):
        raise EstimatorOptionError(f"{where}: not an integer")
    if not math.isfinite(value):
        raise EstimatorOptionError(f"{where}: not a finite number")
    low, high = option.bounds or POSITIVE
    if not low <= value <= high:
        limit = "> 0" if (low, high) == POSITIVE else f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise EstimatorOptionError(f"{where}: must be {limit}")


def as_flag(value: Any) -> bool:
    """A checked yes/no option as a bool: 1, true, yes and on are True."""
    return FLAG_TEXT.get(str(value).strip().lower(), bool(value)) if not isinstance(value, bool) else value
