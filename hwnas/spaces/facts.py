"""Model facts: parameters, MACs (multiply-accumulates, counted by fvcore; FLOPs are 2 x MACs
everywhere hwnas says FLOPs) and the block list.

``describe`` builds a whole model. ``CatalogFacts`` counts each catalog block once, built
alone; a model's totals are then its block counts times those columns. The two agree exactly on
every space (the tests check it), so a pool of 10,000 candidates costs one matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from fvcore.nn import FlopCountAnalysis

from hwnas.core.log import quiet_logger
from hwnas.spaces.base import Architecture, Block, SearchSpace


def macs_of(module: torch.nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    with quiet_logger("fvcore"), torch.no_grad():
        analysis = FlopCountAnalysis(module, inputs)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        analysis.total()  # runs the trace inside the quiet block
    return analysis


def block_facts(space: SearchSpace, block: Block) -> tuple[int, int]:
    """``(params, macs)`` of one block built alone at its input shape (batch 1)."""
    module = space.build_block(block).eval()
    inputs = tuple(torch.zeros((1, *block.in_shape)) for _ in range(block.n_inputs))
    analysis = macs_of(module, inputs if len(inputs) > 1 else inputs[0])
    return count_params(module), int(analysis.total())


class CatalogFacts:
    """Params and MACs of whole architectures as sums over their catalog blocks.

    Each block is counted the first time an architecture needs it, then kept, so the cost is
    bounded by the catalog (hundreds of small blocks), not by the number of candidates.
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        n = len(space.catalog())
        self._params = np.full(n, np.nan)
        self._macs = np.full(n, np.nan)

    def totals(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(params, macs)`` of each canonical gene vector in the (n, n_genes) matrix."""
        idx, weight = self.space.block_slots(np.atleast_2d(genes))
        used = np.unique(idx[weight > 0])
        catalog = self.space.catalog()
        for i in used[np.isnan(self._params[used])]:
            self._params[i], self._macs[i] = block_facts(self.space, catalog[i])
        w = weight.astype(float)
        # unused slots carry weight 0 but may index a block never counted (NaN): mask them out
        params = np.where(w > 0, self._params[idx], 0.0)
        macs = np.where(w > 0, self._macs[idx], 0.0)
        return (params * w).sum(1), (macs * w).sum(1)

    def evaluate(self, archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        if not archs:
            return np.zeros(0), np.zeros(0)
        return self.totals(np.array([a.genes for a in archs], dtype=np.int64))


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
    analysis = macs_of(model, space.example_input(1))
    by_module = analysis.by_module()
    total = int(analysis.total())
    facts = tuple(
        BlockFacts(b.key, b.kind, b.path, b.in_shape, b.out_shape,
                   count_params(model.get_submodule(b.path)), int(by_module.get(b.path, 0)))
        for b in blocks
    )
    return ModelFacts(space.name, arch.string, arch.id, arch.canonical, space.input_shape,
                      count_params(model), total, facts)
