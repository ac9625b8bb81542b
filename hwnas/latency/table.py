"""Latency/energy lookup tables: one JSON file per (device, space, input shape).

Default location: ``latency_tables/<device>/<space>-<CxHxW>.json``. A table holds the device
fingerprint and spec, the space's identity, the timing protocol, one entry per block key (its
statistic in ms, the samples' stats, energy where measured), the context models and fit, and the
drift sentinels. ``open_table`` checks it against this machine; every problem is a TableError or
TableMismatchError naming the file and field.

How it works, and why: ``docs/design.md`` (hwnas.latency.table).
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from hwnas.core.errors import HwnasError
from hwnas.core.files import read_text, write_atomic
from hwnas.device.spec import IDENTITY_FIELDS
from hwnas.latency.records import (Facts, TableCalibration, TableContext, TableEnergy, TableEntry, TableError,
                                   TableSpace)
from hwnas.measure.timing import STATISTICS, Protocol
from hwnas.spaces.base import SearchSpace, shape_str

FORMAT = "hwnas-latency-table"
FORMAT_VERSION = 1


MAX_LATENCY_MS = 3.6e6  # an hour (or as many mJ) for one block: a larger value is corrupt, and overflows sums




class TableMismatchError(HwnasError, ValueError):
    """A table made on another device, runtime, setting or space version than it is used with."""


class MissingEntryError(HwnasError, KeyError):
    """An architecture needs a block the table does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def default_table_path(device: str, space: SearchSpace, root: str | Path = "latency_tables",
                       precision: str = "fp32") -> Path:
    """``<root>/<device>/<space>[-<option><value>...]-<CxHxW>[-<precision>].json``: non-default
    space options and precisions are in the name, so two tables never collide."""
    params = inspect.signature(type(space).__init__).parameters
    config = space.config()
    tag = "".join(f"-{k}{config[k]:g}" if isinstance(config[k], (int, float)) else f"-{k}{config[k]}"
                  for k, p in params.items()
                  if k in config and k not in ("input_shape", "num_classes") and p.default is not inspect.Parameter.empty
                  and config[k] != p.default)
    suffix = "" if precision == "fp32" else f"-{precision}"
    return Path(root) / device / f"{space.name}{tag}-{shape_str(space.input_shape)}{suffix}.json"


def space_record(space: SearchSpace) -> TableSpace:
    """The identity a table records of ``space`` (as JSON: tuples become lists)."""
    return TableSpace.from_dict(json.loads(json.dumps({"name": space.name, "version": space.version,
                                                       "config": space.config()})))


