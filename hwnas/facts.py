"""Model facts: parameters, FLOPs (multiply-accumulates, counted by fvcore) and the block list."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from fvcore.nn import FlopCountAnalysis

from hwnas.spaces.base import Architecture, SearchSpace


@dataclass(frozen=True)
class BlockFacts:
    key: str
    kind: str
    path: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class ModelFacts:
    space: str
    arch: str
    arch_id: str
    canonical: str
    input_shape: tuple[int, ...]
    params: int
    macs: int  # fvcore counts one multiply-accumulate as one "flop"
    blocks: tuple[BlockFacts, ...]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(space: SearchSpace, arch: Architecture) -> ModelFacts:
    """Parameters and MACs of ``arch`` built in ``space``, in total and per block (batch 1)."""
    model = space.build(arch)
    blocks = space.blocks(arch)
    fvcore_log = logging.getLogger("fvcore")
    level = fvcore_log.level
    fvcore_log.setLevel(logging.ERROR)  # fvcore logs every op it does not count (add, relu, ...)
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(model, space.example_input(1))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
            by_module = analysis.by_module()
            total = int(analysis.total())
    finally:
        fvcore_log.setLevel(level)
    facts = tuple(
        BlockFacts(b.key, b.kind, b.path, b.in_shape, b.out_shape,
                   count_params(model.get_submodule(b.path)), int(by_module.get(b.path, 0)))
        for b in blocks
    )
    return ModelFacts(space.name, arch.string, arch.id, arch.canonical, space.input_shape,
                      count_params(model), total, facts)
