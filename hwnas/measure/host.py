"""The machine measurements run on: its fingerprint, and pinning to the spec's cores."""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator
from typing import Any

import onnxruntime as ort

from hwnas.core.errors import HwnasError
from hwnas.measure.session import RuntimeSettings, probe_session


class AffinityError(HwnasError, ValueError):
    """The spec's cores include none that this process may run on."""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint(runtime: RuntimeSettings, batch_size: int) -> dict[str, Any]:
    """What identifies this machine and runtime. ``provider_used`` comes from a real session."""
    sess = probe_session(runtime)
    affinity = runtime.affinity
    return {
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "system": platform.system(), "os": platform.platform(), "python": platform.python_version(),
        "onnxruntime_version": ort.__version__, "onnx_version": None, "provider_used": sess.get_providers()[0],
        "affinity": list(affinity) if affinity else None,
        "provider": runtime.provider,
        "intra_op_threads": runtime.intra_op_threads, "inter_op_threads": runtime.inter_op_threads,
        "graph_optimization": runtime.graph_optimization, "execution_mode": runtime.execution_mode,
        "allow_spinning": runtime.allow_spinning, "batch_size": batch_size, "precision": runtime.precision,
    }


@contextlib.contextmanager
def pinned(cores: tuple[int, ...] | list[int] | None) -> Iterator[None]:
    """Pin this process to ``cores`` for the block, then restore; raises AffinityError when none
    of them is usable. Only while measuring: torch's OpenMP threads spin-wait and crawl when
    squeezed onto one core during export."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    usable = set(cores) & before
    if not usable:
        raise AffinityError(f"runtime.affinity {list(cores)} names no core this process may use ({sorted(before)})")
    os.sched_setaffinity(0, usable)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
