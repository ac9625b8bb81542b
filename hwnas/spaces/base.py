"""The search-space contract: architectures as immutable values, blocks as table keys.

A space has two halves:

* the *genotype* (class level, independent of input shape): which architectures exist, their
  integer encoding, their canonical string and id, sampling and variation operators;
* the *phenotype* (instance level, bound to an input shape and class count): the torch model of an
  architecture and the list of blocks whose latencies a device table holds.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.measure.conditions import available_memory_bytes
from hwnas.spaces.architecture import Architecture, Block, Shape, shape_str  # re-exported: the space contract's values
from hwnas.spaces.modules import SequentialNet, calibrate_batchnorm, init_weights, make_divisible

__all__ = ["MIN_SIDE", "Architecture", "Block", "SearchSpace", "SequentialNet", "Shape", "calibrate_batchnorm",
           "init_weights", "make_divisible", "shape_str"]  # with the space contract, its values and torch helpers

MIN_SIDE = 4  # below this, BatchNorm statistics over a few pixels are meaningless


# Building, calibrating and exporting a model holds a few batches of the stem's activations, which
# are up to this many times the input (stems widen 3 channels to 16-64 at full resolution).
ACTIVATION_FACTOR = 4 * 64


def _check_memory(name: str, input_shape: Shape) -> None:
    """Refuse an input no model of the space can be built for in this machine's memory, before
    anything is allocated (3x100000x100000 would ask for 480 GB, 3x20000x20000 would swap for hours)."""
    need = 4 * ACTIVATION_FACTOR * int(np.prod([int(s) for s in input_shape]))
    free = available_memory_bytes()
    if free is not None and need > free:
        raise InvalidInputShapeError(f"{name}: input {shape_str(input_shape)} needs about {need / 2**30:.0f} GiB "
                                     f"to build a model; {free / 2**30:.1f} GiB is available")


class SearchSpace(abc.ABC):
    """Base class of every search space. Subclasses are registered by name in ``hwnas.spaces``."""

    name: ClassVar[str]
    # Bump when the genotype, the builder or the block keys change: tables record it and refuse
    # to be used with another version.
    version: ClassVar[str]
    description: ClassVar[str]
    # what the weight-sharing supernet (hwnas.evaluation.supernet) may do with the space
    weight_sharing: ClassVar[bool] = False  # its sharing slots are declared in its blocks' config
    norm_choices: ClassVar[bool] = False  # layers choose a norm per conv (share_convs shares the conv)
    # the model runs blocks() one after another, each on the last one's output: per-block facts
    # (memory) compose into the model's
    blocks_in_sequence: ClassVar[bool] = False

    def __init__(self, *, input_shape: Shape, num_classes: int = 10) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise InvalidInputShapeError(f"{self.name}: input shape {input_shape} is not a positive CxHxW")
        if min(input_shape[1:]) < MIN_SIDE:
            raise InvalidInputShapeError(
                f"{self.name}: input {shape_str(input_shape)} is smaller than {MIN_SIDE}x{MIN_SIDE} pixels"
            )
        if num_classes < 2:
            raise InvalidInputShapeError(f"{self.name}: num_classes must be >= 2, got {num_classes}")
        _check_memory(self.name, input_shape)
        self.input_shape: Shape = tuple(int(s) for s in input_shape)  # type: ignore[assignment]
        self.num_classes = int(num_classes)

    # ----- genotype (class level) -------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def cardinalities(cls) -> tuple[int, ...]:
        """Number of choices of each gene; gene i takes values 0..cardinalities()[i]-1."""

    @classmethod
    @abc.abstractmethod
    def genes_to_string(cls, genes: tuple[int, ...]) -> str:
        """Human-readable string of a canonical gene vector."""

    @classmethod
    @abc.abstractmethod
    def string_to_genes(cls, text: str) -> tuple[int, ...]:
        """Parse a string into canonical genes; raises InvalidArchitectureError saying what is wrong."""

    @classmethod
    @abc.abstractmethod
    def size(cls) -> int:
        """The number of distinct architectures (distinct strings) in the space."""

    @classmethod
    def n_distinct(cls) -> int:
        """The number of distinct architectures up to equivalence (distinct ids); a search that has
        seen this many has seen the whole space."""
        return cls.size()

    @classmethod
    def canonical_string(cls, genes: tuple[int, ...]) -> str:
        """String of the representative of the architecture's equivalence class."""
        return cls.genes_to_string(genes)

    @classmethod
    def _normalise(cls, genes: tuple[int, ...]) -> tuple[int, ...]:
        """Map genes that a phenotype ignores to a fixed value (0). Genes are range-checked."""
        return genes

    @classmethod
    def canonical_genes(cls, genes: Sequence[int] | np.ndarray) -> tuple[int, ...]:
        """Validate a gene vector and return its canonical form."""
        card = cls.cardinalities()
        try:
            values = tuple(int(g) for g in genes)
        except (TypeError, ValueError):
            raise InvalidArchitectureError(f"{cls.name}: genes {genes!r} are not integers") from None
        if len(values) != len(card):
            raise InvalidArchitectureError(f"{cls.name}: expected {len(card)} genes, got {len(values)}")
        for i, (g, n) in enumerate(zip(values, card)):
            if not 0 <= g < n:
                raise InvalidArchitectureError(f"{cls.name}: gene {i} is {g}, outside 0..{n - 1}")
        return cls._normalise(values)

    @classmethod
    def decode(cls, genes: Sequence[int] | np.ndarray) -> Architecture:
        """Build the architecture of a gene vector; inactive genes are ignored."""
        canon = cls.canonical_genes(genes)
        string = cls.genes_to_string(canon)
        # only spaces with isomorphic members override canonical_string; the rest reuse the string
        canonical = string if cls.canonical_string.__func__ is SearchSpace.canonical_string.__func__ \
            else cls.canonical_string(canon)
        return Architecture._trusted(cls.name, canon, string, canonical)

    @classmethod
    def parse(cls, text: str) -> Architecture:
        """Build the architecture of a string; raises InvalidArchitectureError."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidArchitectureError(f"{cls.name}: empty architecture string")
        return cls.decode(cls.string_to_genes(text.strip()))

    @classmethod
    def randomize_inactive(cls, genes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Give genes the phenotype ignores random values, so that variation that activates them
        (a deeper stage, a longer cell) draws their settings uniformly instead of always 0."""
        return genes

    @classmethod
    def sample(cls, rng: np.random.Generator, n: int = 1) -> list[Architecture]:
        """Draw ``n`` architectures, each gene uniform over its choices (with replacement)."""
        card = np.asarray(cls.cardinalities())
        genes = rng.integers(0, card, size=(n, len(card)))
        return [cls.decode(row) for row in genes]

    @classmethod
    def multiplicity(cls, genes: Sequence[int] | np.ndarray) -> int:
        """How many gene vectors decode to this architecture: the product of the cardinalities of
        the genes its phenotype ignores (a gene is inactive when changing it leaves the canonical
        genes unchanged)."""
        canon = cls.canonical_genes(genes)
        count = 1
        for i, n in enumerate(cls.cardinalities()):
            if n > 1:
                other = list(canon)
                other[i] = (other[i] + 1) % n
                if cls.canonical_genes(other) == canon:
                    count *= n
        return count

    @classmethod
    def sample_architectures(cls, rng: np.random.Generator, n: int = 1) -> list[Architecture]:
        """Draw ``n`` architectures, each distinct architecture equally likely (with replacement).

        Where some genes can be inactive, per-gene sampling (`sample`) is not uniform over
        architectures: a dppnet cell length is drawn 1 time in 4, so the 15 one-layer cells are
        each drawn 15^3 times as often as a four-layer cell, and a choice of the fourth layer is
        used in 1 draw of 60. By default, `sample_by_rejection`; spaces override it with an exact,
        faster draw."""
        return cls.sample_by_rejection(rng, n)

    @classmethod
    def sample_by_rejection(cls, rng: np.random.Generator, n: int = 1) -> list[Architecture]:
        """`sample_architectures` for any space: a per-gene draw is kept with probability
        1/multiplicity (slow where few gene vectors are fully active: 0.05% of mobilenet's)."""
        card = np.asarray(cls.cardinalities())
        out: list[Architecture] = []
        while len(out) < n:
            genes = rng.integers(0, card)
            if rng.random() * cls.multiplicity(genes) < 1.0:
                out.append(cls.decode(genes))
        return out

    @classmethod
    def distinct_architectures(cls, limit: int) -> list[Architecture] | None:
        """Every distinct architecture (one per equivalence class), in a fixed order, where the
        space has at most ``limit`` of them and can list them; else None (draw pools instead)."""
        return None

    @classmethod
    def mutate(cls, arch: Architecture, rng: np.random.Generator, *, rate: float | None = None) -> Architecture:
        """Resample each gene with probability ``rate`` (default 1/#genes) to a different value.

        The child always differs from the parent in its string (unless the space has one member).
        """
        cls._check_arch(arch)
        card = np.asarray(cls.cardinalities())
        p = 1.0 / len(card) if rate is None else float(rate)
        for _ in range(100):
            genes = cls.randomize_inactive(arch.encode(), rng)
            mask = rng.random(len(card)) < p
            if not mask.any():
                mask[rng.integers(len(card))] = True
            mask &= card > 1
            shift = rng.integers(1, np.maximum(card, 2))  # 1..n-1: always a different value
            genes = np.where(mask, (genes + shift) % card, genes)
            child = cls.decode(genes)
            if child.genes != arch.genes:
                return child
        return child

    @classmethod
    def crossover(
        cls, a: Architecture, b: Architecture, rng: np.random.Generator
    ) -> tuple[Architecture, Architecture]:
        """Uniform crossover of two parents' gene vectors; returns two children."""
        cls._check_arch(a)
        cls._check_arch(b)
        ga = cls.randomize_inactive(a.encode(), rng)
        gb = cls.randomize_inactive(b.encode(), rng)
        mask = rng.random(len(ga)) < 0.5
        return cls.decode(np.where(mask, ga, gb)), cls.decode(np.where(mask, gb, ga))

    @classmethod
    def _check_arch(cls, arch: Architecture) -> None:
        if not isinstance(arch, Architecture) or arch.space != cls.name:
            got = arch.space if isinstance(arch, Architecture) else type(arch).__name__
            raise InvalidArchitectureError(f"expected an architecture of space {cls.name!r}, got {got!r}")

    # ----- phenotype (instance level) ---------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Settings that, with the space name and version, determine every model and block."""
        return {"input_shape": list(self.input_shape), "num_classes": self.num_classes}

    @abc.abstractmethod
    def blocks(self, arch: Architecture) -> list[Block]:
        """The blocks of the built model, in execution order, with their input shapes."""

    @abc.abstractmethod
    def build_block(self, block: Block) -> nn.Module:
        """A stand-alone module computing ``block`` (for timing it alone)."""

    @abc.abstractmethod
    def build_module(self, arch: Architecture) -> nn.Module:
        """The torch model of ``arch`` with the builder's default weights: no seeding, no BatchNorm
        calibration (``build`` adds both; the supernet replaces every parameter)."""

    def build(self, arch: Architecture, *, seed: int = 0, calibrate_bn: bool = True) -> nn.Module:
        """The torch model of ``arch``, in eval mode, mapping (N, C, H, W) to (N, num_classes).

        Weights are initialised from ``seed`` alone, so the same call gives the same model. With
        ``calibrate_bn``, BatchNorm statistics are then estimated on seeded random batches: an
        untrained model with default statistics (mean 0, variance 1) lets activations grow
        through summing cells (NB-201 logits reach ~1e3), which no trained model does.
        """
        self._check_arch(arch)
        model = init_weights(self.build_module(arch), seed)
        if calibrate_bn:
            gen = torch.Generator().manual_seed(seed + 1)
            calibrate_batchnorm(model, (torch.randn((4, *self.input_shape), generator=gen) for _ in range(2)))
        return model.eval()

    # ----- the latency-table view ---------------------------------------------------------------
    @abc.abstractmethod
    def catalog_templates(self) -> list[Architecture]:
        """Architectures whose blocks, together, are every distinct block of the space."""

    @functools.cached_property
    def _catalog(self) -> tuple[tuple[Block, ...], dict[str, int]]:
        blocks: dict[str, Block] = {}
        for arch in self.catalog_templates():
            for b in self.blocks(arch):
                blocks.setdefault(b.key, b)
        ordered = tuple(blocks.values())
        return ordered, {b.key: i for i, b in enumerate(ordered)}

    def catalog(self) -> tuple[Block, ...]:
        """Every distinct block any architecture of this space (at this input) can contain:
        the entries a complete latency table holds. Order is fixed."""
        return self._catalog[0]

    def catalog_index(self) -> dict[str, int]:
        """Block key -> its position in ``catalog()``."""
        return self._catalog[1]

    def block_slots(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Catalog indices of each architecture's blocks, with multiplicities: ``(index, weight)``.

        Both are (n, slots) arrays: architecture i contains catalog block ``index[i, j]``
        ``weight[i, j]`` times (0 for unused slots). ``genes`` is an (n, n_genes) matrix of
        canonical gene vectors. Subclasses replace this reference implementation with a
        vectorised one (the predictor's hot path); the tests check that the two agree.
        """
        index = self.catalog_index()
        rows = [[index[b.key] for b in self.blocks(self.decode(g))] for g in np.atleast_2d(genes)]
        width = max((len(r) for r in rows), default=0)
        idx = np.zeros((len(rows), width), dtype=np.int64)
        weight = np.zeros((len(rows), width), dtype=np.int32)
        for i, r in enumerate(rows):
            idx[i, : len(r)] = r
            weight[i, : len(r)] = 1
        return idx, weight

    def block_counts(self, genes: np.ndarray) -> np.ndarray:
        """How often each catalog block occurs in each architecture: shape (n, len(catalog))."""
        idx, weight = self.block_slots(genes)
        n, ncat = len(idx), len(self.catalog())
        flat = (np.arange(n)[:, None] * ncat + idx).ravel()
        return np.bincount(flat, weights=weight.ravel(), minlength=n * ncat).reshape(n, ncat).astype(np.int64)

    def example_input(self, batch: int = 1, *, seed: int = 0) -> torch.Tensor:
        """A deterministic random input of the space's shape."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randn((batch, *self.input_shape), generator=gen)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.config().items())
        return f"{type(self).__name__}({opts})"
