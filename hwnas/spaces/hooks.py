"""What a space may offer beyond the ``SearchSpace`` contract, each a protocol that only the stage
needing it asks for: a supernet's weight-sharing layout, the two extremes of a space, progressive
growth (DPP-Net) and its own surrogate features. A space offers one by defining its methods; the
functions below answer for a space that does not (a plain supernet, a generic encoding) or say
in one line that it cannot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from hwnas.core.errors import InvalidArchitectureError
from hwnas.spaces.architecture import Architecture
from hwnas.spaces.base import SearchSpace


@runtime_checkable
class SplitsSupernet(Protocol):
    """A space whose supernet can be split on a decision (few-shot NAS): one sub-supernet per choice."""

    def supernet_splits(self) -> tuple[str, ...]: ...

    def supernet_group(self, arch: Architecture, split: str) -> str: ...


@runtime_checkable
class HasSupernetTemplates(Protocol):
    """A space whose supernet needs other templates than its catalog's: architectures that together
    occupy every weight-sharing slot at its largest shape (in every group of every split)."""

    def supernet_templates(self) -> list[Architecture]: ...


@runtime_checkable
class HasExtremes(Protocol):
    """A space that knows its largest and smallest architecture by compute (the supernet's sandwich
    rule; a budget's sanity check)."""

    def sandwich(self) -> tuple[Architecture, Architecture]: ...


@runtime_checkable
class Grows(Protocol):
    """A cell space that progressive search can grow: the genes each step decides, in order; genes
    not yet decided take value 0, which must give a valid, smaller member."""

    def growth_steps(self) -> list[list[int]]: ...

    def grown(self, genes: Sequence[int], step: int) -> tuple[int, ...]: ...


@runtime_checkable
class HasSurrogateFeatures(Protocol):
    """A space that encodes its architectures for a surrogate better than one-hot genes (nb201: live
    edges and the path encoding)."""

    def surrogate_features(self, genes: np.ndarray) -> np.ndarray: ...


def supernet_templates(space: SearchSpace) -> list[Architecture]:
    return space.supernet_templates() if isinstance(space, HasSupernetTemplates) else space.catalog_templates()


def supernet_splits(space: SearchSpace) -> tuple[str, ...]:
    return space.supernet_splits() if isinstance(space, SplitsSupernet) else ()


def supernet_group(space: SearchSpace, arch: Architecture, split: str) -> str:
    """Which sub-supernet ``arch`` belongs to when the supernet is split on ``split``."""
    if split not in supernet_splits(space):
        raise InvalidArchitectureError(f"{space.name}: no supernet split {split!r}")
    return space.supernet_group(arch, split)  # type: ignore[attr-defined]


def extremes(space: SearchSpace) -> tuple[Architecture, Architecture] | None:
    """The largest and the smallest architecture of ``space``, None where it does not know them."""
    return space.sandwich() if isinstance(space, HasExtremes) else None


def growth_steps(space: SearchSpace) -> list[list[int]] | None:
    return space.growth_steps() if isinstance(space, Grows) else None


def reset_after(steps: list[list[int]], genes: Sequence[int], step: int) -> tuple[int, ...]:
    """``genes`` with everything decided after ``step`` reset to 0: the usual ``Grows.grown``."""
    keep = {g for s in steps[: step + 1] for g in s}
    return tuple(int(v) if i in keep else 0 for i, v in enumerate(genes))


def kind_counts(space: SearchSpace, genes: np.ndarray) -> np.ndarray:
    """(n, kinds): occurrences of each block kind (convolutions, sums, ...) per architecture."""
    kinds = sorted({b.kind for b in space.catalog()})
    kind_of = np.array([kinds.index(b.kind) for b in space.catalog()], dtype=np.int64)
    idx, weight = space.block_slots(genes)
    n = len(idx)
    flat = (np.arange(n)[:, None] * len(kinds) + kind_of[idx]).ravel()
    return np.bincount(flat, weights=weight.ravel(), minlength=n * len(kinds)).reshape(n, len(kinds))


def surrogate_features(space: SearchSpace, genes: np.ndarray) -> np.ndarray:
    """Numeric features of canonical gene vectors (n, n_genes) for a surrogate model: the space's
    own, else one-hot genes and how often each kind of block occurs in the built model."""
    if isinstance(space, HasSurrogateFeatures):
        return space.surrogate_features(genes)
    g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
    onehot = np.concatenate([np.eye(c)[g[:, i]] for i, c in enumerate(space.cardinalities())], 1)
    return np.concatenate([onehot, kind_counts(space, g)], 1)
