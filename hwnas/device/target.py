"""Where measurements run: one interface for this machine and a remote one.

    target = open_target(spec)          # hwnas.device.connect
    target.check_provider()
    target.fingerprint()
    stats, energy_mj = target.measure(items, protocol, seed=0)

Both sides run ``hwnas.measure``: this machine in-process, a remote one through its agent.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwnas.device.spec import DeviceSpec
from hwnas.measure.timing import Protocol, Stats

Item = tuple[Path, list[tuple[int, ...]]]  # an ONNX file and the shapes of its inputs (batch excluded)
OnDone = Callable[[int, Stats], None]  # entry i finished its first pass
OnBatch = Callable[[list[int], list[Stats], list[float | None]], None]  # these entries are finished, energy too


class Target(abc.ABC):
    """A device that ONNX files can be measured on, with the spec's settings."""

    def __init__(self, spec: DeviceSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def providers(self) -> list[str]:
        """The execution providers onnxruntime offers there."""

    @abc.abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """What identifies the device and runtime (recorded in every table and card)."""

    @abc.abstractmethod
    def measure(self, items: Sequence[Item], protocol: Protocol, *, seed: int = 0, on_done: OnDone | None = None,
                on_batch: OnBatch | None = None) -> tuple[list[Stats], list[float | None]]:
        """Time the files with ``protocol``; returns statistics and energy per inference (mJ or None)."""

    def provider_home(self) -> str:
        """Where providers were looked for, for messages ("in onnxruntime 1.20", "on ssh://...")."""
        return "in onnxruntime"

    def check_provider(self) -> None:
        """Raise ProviderUnavailableError unless onnxruntime there has the spec's provider."""
        from hwnas.measure.session import ProviderUnavailableError

        available = self.providers()
        provider = self.spec.runtime.provider
        if provider not in available:
            raise ProviderUnavailableError(f"{self.spec.source}: field 'runtime.provider': {provider} is not available "
                                           f"{self.provider_home()} (available: {', '.join(available)})")

    @abc.abstractmethod
    def conditions(self) -> dict[str, Any]:
        """The device's state now (``hwnas.measure.conditions``): load, busy cores, clock, heat."""

    def preflight(self) -> tuple[dict[str, Any], list[str]]:
        """The conditions, and one line for each that makes measurements untrustworthy."""
        from hwnas.measure.conditions import preflight

        state = self.conditions()
        return state, preflight(state)

    def job(self, items: Sequence[Item], protocol: Protocol, seed: int, folder: str = "") -> dict[str, Any]:
        """The measurement job (``hwnas.measure.job``) for these files."""
        return {"folder": folder, "files": [{"file": str(path), "shapes": [list(s) for s in shapes]} for path, shapes in items],
                "runtime": self.spec.runtime.to_dict(), "energy": self.spec.energy.to_dict(), "batch_size": self.spec.batch_size,
                "protocol": protocol.to_dict(), "seed": seed}