@dataclass
class LatencyTable:
    """In-memory form of a table file (plain data; see the module docstring for the fields)."""

    fingerprint: Facts  # what the device reported about itself; IDENTITY_FIELDS must match to use the table
    device: Facts  # the device spec, as ``DeviceSpec.to_dict`` writes it (``spec_from_record`` reads it)
    space: TableSpace
    protocol: Protocol
    statistic: str
    entries: dict[str, TableEntry] = field(default_factory=dict)
    energy: TableEnergy = TableEnergy()
    context: TableContext = field(default_factory=TableContext)
    calibration: TableCalibration | None = None
    conditions: Facts | None = None  # the device's state when profiled (None: not recorded)
    # how files were converted to the device's precision (None: fp32, timed as exported)
    quantization: Facts | None = None
    complete: bool = False
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    hwnas_version: str = ""
    path: Path | None = None
    # protocol settings the file did not record (a table from before they existed): such a table
    # is read with today's defaults for them, but is never continued with today's protocol
    unrecorded_protocol: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "hwnas_version": self.hwnas_version,
            "created": self.created, "complete": self.complete, "statistic": self.statistic,
            "fingerprint": self.fingerprint, "device": self.device, "space": self.space.to_dict(),
            "protocol": {k: v for k, v in self.protocol.to_dict().items() if k not in self.unrecorded_protocol},
            "energy": self.energy.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "conditions": self.conditions, "quantization": self.quantization, "context": self.context.to_dict(),
            "entries": {k: e.to_dict() for k, e in self.entries.items()},
        }

    def save(self, path: str | Path | None = None) -> Path:
        """Write atomically (temp file + rename): a crash never leaves a half-written table."""
        target = Path(path or self.path or "")
        if not str(target):
            raise TableError("no path to save the table to")
        write_atomic(target, json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n")
        self.path = target
        return target

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        p = Path(path)
        text = read_text(p, TableError, "latency table")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TableError(f"{p}: not a readable JSON table ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TableError(f"{p}: field 'format': not an hwnas latency table")
        if data.get("format_version") != FORMAT_VERSION:
            raise TableError(f"{p}: field 'format_version': {data.get('format_version')!r} is not supported "
                             f"(this hwnas reads version {FORMAT_VERSION})")
        try:
            entries = data["entries"]
            if not isinstance(entries, dict):
                raise TableError("field 'entries': not an object")
            calibration = data.get("calibration")
            table = cls(
                fingerprint=dict(data["fingerprint"]), device=dict(data["device"]),
                space=TableSpace.from_dict(data["space"]), protocol=_protocol(p, data["protocol"]),
                statistic=str(data["statistic"]),
                entries={k: TableEntry.from_dict(f"entries[{k!r}]", e) for k, e in entries.items()},
                energy=TableEnergy.from_dict(data["energy"]), context=TableContext.from_dict(data["context"]),
                calibration=None if calibration is None else TableCalibration.from_dict(calibration),
                conditions=data.get("conditions"), quantization=data.get("quantization"),
                complete=bool(data["complete"]), created=str(data["created"]),
                hwnas_version=str(data.get("hwnas_version", "")), path=p,
                unrecorded_protocol=tuple(k for k in Protocol().to_dict() if k not in data["protocol"]),
            )
        except TableError as exc:
            raise TableError(f"{p}: {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise TableError(f"{p}: field {exc}: missing or malformed") from None
        _check_values(p, table)
        table.fingerprint.setdefault("precision", "fp32")  # tables from before precisions were fp32
        return table

    @property
    def precision(self) -> str:
        """The numeric format the table's files were timed in (``fp32``, ``int8``, ``fp16``)."""
        return str(self.fingerprint.get("precision", "fp32"))

    def unconfirmed(self) -> tuple[list[str], list[str]]:
        """Entries and context models whose two fastest sweeps still differed by more than the
        protocol's ``sweep_tol``: the device changed while it was profiled (tables made before
        sweeps have none)."""
        tol = self.protocol.sweep_tol  # tables from before sweeps: the default
        entries = sorted(k for k, e in self.entries.items() if e.sweep_spread > tol)
        models = [m.arch for m in self.context.models if float((m.stats or {}).get("sweep_spread", 0.0) or 0.0) > tol]
        return entries, models

    # ----- safety ---------------------------------------------------------------------------
    def mismatches(self, *, fingerprint: dict[str, Any] | None = None, space: SearchSpace | None = None) -> list[str]:
        """Fields that differ from the given fingerprint and space, as 'field: table X, now Y'."""
        out = []
        if fingerprint is not None:
            for key in IDENTITY_FIELDS:
                if self.fingerprint.get(key) != fingerprint.get(key):
                    out.append(f"{key}: table {self.fingerprint.get(key)!r}, now {fingerprint.get(key)!r}")
        if space is not None:
            now = space_record(space)
            for key in ("name", "version", "config"):
                if getattr(self.space, key) != getattr(now, key):
                    out.append(f"space.{key}: table {getattr(self.space, key)!r}, this space {getattr(now, key)!r}")
        return out

    def check(self, *, fingerprint: dict[str, Any] | None = None, space: SearchSpace | None = None,
              allow_mismatch: bool = False) -> list[str]:
        """Raise TableMismatchError naming every differing field, unless ``allow_mismatch``."""
        diffs = self.mismatches(fingerprint=fingerprint, space=space)
        if diffs and not allow_mismatch:
            where = self.path or "table"
            raise TableMismatchError(f"{where} was made elsewhere: " + "; ".join(diffs)
                                     + " (pass --allow-mismatch to use it anyway)")
        return diffs


def _check_values(path: Path, table: LatencyTable) -> None:
    """A table is used only if every number in it is a real measurement: finite and positive
    latencies, finite non-negative energies, a statistic the protocol knows. A hand-edited -5 ms
    must not quietly predict -4.69 ms."""
    if table.statistic not in STATISTICS:
        raise TableError(f"{path}: field 'statistic': {table.statistic!r} is not one of {', '.join(STATISTICS)}")
    for key, entry in table.entries.items():
        latency = entry.latency_ms
        if not _is_number(latency) or not (0 < latency <= MAX_LATENCY_MS):
            raise TableError(f"{path}: entries[{key!r}].latency_ms: {latency!r} is not a finite positive number "
                             f"<= {MAX_LATENCY_MS:g}")
        for name, value in entry.stats.items():
            if name.endswith("_ms") and (not _is_number(value) or not (0 <= value <= MAX_LATENCY_MS)):
                raise TableError(f"{path}: entries[{key!r}].stats.{name}: {value!r} is not a finite non-negative number")
        energy = entry.energy_mj
        if energy is not None and (not _is_number(energy) or not (0 <= energy <= MAX_LATENCY_MS)):
            raise TableError(f"{path}: entries[{key!r}].energy_mj: {energy!r} is not a finite non-negative number")


def _protocol(path: Path, record: Any) -> Protocol:
    """The table's timing protocol as a typed value (settings it did not record: the defaults)."""
    if not isinstance(record, dict):
        raise TableError(f"{path}: field 'protocol': not an object")
    known = set(Protocol().to_dict())
    unknown = sorted(set(record) - known)
    if unknown:
        raise TableError(f"{path}: field 'protocol.{unknown[0]}': unknown (a table from a newer hwnas?)")
    try:
        return Protocol(**record)
    except (TypeError, ValueError) as exc:
        raise TableError(f"{path}: field 'protocol': {exc}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


class OpenedTable(NamedTuple):
    """``open_table``'s answer: the table, the space it was made for, and the differences from
    this device that ``allow_mismatch`` accepted (unpacks as a tuple too)."""

    table: LatencyTable
    space: SearchSpace
    accepted: list[str]


def open_table(path: str | Path, *, allow_mismatch: bool = False, check_device: bool = True) -> OpenedTable:
    """Load a table for use, with the space it was made for; refuse it if it was made elsewhere.

    The space is rebuilt from the table's record and must have the same version as this hwnas's.
    With ``check_device``, the table's fingerprint must match this machine's for the same device
    settings. Returns the table, the space and the differences accepted with ``allow_mismatch``.
    """
    from hwnas.device.spec import spec_from_record
    from hwnas.device.connect import fingerprint
    from hwnas.spaces import get_space

    table = LatencyTable.load(path)
    cfg = dict(table.space.config)
    shape = tuple(cfg.pop("input_shape", ()))  # type: ignore[arg-type]
    classes = cfg.pop("num_classes", 10)
    space = get_space(table.space.name, input_shape=shape, num_classes=classes, **cfg)  # type: ignore[arg-type]
    fp = fingerprint(spec_from_record(table.device)) if check_device else None
    diffs = table.check(fingerprint=fp, space=space, allow_mismatch=allow_mismatch)
    if not table.complete:
        raise TableError(f"{table.path}: the table is incomplete ({len(table.entries)} entries); "
                         "re-run the same `hwnas profile` to finish it")
    return OpenedTable(table, space, diffs)
