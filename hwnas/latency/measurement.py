"""Measuring models on a device: export jobs (blocks or whole models) to verified ONNX files, and
time the files on the spec's target. The profiler, ``hwnas validate`` and ``hwnas export`` all
measure through here."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from hwnas.device.spec import DeviceSpec
from hwnas.device.target import Item, OnBatch, OnDone, Target
from hwnas.device.connect import open_target
from hwnas.measure.timing import Protocol, Stats
from hwnas.spaces.base import Architecture, Block, SearchSpace, calibrate_batchnorm, init_weights
from hwnas.models.onnx_io import ParityCheck, export_onnx
from hwnas.models.quantize import calibration_for, to_precision


class JobKind(str, enum.Enum):
    """What a measurement job times; compares equal to its text (as tables and reports store it)."""

    BLOCK = "block"  # one catalog block, alone
    MODEL = "model"  # a whole architecture

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Job:
    kind: JobKind  # given as text or a JobKind
    key: str  # block key, or architecture string
    block: Block | None = None
    arch: Architecture | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", JobKind(self.kind))
        if (self.block if self.kind is JobKind.BLOCK else self.arch) is None:
            raise ValueError(f"a {self.kind} job needs {'a block' if self.kind is JobKind.BLOCK else 'an architecture'}")


def build_block_model(space: SearchSpace, block: Block, seed: int = 0) -> torch.nn.Module:
    """A block alone, with seeded weights and BatchNorm statistics calibrated on random inputs."""
    module = init_weights(space.build_block(block), seed)
    gen = torch.Generator().manual_seed(seed + 1)
    batches = (tuple(torch.randn((4, *block.in_shape), generator=gen) for _ in range(block.n_inputs)) for _ in range(2))

    class _Star(torch.nn.Module):  # calibrate_batchnorm feeds one tensor; a sum takes several
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, xs: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return self.inner(*xs)

    calibrate_batchnorm(_Star(module), batches)
    return module.eval()


def export_job(job: Job, space: SearchSpace, spec: DeviceSpec, folder: Path, seed: int) -> tuple[Path, list[tuple[int, ...]]]:
    path = folder / f"{job.kind}-{abs(hash(job.key)) % 10**12}.onnx"
    batch = spec.batch_size
    if job.kind == "block":
        assert job.block is not None
        shapes = [job.block.in_shape] * job.block.n_inputs
        model = build_block_model(space, job.block, seed)
    else:
        assert job.arch is not None
        shapes = [space.input_shape]
        model = space.build(job.arch, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    example = tuple(torch.randn((batch, *s), generator=gen) for s in shapes)
    export_onnx(model, example, path, dynamic_batch=False, parity=ParityCheck(inputs=1, seed=seed))
    precision = spec.runtime.precision
    if precision != "fp32":  # the device runs another precision: time what it runs
        # a block's inputs are activations inside a network: only whole models see real images
        dataset = spec.runtime.calibration_data if job.kind is JobKind.MODEL else None
        to_precision(path, precision, calibration_for(dataset, space, seed), shapes, batch=batch)
    return path, shapes


def export_cached(job: Job, space: SearchSpace, spec: DeviceSpec, seed: int, scratch: Path) -> tuple[Path, list[tuple[int, ...]]]:
    """``export_job``, kept in the user's cache (``hwnas.core.files.cache_folder``) under a hash of
    everything the file depends on: the job, the space's name, version and settings, the device's
    runtime and batch, the seed and the library versions. Files that are timed again and again (the
    drift sentinels of ``predict --now``) are then exported once. Without a usable cache it exports
    into ``scratch``, as ``export_job`` does."""
    import hashlib
    import json

    import onnxruntime

    from hwnas.core.versions import __version__
    from hwnas.core.files import cache_folder, write_atomic

    folder = cache_folder("exports")
    if folder is None:
        return export_job(job, space, spec, scratch, seed)
    key = json.dumps([str(job.kind), job.key, space.name, space.version, space.config(), spec.batch_size,
                      spec.to_dict()["runtime"], seed, __version__, torch.__version__, onnxruntime.__version__],
                     sort_keys=True)
    path = folder / f"{job.kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.onnx"
    if path.is_file() and not path.is_symlink():
        shapes = [job.block.in_shape] * job.block.n_inputs if job.block is not None else [space.input_shape]
        return path, shapes
    made, shapes = export_job(job, space, spec, scratch, seed)
    write_atomic(path, made.read_bytes(), durable=False)  # whole or not at all: a killed run leaves no half file
    made.unlink()
    return path, shapes


def measure_files(
    spec: DeviceSpec,
    protocol: Protocol,
    items: Sequence[Item],
    *,
    seed: int = 0,
    on_done: OnDone | None = None,
    on_batch: OnBatch | None = None,
    target: Target | None = None,
) -> tuple[list[Stats], list[float | None]]:
    """Time ONNX files with ``protocol`` on the spec's device (its ``target``, opened here unless
    given): this machine, or a remote one in batches. Returns the statistics and energy per
    inference (mJ, or None without a meter). ``on_done(i, stats)`` follows local progress;
    ``on_batch(indices, stats, energy)`` sees finished work (once here, per batch there)."""
    return (target or open_target(spec)).measure(items, protocol, seed=seed, on_done=on_done, on_batch=on_batch)
