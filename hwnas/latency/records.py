"""The parts of a latency table as typed records: its entries, context models and fit, energy,
calibration and the space's identity. Each reads its JSON form with ``from_dict`` (raising
TableError naming the field) and writes it back unchanged with ``to_dict``: tables written
before a record existed load as they are. What the device reported about itself (fingerprint,
conditions) and how files were converted (quantization) stay ``Facts``: JSON observations,
compared key by key and recorded for provenance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from hwnas.core.errors import HwnasError

JSON = Union[str, int, float, bool, None, list["JSON"], dict[str, "JSON"]]
Facts = dict[str, JSON]  # a record of observations, as JSON


class TableError(HwnasError, ValueError):
    """A table file that is missing or malformed."""


def _number(where: str, value: Any, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TableError(f"field '{where}': {value!r} is not a number")
    return float(value)


def _object(where: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TableError(f"field '{where}': not an object")
    return value


@dataclass
class TableEntry:
    """One block: its shapes, its statistic (ms), the samples' stats, energy where measured and
    its parameter count (tables made before the count have none: it is counted on first use)."""

    kind: str
    in_shape: list[int]
    out_shape: list[int]
    n_inputs: int
    latency_ms: float
    stats: Facts = field(default_factory=dict)
    energy_mj: float | None = None
    params: int | None = None

    @property
    def stable(self) -> bool:
        return bool(self.stats.get("stable", True))

    @property
    def sweep_spread(self) -> float:
        return float(self.stats.get("sweep_spread", 0.0) or 0.0)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "in_shape": list(self.in_shape), "out_shape": list(self.out_shape),
               "n_inputs": self.n_inputs, "latency_ms": self.latency_ms, "stats": self.stats,
               "energy_mj": self.energy_mj}
        return out if self.params is None else {**out, "params": self.params}

    @classmethod
    def from_dict(cls, where: str, data: Any) -> TableEntry:
        d = _object(where, data)
        try:
            return cls(str(d["kind"]), [int(x) for x in d["in_shape"]], [int(x) for x in d["out_shape"]],
                       int(d["n_inputs"]), d["latency_ms"], dict(_object(f"{where}.stats", d.get("stats") or {})),
                       d.get("energy_mj"), None if d.get("params") is None else int(d["params"]))
        except KeyError as exc:
            raise TableError(f"field '{where}.{exc.args[0]}': missing") from None
        except (TypeError, ValueError) as exc:
            raise TableError(f"field '{where}': malformed ({exc})") from None


@dataclass
class ContextModel:
    """A whole model timed beside the blocks (no stats yet: planned, not measured)."""

    arch: str
    stats: Facts | None = None
    energy_mj: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "stats": self.stats, "energy_mj": self.energy_mj}

    @classmethod
    def from_dict(cls, where: str, data: Any) -> ContextModel:
        d = _object(where, data)
        if not isinstance(d.get("arch"), str):
            raise TableError(f"field '{where}.arch': not an architecture string")
        stats = d.get("stats")
        return cls(d["arch"], None if stats is None else dict(_object(f"{where}.stats", stats)), d.get("energy_mj"))


@dataclass(frozen=True)
class KindTerms:
    """The boundary correction of one block kind (ms per block, per 1e5 elements, per 1e5 params)."""

    per_block_ms: float = 0.0
    per_100k_elements_ms: float = 0.0
    per_100k_params_ms: float | None = None  # tables fitted before the params term have none

    def to_dict(self) -> dict[str, float]:
        out = {"per_block_ms": self.per_block_ms, "per_100k_elements_ms": self.per_100k_elements_ms}
        return out if self.per_100k_params_ms is None else {**out, "per_100k_params_ms": self.per_100k_params_ms}


@dataclass(frozen=True)
class ContextFit:
    """The fitted boundary correction (``hwnas.latency.correction``) and its errors."""

    overhead_ms: float
    per_kind: Mapping[str, KindTerms]
    ridge: float | None = None
    n_models: int | None = None
    leave_one_out: Mapping[str, float] = field(default_factory=dict)
    raw_sum: Mapping[str, float] = field(default_factory=dict)
    formula: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"formula": self.formula, "overhead_ms": self.overhead_ms,
                "per_kind": {k: t.to_dict() for k, t in self.per_kind.items()}, "ridge": self.ridge,
                "n_models": self.n_models, "leave_one_out": dict(self.leave_one_out), "raw_sum": dict(self.raw_sum)}

    @classmethod
    def from_dict(cls, where: str, data: Any) -> ContextFit:
        d = _object(where, data)
        kinds = _object(f"{where}.per_kind", d.get("per_kind", {}))
        try:
            per_kind = {k: KindTerms(**{n: float(v) for n, v in _object(f"{where}.per_kind.{k}", t).items()})
                        for k, t in kinds.items()}
        except TypeError as exc:
            raise TableError(f"field '{where}.per_kind': {exc}") from None
        return cls(float(_number(f"{where}.overhead_ms", d.get("overhead_ms"))), per_kind,  # type: ignore[arg-type]
                   d.get("ridge"), d.get("n_models"), dict(d.get("leave_one_out") or {}), dict(d.get("raw_sum") or {}),
                   str(d.get("formula", "")))


@dataclass
class TableContext:
    """The whole models timed beside the blocks: the plan (seeded), those measured, and the fit."""

    models: list[ContextModel] = field(default_factory=list)
    fit: ContextFit | None = None
    seed: int | None = None
    planned: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "planned": list(self.planned), "models": [m.to_dict() for m in self.models],
                "fit": None if self.fit is None else self.fit.to_dict()}

    @classmethod
    def from_dict(cls, data: Any) -> TableContext:
        d = _object("context", data)
        models = [ContextModel.from_dict(f"context.models[{i}]", m) for i, m in enumerate(d.get("models") or [])]
        fit = None if d.get("fit") is None else ContextFit.from_dict("context.fit", d["fit"])
        return cls(models, fit, d.get("seed"), [str(a) for a in d.get("planned") or []])


@dataclass(frozen=True)
class TableEnergy:
    """Whether the entries hold energy, where it came from, and whether it is an estimate."""

    available: bool = False
    source: str | None = None
    estimated: bool = False
    note: str | None = None
    model: Facts | None = None  # the estimating model's constants

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"available": self.available, "source": self.source, "estimated": self.estimated}
        if self.note is not None:
            out["note"] = self.note
        if self.model is not None:
            out["model"] = dict(self.model)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> TableEnergy:
        d = _object("energy", data)
        return cls(bool(d.get("available", False)), d.get("source"), bool(d.get("estimated", False)), d.get("note"),
                   None if d.get("model") is None else dict(d["model"]))


@dataclass(frozen=True)
class TableCalibration:
    """A linear correction of whole-model predictions, fitted by ``hwnas validate --calibrate``."""

    scale: float
    offset_ms: float
    samples: int | None = None
    seed: int | None = None
    fitted_on: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "offset_ms": self.offset_ms, "samples": self.samples, "seed": self.seed,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, data: Any) -> TableCalibration:
        d = _object("calibration", data)
        return cls(float(_number("calibration.scale", d.get("scale"))),  # type: ignore[arg-type]
                   float(_number("calibration.offset_ms", d.get("offset_ms"))),  # type: ignore[arg-type]
                   d.get("samples"), d.get("seed"), str(d.get("fitted_on", "")))


@dataclass(frozen=True)
class TableSpace:
    """The identity of the space a table was profiled for: name, version and configuration."""

    name: str
    version: JSON
    config: Facts

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "config": self.config}

    @classmethod
    def from_dict(cls, data: Any) -> TableSpace:
        d = _object("space", data)
        if not isinstance(d.get("name"), str):
            raise TableError("field 'space.name': not a space name")
        return cls(d["name"], d.get("version"), dict(_object("space.config", d.get("config", {}))))
