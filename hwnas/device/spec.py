"""Device specs (``devices/*.toml``): the runtime settings a device is profiled and deployed with.

A spec names the device, the onnxruntime provider and its settings (threads, optimisation level,
execution mode, spinning, pinned cores, precision), the energy meter, the timing protocol and,
for a remote device, its SSH connection. ``load_device`` reads one by path or preset name;
every problem is a DeviceSpecError naming the file and the field.

How it works, and why: ``docs/design.md`` (hwnas.device.spec).
"""

from __future__ import annotations

import json
import math
import os
import re

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.core.presets import resolve
from hwnas.core.tomlfile import read_toml
from hwnas.measure.meters import EnergySettings
from hwnas.measure.session import EXEC_MODES, OPT_LEVELS, ProviderUnavailableError, RuntimeSettings
from hwnas.measure.timing import Protocol

__all__ = ["DeviceSpec", "DeviceSpecError", "EnergySettings", "IDENTITY_FIELDS", "ProviderUnavailableError",
           "RemoteSettings", "RuntimeSettings", "load_device", "parse_device", "spec_from_record", "with_runtime"]


METERS = ("none", "rapl", "nvml", "external")
PRECISIONS = ("fp32", "int8", "fp16")


MAX_THREADS = 4096  # threads and core numbers above this are typos, not machines
MAX_INT = 2**31 - 1


class DeviceSpecError(HwnasError, ValueError):
    """A device spec that is missing, malformed or names something unknown."""


