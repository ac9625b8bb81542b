"""The state a device is in when it is measured: load, busy cores, CPU frequency and governor,
temperature. Read from ``/proc`` and ``/sys`` where the system exposes them (Linux); a field the
system does not expose is None, never a guess.

Tables record these conditions when they are profiled, and a *preflight* compares them with what
a good measurement needs before profiling, validating or exporting (``hwnas doctor`` runs it
alone). Every reader takes ``root``, so tests use a fake ``/proc`` and ``/sys`` tree.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BUSY_SHARE = 0.5  # a core that spent over half of the sampling window working is busy
HOT_C = 80.0  # CPUs and SoCs throttle near 85-100 C
SLOW_CLOCK = 0.85  # current frequency below this share of the maximum: scaled down (or throttled)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def load_average(root: Path) -> float | None:
    text = _read(root, "proc/loadavg")
    try:
        return float(text.split()[0]) if text else None
    except ValueError:
        return None


def cpu_times(root: Path) -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot, from /proc/stat (empty where it is unreadable)."""
    text = _read(root, "proc/stat") or ""
    out = {}
    for line in text.splitlines():
        name, *fields = line.split() or [""]
        if not name.startswith("cpu") or not name[3:].isdigit():
            continue
        values = [int(v) for v in fields[:8]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        out[int(name[3:])] = (sum(values) - idle, sum(values))
    return out


def busy_between(before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]],
                 cores: Sequence[int] | None = None) -> list[int] | None:
    """Cores that spent more than half of the time between two ``cpu_times`` samples working;
    None when no time passed between them (nothing can be said)."""
    if not any(after.get(core, (0, t0))[1] > t0 for core, (_b0, t0) in before.items()):
        return None
    busy = []
    for core, (b0, t0) in before.items():
        b1, t1 = after.get(core, (b0, t0))
        if t1 > t0 and (b1 - b0) / (t1 - t0) > BUSY_SHARE and (cores is None or core in cores):
            busy.append(core)
    return sorted(busy)


def cpu_frequency(root: Path, cores: Sequence[int]) -> dict[str, Any]:
    """Governors and current/maximum clock (MHz) of ``cores``, where cpufreq is exposed."""
    governors, cur, top = set(), [], []
    for core in cores:
        base = f"sys/devices/system/cpu/cpu{core}/cpufreq"
        gov = _read(root, f"{base}/scaling_governor")
        if gov:
            governors.add(gov)
        for rel, into in (("scaling_cur_freq", cur), ("cpuinfo_max_freq", top)):
            text = _read(root, f"{base}/{rel}")
            if text and text.isdigit():
                into.append(int(text) / 1000.0)
    return {"governors": sorted(governors) or None,
            "freq_mhz": min(cur) if cur else None, "max_freq_mhz": max(top) if top else None}


def temperature_c(root: Path) -> float | None:
    """The hottest thermal zone, in degrees Celsius."""
    zones = root / "sys" / "class" / "thermal"
    temps = []
    for zone in sorted(zones.glob("thermal_zone*")) if zones.is_dir() else []:
        text = _read(zone, "temp")
        if text and text.lstrip("-").isdigit():
            temps.append(int(text) / 1000.0)
    return max(temps) if temps else None


def usable_cores(affinity: Sequence[int] | None = None) -> list[int]:
    """The cores this process may run on (narrowed to ``affinity`` when given)."""
    mine = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    return [c for c in mine if affinity is None or c in affinity] or mine


def read_conditions(affinity: Sequence[int] | None = None, *, root: str | Path = "/", window_s: float = 0.25,
                    cores: Sequence[int] | None = None) -> dict[str, Any]:
    """The device's state now, as JSON: load, usable and busy cores, frequency, temperature."""
    root = Path(root)
    usable = list(cores) if cores is not None else usable_cores(affinity)
    return {"load_1m": load_average(root), "cpu_count": os.cpu_count(), "usable_cores": usable,
            "busy_cores": _busy_now(root, window_s, usable),
            **cpu_frequency(root, usable), "temperature_c": temperature_c(root)}


def _busy_now(root: Path, window_s: float, cores: Sequence[int]) -> list[int] | None:
    before = cpu_times(root)
    if not before:
        return None
    time.sleep(window_s)
    return busy_between(before, cpu_times(root), cores)


def preflight(conditions: Mapping[str, Any]) -> list[str]:
    """What in ``conditions`` makes latency measurements untrustworthy, one line each."""
    warnings = []
    usable = conditions.get("usable_cores") or []
    busy = conditions.get("busy_cores")
    if busy:
        cpus = conditions.get("cpu_count") or len(usable)
        ran_on = (f"of the {len(usable)} core(s) this measurement runs on ({', '.join(map(str, usable))}; the "
                  f"machine has {cpus})" if len(usable) < cpus else f"of the machine's {cpus} core(s)")
        warnings.append(f"busy machine: {len(busy)} {ran_on} {'was' if len(busy) == 1 else 'were'} busy with other "
                        f"work (core {', '.join(map(str, busy))}); latencies will be slower and noisier than on an "
                        "idle device")
    load, cpus = conditions.get("load_1m"), conditions.get("cpu_count") or len(usable)
    if busy is None and load is not None and cpus and load > 0.5 * cpus:  # the per-core view, where known, is sharper
        warnings.append(f"busy machine: load average {load:.2f} on {cpus} core(s)")
    governors = [g for g in (conditions.get("governors") or []) if g != "performance"]
    if governors:
        warnings.append(f"frequency scaling: CPU governor {', '.join(governors)}; the clock follows the load, so "
                        "latencies depend on what ran before (set the governor to performance to profile)")
    freq, top = conditions.get("freq_mhz"), conditions.get("max_freq_mhz")
    if freq and top and freq < SLOW_CLOCK * top:
        warnings.append(f"slow clock: {freq:.0f} MHz of {top:.0f} MHz maximum (power saving or throttling)")
    temp = conditions.get("temperature_c")
    if temp is not None and temp >= HOT_C:
        warnings.append(f"heat: {temp:.0f} C; the device may be throttling")
    return warnings


def choose_threads(conditions: Mapping[str, Any]) -> int:
    """How many threads to give work on this machine: its usable cores that are not busy with
    other work, at least 1. An OpenMP pool with a thread on a taken core waits at every barrier
    for the thread that is not running (an epoch measured 25x slower so)."""
    usable = conditions.get("usable_cores") or [0]
    busy = set(conditions.get("busy_cores") or [])
    return max(1, len([c for c in usable if c not in busy]))


def threads_now(affinity: Sequence[int] | None = None, *, window_s: float = 0.1) -> tuple[int, str]:
    """``choose_threads`` for this machine now, and a line saying why (for logs and records)."""
    state = read_conditions(affinity, window_s=window_s)
    n = choose_threads(state)
    busy = state.get("busy_cores")
    why = (f"{n} thread(s): {len(state['usable_cores'])} usable core(s), "
           + ("busy cores unknown" if busy is None else f"{len(busy)} busy with other work"))
    return n, why


def available_memory_bytes(root: Path = Path("/")) -> int | None:
    """Memory a new allocation can get without swapping (MemAvailable), or None where unknown."""
    for line in (_read(root, "proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None
