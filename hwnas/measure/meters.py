"""Energy meters. Every energy number records its source, and none is invented.

* ``rapl``: Linux powercap (``/sys/class/powercap/intel-rapl:N/energy_uj``), a cumulative
  microjoule counter that wraps at ``max_energy_range_uj``.
* ``nvml``: NVIDIA's total-energy counter (millijoules since the driver loaded), via nvidia-ml-py.
* ``external``: a CSV of timestamped power samples from a power meter (UNIX seconds and watts),
  integrated over each measurement window.
* ``none``: energy is unavailable.

A reading spans a window around a burst of inferences; energy per inference is the window's
energy divided by the number of inferences. It includes the device's idle power over the window.
The same meters run on the host and, shipped with the rest of ``hwnas.measure``, on a remote target.
"""

from __future__ import annotations

import abc
import csv
import io
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError


class EnergyMeterError(HwnasError, RuntimeError):
    """A meter that cannot be read, or a window it does not cover."""


class EnergyMeter(abc.ABC):
    """Measures the energy of a window: ``start()``, run the work, ``stop()`` -> millijoules."""

    source: str

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> float: ...

    def measure(self, work: Callable[[], object], *, min_window_s: float) -> tuple[float, int]:
        """Run ``work`` repeatedly for at least ``min_window_s``; returns (mJ per call, calls)."""
        calls = 0
        self.start()
        t0 = time.perf_counter()
        while True:
            work()
            calls += 1
            if time.perf_counter() - t0 >= min_window_s:
                break
        return self.stop() / calls, calls


class RaplMeter(EnergyMeter):
    """A powercap zone folder holding ``energy_uj`` and ``max_energy_range_uj``."""

    def __init__(self, zone: str | Path) -> None:
        self.zone = Path(zone)
        self.source = f"rapl:{self.zone}"
        try:
            self.max_uj = int((self.zone / "max_energy_range_uj").read_text())
            self._read()
        except (OSError, ValueError) as exc:
            raise EnergyMeterError(f"RAPL zone {self.zone} cannot be read ({exc}); on Linux the counter "
                                   "usually needs root or a readable /sys/class/powercap") from None
        self._start: int | None = None

    def _read(self) -> int:
        return int((self.zone / "energy_uj").read_text())

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float:
        if self._start is None:
            raise EnergyMeterError("RAPL meter stopped before it was started")
        end = self._read()
        delta = end - self._start
        if delta < 0:  # the counter wrapped once during the window
            delta += self.max_uj + 1
        self._start = None
        return delta / 1000.0


class NvmlMeter(EnergyMeter):
    def __init__(self, gpu_index: int = 0) -> None:
        try:
            import pynvml
        except ImportError:
            raise EnergyMeterError("energy meter 'nvml' needs nvidia-ml-py: pip install nvidia-ml-py") from None
        try:
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
            self._nvml = pynvml
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as exc:  # pynvml raises its own NVMLError family
            raise EnergyMeterError(f"NVML cannot read GPU {gpu_index}'s energy counter ({exc})") from None
        self.source = f"nvml:gpu{gpu_index}"
        self._start = 0

    def start(self) -> None:
        self._start = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)

    def stop(self) -> float:
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) - self._start)


class ExternalMeter(EnergyMeter):
    """Integrates a CSV of (UNIX time in s, power in W) samples over each window.

    The CSV may still be growing while hwnas measures (a logger writing it): ``stop()`` waits up
    to ``wait_s`` for samples that cover the end of the window.
    """

    def __init__(self, path: str | Path, *, time_column: str = "timestamp_s", power_column: str = "power_w",
                 wait_s: float = 2.0, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.time_column, self.power_column = time_column, power_column
        self.wait_s, self.clock = wait_s, clock
        self.source = f"external:{self.path}"
        self._t0: float | None = None
        self._load()

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.path.is_file():  # a pipe would block the read forever
            raise EnergyMeterError(f"{self.path}: no such power CSV, or not a regular file")
        try:
            text = self.path.read_bytes().decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise EnergyMeterError(f"{self.path}: cannot read the power CSV ({exc})") from None
        try:
            reader = csv.DictReader(io.StringIO(text, newline=""))
            cols = reader.fieldnames or []
            for c in (self.time_column, self.power_column):
                if c not in cols:
                    raise EnergyMeterError(f"{self.path}: no column {c!r} (columns: {', '.join(cols)})")
            rows = [(float(r[self.time_column]), float(r[self.power_column])) for r in reader]
            if not all(math.isfinite(t) and math.isfinite(w) for t, w in rows):
                raise ValueError("a time or power value is NaN or infinite")
        except (ValueError, TypeError, csv.Error) as exc:
            raise EnergyMeterError(f"{self.path}: a value is not a number ({exc})") from None
        if len(rows) < 2:
            raise EnergyMeterError(f"{self.path}: needs at least two power samples")
        data = np.asarray(sorted(rows))
        return data[:, 0], data[:, 1]

    def start(self) -> None:
        self._t0 = self.clock()

    def stop(self) -> float:
        if self._t0 is None:
            raise EnergyMeterError("external meter stopped before it was started")
        t0, t1 = self._t0, self.clock()
        self._t0 = None
        deadline = time.monotonic() + self.wait_s
        while True:
            t, p = self._load()
            if t[0] <= t0 and t[-1] >= t1:
                return integrate_power_mj(t, p, t0, t1)
            if time.monotonic() >= deadline:
                raise EnergyMeterError(f"{self.path}: samples cover {t[0]:.3f}-{t[-1]:.3f} s, "
                                       f"not the window {t0:.3f}-{t1:.3f} s")
            time.sleep(0.05)


def integrate_power_mj(t_s: np.ndarray, power_w: np.ndarray, t0: float, t1: float) -> float:
    """Energy in mJ of piecewise-linear power samples over [t0, t1] (trapezoids)."""
    inside = (t_s > t0) & (t_s < t1)
    ts = np.concatenate([[t0], t_s[inside], [t1]])
    ps = np.interp(ts, t_s, power_w)
    return float(np.sum((ps[1:] + ps[:-1]) * np.diff(ts)) / 2.0 * 1000.0)


@dataclass(frozen=True)
class EnergySettings:
    """Which meter reads a device's energy, and how."""

    meter: str = "none"  # none, rapl, nvml or external
    path: str | None = None  # rapl: powercap zone folder; external: CSV of power samples
    gpu_index: int = 0  # nvml
    time_column: str = "timestamp_s"  # external
    power_column: str = "power_w"  # external
    min_window_s: float = 0.2  # an energy reading spans at least this long

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnergySettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def open_meter(energy: EnergySettings, *, source: str = "device spec") -> EnergyMeter | None:
    """The meter ``energy`` names, or None for ``meter = "none"``. Raises EnergyMeterError if it
    cannot be read."""
    if energy.meter == "none":
        return None
    if energy.meter == "rapl":
        return RaplMeter(energy.path or "/sys/class/powercap/intel-rapl:0")
    if energy.meter == "nvml":
        return NvmlMeter(energy.gpu_index)
    if energy.meter == "external":
        return ExternalMeter(energy.path or "", time_column=energy.time_column, power_column=energy.power_column)
    raise EnergyMeterError(f"{source}: field 'energy.meter': unknown meter {energy.meter!r}")