@dataclass(frozen=True)
class RemoteSettings:
    """A target reached over SSH (``hwnas.remote``): only Python, numpy and onnxruntime on it."""

    connection: str  # ssh://user@host[:port]
    python: str = "python3"
    key_file: str | None = None
    workdir: str = ".cache/hwnas-agent"  # relative to the remote user's home
    known_hosts: str | None = None  # default: ssh's own (~/.ssh/known_hosts)
    accept_new_host_key: bool = False  # trust a host seen for the first time (never a changed key)
    batch: int = 32  # ONNX files sent and timed per round trip

    @property
    def user_host_port(self) -> tuple[str | None, str, int]:
        rest = self.connection.removeprefix("ssh://")
        user, _, hostport = rest.rpartition("@")
        host, _, port = hostport.partition(":")
        return (user or None), host, int(port or 22)


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    runtime: RuntimeSettings = RuntimeSettings()
    energy: EnergySettings = EnergySettings()
    batch_size: int = 1
    description: str = ""
    protocol: Protocol = Protocol()
    source: str = "<memory>"
    remote: RemoteSettings | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (what a table stores); ``spec_from_record`` reverses it."""
        d = asdict(self)
        return json.loads(json.dumps(d))

    def settings(self) -> dict[str, Any]:
        """The settings that change timings: a table made with other settings is refused."""
        r = self.runtime
        return {
            "provider": r.provider, "intra_op_threads": r.intra_op_threads, "inter_op_threads": r.inter_op_threads,
            "graph_optimization": r.graph_optimization, "execution_mode": r.execution_mode,
            "allow_spinning": r.allow_spinning, "batch_size": self.batch_size, "precision": r.precision,
        }


def _fail(path: str, fieldname: str, problem: str) -> DeviceSpecError:
    return DeviceSpecError(f"{path}: field '{fieldname}': {problem}")


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], path: str, prefix: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table.pop(key)
    name = f"{prefix}{key}"
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _fail(path, name, f"expected an integer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                          or not math.isfinite(value)):
        raise _fail(path, name, f"expected a finite number, got {value!r}")
    if kind is int and not -MAX_INT <= value <= MAX_INT:
        raise _fail(path, name, f"{value} is out of range")
    if kind in (str, bool, dict, list) and not isinstance(value, kind):
        raise _fail(path, name, f"expected a {kind.__name__ if isinstance(kind, type) else kind}, got {value!r}")
    return float(value) if kind is float else value


def _unknown(table: dict[str, Any], path: str, prefix: str) -> None:
    if table:
        key = sorted(table)[0]
        raise _fail(path, f"{prefix}{key}", "unknown field (check its spelling)")


def parse_device(data: dict[str, Any], path: str = "<memory>") -> DeviceSpec:
    """Build a DeviceSpec from parsed TOML; raises DeviceSpecError naming the file and field."""
    data = dict(data)
    name = _take(data, "name", str, path, "", None)
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise _fail(path, "name", "required: letters, digits, '-', '_' or '.' (it names the table folder)")
    description = _take(data, "description", str, path, "", "")
    batch = _take(data, "batch_size", int, path, "", 1)
    if batch < 1:
        raise _fail(path, "batch_size", f"must be >= 1, got {batch}")

    runtime = _parse_runtime(data, path)
    energy = _parse_energy(data, path)
    protocol = _parse_protocol(data, path)
    remote = _parse_remote(data, path)
    _unknown(data, path, "")
    return DeviceSpec(name, runtime, energy, batch, description, protocol, path, remote)


def _parse_runtime(data: dict[str, Any], path: str) -> RuntimeSettings:
    rt = dict(_take(data, "runtime", dict, path, "", {}))
    p = "runtime."
    provider = _take(rt, "provider", str, path, p, "CPUExecutionProvider")
    intra = _take(rt, "intra_op_threads", int, path, p, 1)
    inter = _take(rt, "inter_op_threads", int, path, p, 1)
    for key, v in (("intra_op_threads", intra), ("inter_op_threads", inter)):
        if not 0 <= v <= MAX_THREADS:
            raise _fail(path, p + key, f"must be in [0, {MAX_THREADS}] (0 lets onnxruntime choose), got {v}")
    level = _take(rt, "graph_optimization", str, path, p, "all")
    if level not in OPT_LEVELS:
        raise _fail(path, p + "graph_optimization", f"{level!r} is not one of {', '.join(OPT_LEVELS)}")
    mode = _take(rt, "execution_mode", str, path, p, "sequential")
    if mode not in EXEC_MODES:
        raise _fail(path, p + "execution_mode", f"{mode!r} is not one of {', '.join(EXEC_MODES)}")
    spinning = _take(rt, "allow_spinning", bool, path, p, False)
    affinity = _take(rt, "affinity", list, path, p, None)
    if affinity is not None:
        if not affinity or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < MAX_THREADS
                                   for c in affinity):
            raise _fail(path, p + "affinity", f"expected a non-empty list of core numbers, got {affinity!r}")
        affinity = tuple(affinity)
    options = _take(rt, "provider_options", dict, path, p, {})
    nested = next((k for k, v in options.items() if isinstance(v, (dict, list))), None)
    if nested is not None:
        raise _fail(path, p + f"provider_options.{nested}", "expected a single value (onnxruntime takes text)")
    # onnxruntime reads provider options as text; a TOML true/false is its "1"/"0"
    options = {str(k): ("1" if v else "0") if isinstance(v, bool) else str(v) for k, v in options.items()}
    precision = _take(rt, "precision", str, path, p, "fp32")
    if precision not in PRECISIONS:
        raise _fail(path, p + "precision", f"{precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and provider == "CPUExecutionProvider":
        raise _fail(path, p + "precision", "fp16 needs a GPU provider (onnxruntime's CPU kernels run fp16 "
                                           "slower than fp32); use fp32 or int8 on a CPU")
    calibration = _take(rt, "calibration_data", str, path, p, None)
    if calibration is not None and precision != "int8":
        raise _fail(path, p + "calibration_data", "only used with precision = \"int8\"")
    _unknown(rt, path, p)
    return RuntimeSettings(provider, intra, inter, level, mode, spinning, affinity, options, precision, calibration)


def _parse_energy(data: dict[str, Any], path: str) -> EnergySettings:
    en = dict(_take(data, "energy", dict, path, "", {}))
    p = "energy."
    meter = _take(en, "meter", str, path, p, "none")
    if meter not in METERS:
        raise _fail(path, p + "meter", f"{meter!r} is not one of {', '.join(METERS)}")
    epath = _take(en, "path", str, path, p, None)
    if meter == "external" and not epath:
        raise _fail(path, p + "path", "meter 'external' needs the path of a CSV of power samples")
    energy = EnergySettings(
        meter=meter, path=epath, gpu_index=_take(en, "gpu_index", int, path, p, 0),
        time_column=_take(en, "time_column", str, path, p, "timestamp_s"),
        power_column=_take(en, "power_column", str, path, p, "power_w"),
        min_window_s=_take(en, "min_window_s", float, path, p, 0.2),
    )
    if energy.gpu_index < 0:
        raise _fail(path, p + "gpu_index", f"must be >= 0, got {energy.gpu_index}")
    if not 0 < energy.min_window_s <= 3600:
        raise _fail(path, p + "min_window_s", f"must be in (0, 3600] seconds, got {energy.min_window_s:g}")
    _unknown(en, path, p)
    return energy


def _parse_protocol(data: dict[str, Any], path: str) -> Protocol:
    pr = dict(_take(data, "protocol", dict, path, "", {}))
    defaults = asdict(Protocol())
    kwargs = {}
    for key, default in defaults.items():
        kind = type(default)
        kwargs[key] = _take(pr, key, kind, path, "protocol.", default)
    _unknown(pr, path, "protocol.")
    try:
        protocol = Protocol(**kwargs)
    except ValueError as exc:
        raise _fail(path, "protocol", str(exc)) from None
    return protocol


# user and host start with a letter, digit or '_': "ssh://-F..." must never reach ssh as an option
_CONNECTION_RE = re.compile(r"^ssh://(?:[A-Za-z0-9_][A-Za-z0-9._-]*@)?[A-Za-z0-9][A-Za-z0-9._-]*(?::\d{1,5})?$")


def _parse_remote(data: dict[str, Any], path: str) -> RemoteSettings | None:
    keys = ("python", "key_file", "workdir", "known_hosts", "accept_new_host_key", "remote_batch")
    connection = _take(data, "connection", str, path, "", None)
    if connection is None:
        extra = next((k for k in keys if k in data), None)
        if extra:
            raise _fail(path, extra, "only used with a remote target: add connection = \"ssh://user@host:port\"")
        return None
    if not _CONNECTION_RE.match(connection):
        raise _fail(path, "connection", f"{connection!r} is not ssh://[user@]host[:port] "
                    "(user and host start with a letter or digit)")
    remote = RemoteSettings(
        connection=connection, python=_take(data, "python", str, path, "", "python3"),
        key_file=_take(data, "key_file", str, path, "", None), workdir=_take(data, "workdir", str, path, "", ".cache/hwnas-agent"),
        known_hosts=_take(data, "known_hosts", str, path, "", None),
        accept_new_host_key=_take(data, "accept_new_host_key", bool, path, "", False),
        batch=_take(data, "remote_batch", int, path, "", 32),
    )
    if remote.batch < 1:
        raise _fail(path, "remote_batch", f"must be >= 1, got {remote.batch}")
    if remote.key_file and not Path(remote.key_file).expanduser().is_file():
        raise _fail(path, "key_file", f"{remote.key_file} does not exist")
    return remote


def load_device(path: str | os.PathLike[str]) -> DeviceSpec:
    """Read a device spec, by path or by preset name (``local-cpu``: ``hwnas devices`` lists
    them); raises DeviceSpecError naming the file and the field."""
    path = resolve(path, "devices")
    return parse_device(read_toml(path, DeviceSpecError, "device spec file"), str(path))


# Fields that must agree for a table to be used: the hardware, the runtime and its settings.
IDENTITY_FIELDS = ("cpu_model", "cpu_count", "machine", "system", "onnxruntime_version", "provider_used",
                   "intra_op_threads", "inter_op_threads", "graph_optimization", "execution_mode",
                   "allow_spinning", "batch_size", "precision")


def spec_from_record(record: dict[str, Any]) -> DeviceSpec:
    """Rebuild a DeviceSpec from ``DeviceSpec.to_dict()`` (as stored in a table)."""
    data = {k: v for k, v in record.items() if k not in ("source", "remote") and v is not None}
    remote = record.get("remote")
    if isinstance(remote, dict):
        data.update({k: v for k, v in remote.items() if k != "batch" and v is not None}, remote_batch=remote.get("batch", 32))
    for section in ("runtime", "energy", "protocol"):
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if v is not None and v != {}}
    return parse_device(data, str(record.get("source", "<table>")))


def with_runtime(spec: DeviceSpec, **changes: Any) -> DeviceSpec:
    """``spec`` with runtime settings changed (None: unchanged), validated as a spec file is:
    what ``--precision`` and ``--calibration-data`` do on the command line."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return spec
    record = spec.to_dict()
    record["runtime"].update(changes)
    if record["runtime"].get("precision") != "int8":
        record["runtime"]["calibration_data"] = None
    return spec_from_record(record)
