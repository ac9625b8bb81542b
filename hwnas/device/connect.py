"""Connecting to the device a spec names: its target (this machine, or a remote one over SSH),
its fingerprint, and an onnxruntime session on it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import onnxruntime as ort

from hwnas.device.local import LocalTarget
from hwnas.device.spec import DeviceSpec, DeviceSpecError
from hwnas.device.ssh import RemoteTarget
from hwnas.device.target import Target
from hwnas.measure import host, session


def open_target(spec: DeviceSpec) -> Target:
    """Where the spec's measurements run: over SSH for a spec with ``connection``, else here."""
    return RemoteTarget(spec) if spec.remote is not None else LocalTarget(spec)


def check_provider(spec: DeviceSpec) -> None:
    """Raise ProviderUnavailableError unless onnxruntime on the spec's device has its provider."""
    open_target(spec).check_provider()


def fingerprint(spec: DeviceSpec) -> dict[str, Any]:
    """What identifies the device and runtime a table was measured on. ``provider_used`` comes from
    a real session, not from the spec; for a remote spec everything is read on the target."""
    return open_target(spec).fingerprint()


def device_session(model_path: str | os.PathLike[str], spec: DeviceSpec) -> ort.InferenceSession:
    """A local onnxruntime session on the spec's provider, refusing any silent fallback to the CPU."""
    LocalTarget(spec).check_provider()
    return session.open_session(model_path, spec.runtime, source=spec.source)


@contextlib.contextmanager
def pinned(cores: tuple[int, ...] | None) -> Iterator[None]:
    """``hwnas.measure.host.pinned``, with a spec error naming the field when no core is usable."""
    try:
        with host.pinned(cores):
            yield
    except host.AffinityError as exc:
        raise DeviceSpecError(str(exc)) from None
