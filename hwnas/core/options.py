"""Typed option sets. A strategy or an accuracy estimator declares its options as a frozen
dataclass; its schema (types from the annotations, ranges and choices beside them) is what the
command line's help, the checks before any work and the docs are read from. An unknown key or a
value of the wrong type or range is one usage error naming the option (``epochs=-1`` must not
train nothing, ``lr=nan`` must not fill a front with failures)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from hwnas.core.errors import UsageError

Bounds = tuple[float, float]  # inclusive; (low, inf) for "at least low"
POSITIVE: Bounds = (math.nextafter(0.0, 1.0), math.inf)
FLAG_TEXT = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
Scalar = bool | int | float | str  # what an option's value may be
T = TypeVar("T")


class OptionError(UsageError, ValueError):
    """An option that is unknown, or whose value has the wrong type or range (exit 2)."""


@dataclasses.dataclass(frozen=True)
class Option:
    kind: type  # int, float, bool or str
    bounds: Bounds | None = None  # numbers only
    choices: tuple[str, ...] = ()  # text only
    default: Any = None
    optional: bool = False  # None is allowed (it means "decided at run time")


def _kind(hint: Any) -> tuple[type, bool]:
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(
        hint, types.UnionType) or typing.get_origin(hint) is typing.Union else [hint]
    optional = len(args) < len(typing.get_args(hint))
    for kind in (bool, str, float, int):  # a number that may be int or float is a float
        if kind in args:
            return kind, optional
    raise TypeError(f"an option must be bool, int, float or str, not {hint!r}")


def schema(settings: type, bounds: Mapping[str, Bounds] | None = None,
           choices: Mapping[str, tuple[str, ...]] | None = None, **extra: Option) -> dict[str, Option]:
    """The options of a settings dataclass (types and defaults from its fields) plus ``extra`` ones."""
    hints = typing.get_type_hints(settings)
    out = {}
    for f in dataclasses.fields(settings):
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = Option(kind, (bounds or {}).get(f.name), tuple((choices or {}).get(f.name, ())), default, optional)
    return {**out, **extra}


def check_options(who: str, options: Mapping[str, Any], known: Mapping[str, Option],
                  error: type[OptionError] = OptionError) -> None:
    """Raise ``error`` for the first option that ``known`` does not accept."""
    for key, value in options.items():
        option = known.get(key)
        if option is None:
            raise error(f"{who}: unknown option {key!r} (options: {', '.join(known) or 'none'})")
        if not (value is None and option.optional):
            _check(f"{who}: option {key}={value!r}", value, option, error)


def parse_options(who: str, settings: type[T], options: Mapping[str, Any], known: Mapping[str, Option],
                  error: type[OptionError] = OptionError) -> T:
    """``settings`` built from checked ``options`` (flags given as text become bools)."""
    check_options(who, options, known, error)
    values = {k: as_flag(v) if known[k].kind is bool else float(v) if known[k].kind is float and v is not None else v
              for k, v in options.items()}
    return settings(**values)


def _check(where: str, value: Any, option: Option, error: type[OptionError]) -> None:
    if option.kind is bool:
        if value not in (0, 1) and str(value).strip().lower() not in FLAG_TEXT:
            raise error(f"{where}: give 1 or 0 (true or false)")
        return
    if option.kind is str:
        if not isinstance(value, str) or not value:
            raise error(f"{where}: not a name")
        if option.choices and value not in option.choices:
            raise error(f"{where}: not one of {', '.join(option.choices)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"{where}: not a number")
    if option.kind is int and not isinstance(value, int):
        raise error(f"{where}: not an integer")
    if not math.isfinite(value):
        raise error(f"{where}: not a finite number")
    low, high = option.bounds or POSITIVE
    if not low <= value <= high:
        limit = "> 0" if (low, high) == POSITIVE else f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise error(f"{where}: must be {limit}")


def as_flag(value: Any) -> bool:
    """A checked yes/no option as a bool: 1, true, yes and on are True."""
    return FLAG_TEXT.get(str(value).strip().lower(), bool(value)) if not isinstance(value, bool) else value


def changed_options(settings: Any) -> dict[str, Any]:
    """The fields of a settings dataclass that differ from their defaults (what a user gave)."""
    return {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
            if getattr(settings, f.name) != f.default}
