"""A measurement job: ONNX files, timed together with the protocol on the pinned cores, then
each one's energy per inference from the spec's meter. The host runs it for a local device and
the agent runs the very same code on a remote one.

A job, as JSON (what the host sends a remote agent)::

    {"folder": "...", "files": [{"file": "m0.onnx", "shapes": [[3, 32, 32]]}, ...],
     "runtime": {...}, "energy": {...}, "batch_size": 1, "protocol": {...}, "seed": 0}
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from hwnas.measure.host import pinned
from hwnas.measure.meters import EnergySettings, open_meter
from hwnas.measure.session import RuntimeSettings, make_runner
from hwnas.measure.timing import Protocol, Stats, measure


def run_job(job: Mapping[str, Any], *, source: str = "device spec",
            on_done: Callable[[int, Stats], None] | None = None) -> tuple[list[Stats], list[float | None], str | None]:
    """Time the job's files; returns their statistics, energy per inference (mJ, None without a
    meter) and the meter's source. ``on_done(i, stats)`` follows progress as entries finish."""
    runtime = RuntimeSettings.from_dict(job["runtime"])
    energy = EnergySettings.from_dict(job.get("energy") or {})
    runners = [make_runner(os.path.join(job.get("folder", ""), f["file"]), runtime, f["shapes"], job["batch_size"],
                           job.get("seed", 0), source=source) for f in job["files"]]
    meter = open_meter(energy, source=source)
    window_s = energy.min_window_s
    with pinned(runtime.affinity):
        stats = measure(runners, Protocol(**job["protocol"]), on_done=on_done)
        joules = [meter.measure(r, min_window_s=window_s)[0] for r in runners] if meter else [None] * len(runners)
    return stats, joules, meter.source if meter else None


def run_job_json(job: Mapping[str, Any]) -> dict[str, Any]:
    """``run_job`` with a JSON answer (the agent's reply)."""
    stats, joules, meter = run_job(job, source="remote agent")
    return {"stats": [s.to_dict() for s in stats], "energy_mj": joules if meter else None, "meter": meter}
