"""Architectures as immutable, validated values, and blocks as the keys of a latency table."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.spaces.registry import SPACES

Shape = tuple[int, int, int]  # (C, H, W), batch excluded


@dataclass(frozen=True)
class Architecture:
    """One member of a search space, validated when built.

    ``genes`` is the canonical integer encoding (what pymoo searches over), ``string`` the
    human-readable form in the space's own format, and ``canonical`` the string of the
    representative of its equivalence class (isomorphic NB-201 cells share it). ``id`` hashes
    ``canonical``, so equivalent architectures share an id while their strings stay distinct.
    Build one with ``space.parse(...)`` or ``space.decode(...)``.
    """

    space: str
    genes: tuple[int, ...]
    string: str
    canonical: str

    def __post_init__(self) -> None:
        cls = SPACES.get(self.space)
        genes = cls.canonical_genes(self.genes)  # raises on a bad vector
        if genes != self.genes:
            raise InvalidArchitectureError(
                f"{self.space}: genes {list(self.genes)} are not canonical (expected {list(genes)})"
            )
        if cls.genes_to_string(genes) != self.string or cls.canonical_string(genes) != self.canonical:
            raise InvalidArchitectureError(
                f"{self.space}: string {self.string!r} does not match genes {list(self.genes)}"
            )

    @property
    def id(self) -> str:
        """A stable 16-hex-digit id: a hash of the space name and the canonical string."""
        return hashlib.sha256(f"{self.space}:{self.canonical}".encode()).hexdigest()[:16]

    def encode(self) -> np.ndarray:
        """The integer gene vector (a fresh array)."""
        return np.asarray(self.genes, dtype=np.int64)

    def __str__(self) -> str:
        return self.string

    @classmethod
    def _trusted(cls, space: str, genes: tuple[int, ...], string: str, canonical: str) -> Architecture:
        """An architecture whose fields a space has just derived from validated canonical genes.
        Skips re-deriving them in ``__post_init__``, which costs half of drawing a 10,000-candidate
        pool; only ``SearchSpace.decode`` calls it."""
        arch = object.__new__(cls)
        for name, value in (("space", space), ("genes", genes), ("string", string), ("canonical", canonical)):
            object.__setattr__(arch, name, value)
        return arch


@dataclass(frozen=True)
class Block:
    """A unit of a built model that a latency table holds one entry for.

    ``key`` is readable and unique per distinct computation (kind, shapes, settings), so two
    blocks with the same key cost the same. ``path`` is the dotted name of the module in the
    model built by ``space.build``; ``config`` is what ``space.build_block`` needs to build the
    block alone.
    """

    key: str
    kind: str
    in_shape: Shape
    out_shape: tuple[int, ...]  # (C, H, W), or (classes,) for a head
    path: str
    config: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    n_inputs: int = 1  # a sum node takes several tensors of in_shape


def shape_str(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def parse_shape(text: str) -> Shape:
    """Parse ``CxHxW`` (e.g. ``3x32x32``) into a tuple; raises InvalidInputShapeError."""
    parts = text.lower().strip().split("x")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidInputShapeError(f"input shape {text!r} is not of the form CxHxW, e.g. 3x32x32")
    c, h, w = (int(p) for p in parts)
    if min(c, h, w) < 1:
        raise InvalidInputShapeError(f"input shape {text!r} has a zero dimension")
    return (c, h, w)
