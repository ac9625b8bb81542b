"""This machine as a measurement target: ``hwnas.measure`` in-process."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import onnxruntime as ort

from hwnas.device.target import Item, OnBatch, OnDone, Target
from hwnas.measure import host
from hwnas.measure.conditions import read_conditions
from hwnas.measure.job import run_job
from hwnas.measure.timing import Protocol, Stats


class LocalTarget(Target):
    def provider_home(self) -> str:
        return f"in onnxruntime {ort.__version__}"

    def providers(self) -> list[str]:
        return list(ort.get_available_providers())

    def check_provider(self) -> None:
        """The provider, and the spec's cores and threads against this machine's (one line each)."""
        super().check_provider()
        from hwnas.device.spec import DeviceSpecError

        rt, cores = self.spec.runtime, os.cpu_count() or 1
        usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(cores))
        missing = [c for c in rt.affinity or () if c not in usable]
        if missing:
            raise DeviceSpecError(f"{self.spec.source}: field 'runtime.affinity': core {missing[0]} is not one this "
                                  f"process may use on this machine (usable: {', '.join(map(str, usable))})")
        for key in ("intra_op_threads", "inter_op_threads"):
            if getattr(rt, key) > cores:
                raise DeviceSpecError(f"{self.spec.source}: field 'runtime.{key}': {getattr(rt, key)} threads on a "
                                      f"machine with {cores} cores")

    def fingerprint(self) -> dict[str, Any]:
        import onnx

        self.check_provider()
        return {"device": self.spec.name, **host.fingerprint(self.spec.runtime, self.spec.batch_size),
                "onnx_version": onnx.__version__}

    def conditions(self) -> dict[str, Any]:
        return read_conditions(self.spec.runtime.affinity)

    def measure(self, items: Sequence[Item], protocol: Protocol, *, seed: int = 0, on_done: OnDone | None = None,
                on_batch: OnBatch | None = None) -> tuple[list[Stats], list[float | None]]:
        self.check_provider()
        stats, energy, _ = run_job(self.job(items, protocol, seed), source=self.spec.source, on_done=on_done)
        if on_batch:
            on_batch(list(range(len(items))), stats, energy)
        return stats, energy
