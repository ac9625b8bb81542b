"""``nb201``: the NAS-Bench-201 cell space (Dong & Yang, 2020).

A cell is a DAG on 4 nodes; each of the 6 edges i->j (i<j) carries one of five operations.
Strings use the benchmark's own format, node by node:

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

Macro skeleton (the benchmark's): conv3x3 stem with C channels, three stages of N cells at C, 2C
and 4C channels joined by residual reduction blocks, BN-ReLU, global average pool, linear.

How it works, and why: ``docs/design.md`` (hwnas.spaces.nb201).
"""

from __future__ import annotations

import functools
import itertools
import random
import re
from collections.abc import Sequence

import numpy as np
from torch import nn

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.spaces.base import Architecture, Block, SearchSpace, SequentialNet, Shape, shape_str
from hwnas.spaces.hooks import kind_counts, reset_after
from hwnas.spaces.modules import BnReluPoolHead
from hwnas.spaces.nb201_modules import Cell, ResBlock, Sum, Zero, edge_op

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (dst, src)
BENCHMARK_SEED = 88  # NAS-Bench-201's index order: enumerate, then shuffle with random.seed(88)

_NODE_RE = re.compile(r"^\|(?:[a-z0-9_]+~\d+\|)+$")


def _live_edges(genes: tuple[int, ...]) -> list[tuple[int, int, str]]:
    """Edges (dst, src, op) that are not ``none`` and lie on an input->output path."""
    real = [(d, s, OPS[g]) for (d, s), g in zip(EDGES, genes) if OPS[g] != "none"]
    reach_in = {0}
    for d, s, _ in sorted(real):  # edges sorted by dst: sources are settled before use
        if s in reach_in:
            reach_in.add(d)
    reach_out = {3}
    for d, s, _ in sorted(real, reverse=True):
        if d in reach_out:
            reach_out.add(s)
    return [(d, s, op) for d, s, op in real if s in reach_in and d in reach_out]


def _unique_str(genes: tuple[int, ...]) -> str:
    """NAS-Bench-201's isomorphism key (``to_unique_str(consider_zero=True)``)."""
    nodes = {0: "0"}
    for j in (1, 2, 3):
        terms = []
        for (d, s), g in zip(EDGES, genes):
            if d != j:
                continue
            op = OPS[g]
            if op == "none" or nodes[s] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[s])
            else:
                terms.append(f"({nodes[s]})@{op}")
        nodes[j] = "+".join(sorted(terms))
    return nodes[3]


# input-to-output paths as edge positions in EDGES: 3<-0; 1<-0, 3<-1; 2<-0, 3<-2; 1<-0, 2<-1, 3<-2
_PATHS: tuple[tuple[int, ...], ...] = ((3,), (0, 4), (1, 5), (0, 2, 5))


def _live_mask(g: np.ndarray) -> np.ndarray:
    """(n, 6) booleans: which edges of each gene row are live (vectorised ``_live_edges``)."""
    real = g != OPS.index("none")
    r1 = real[:, 0]
    r2 = real[:, 1] | (r1 & real[:, 2])
    o2 = real[:, 5]
    o1 = real[:, 4] | (real[:, 2] & o2)
    # (dst, src) order of EDGES: 10, 20, 21, 30, 31, 32
    return np.stack([real[:, 0] & o1, real[:, 1] & o2, real[:, 2] & r1 & o2, real[:, 3], real[:, 4] & r1,
                     real[:, 5] & r2], 1)


@functools.cache
def _representatives() -> dict[str, tuple[int, ...]]:
    """Isomorphism key -> the class member that comes first in enumeration order."""
    reps: dict[str, tuple[int, ...]] = {}
    for genes in itertools.product(range(len(OPS)), repeat=len(EDGES)):
        reps.setdefault(_unique_str(genes), genes)
    return reps


@functools.cache
def benchmark_order() -> tuple[str, ...]:
    """All cell strings in NAS-Bench-201's index order (index i is architecture number i)."""
    cells = [NB201Space.genes_to_string(g) for g in itertools.product(range(len(OPS)), repeat=len(EDGES))]
    random.Random(BENCHMARK_SEED).shuffle(cells)  # a private generator: same order as random.seed(88)
    return tuple(cells)


class NB201Space(SearchSpace):
    name = "nb201"
    version = "2"
    description = "NAS-Bench-201 cells: 6 edges x {none, skip, conv1x1, conv3x3, avgpool3x3}"

    def __init__(self, *, input_shape: Shape, num_classes: int = 10, C: int = 16, N: int = 5) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        if not (1 <= C <= 4096 and 1 <= N <= 100) or C != int(C) or N != int(N):
            raise InvalidInputShapeError(f"nb201: C must be a whole number in [1, 4096] and N in [1, 100], got C={C}, N={N}")
        self.C, self.N = int(C), int(N)

    # ----- genotype -----
    @classmethod
    def cardinalities(cls) -> tuple[int, ...]:
        return (len(OPS),) * len(EDGES)

    @classmethod
    def genes_to_string(cls, genes: tuple[int, ...]) -> str:
        nodes: list[list[str]] = [[], [], []]
        for (d, s), g in zip(EDGES, genes):
            nodes[d - 1].append(f"{OPS[g]}~{s}")
        return "+".join("|" + "|".join(n) + "|" for n in nodes)

    @classmethod
    def string_to_genes(cls, text: str) -> tuple[int, ...]:
        nodes = text.split("+")
        if len(nodes) != 3 or not all(_NODE_RE.match(n) for n in nodes):
            raise InvalidArchitectureError(
                f"nb201: {text!r} is not a cell string like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
            )
        genes = []
        for j, node in enumerate(nodes, start=1):
            items = node.strip("|").split("|")
            if len(items) != j:
                raise InvalidArchitectureError(f"nb201: node {j} needs {j} incoming edges, got {len(items)} in {node!r}")
            for expected_src, item in enumerate(items):
                op, src = item.split("~")
                if op not in OPS:
                    raise InvalidArchitectureError(f"nb201: node {j}: unknown operation {op!r} (known: {', '.join(OPS)})")
                if int(src) != expected_src:
                    raise InvalidArchitectureError(f"nb201: node {j}: edge {item!r} should come from node {expected_src}")
                genes.append(OPS.index(op))
        return tuple(genes)

    @classmethod
    def canonical_string(cls, genes: tuple[int, ...]) -> str:
        return cls.genes_to_string(_representatives()[_unique_str(genes)])

    @classmethod
    def size(cls) -> int:
        return len(OPS) ** len(EDGES)

    @classmethod
    def growth_steps(cls) -> list[list[int]]:
        # grow towards the input: first the direct edge 3<-0 (connected on its own), then node 1
        # with its edge to the output, then node 2 with its edges; undecided edges are 'none'
        return [[3], [0, 4], [1, 2, 5]]

    @classmethod
    def grown(cls, genes: Sequence[int], step: int) -> tuple[int, ...]:
        return reset_after(cls.growth_steps(), genes, step)

    @classmethod
    def n_distinct(cls) -> int:
        """Number of isomorphism classes (6,466)."""
        return len(_representatives())

    @classmethod
    def is_connected(cls, arch: Architecture) -> bool:
        """Whether the cell has a path from input to output (else it outputs zeros)."""
        cls._check_arch(arch)
        return bool(_live_edges(arch.genes))

    @classmethod
    def from_index(cls, index: int) -> Architecture:
        """The architecture with NAS-Bench-201 number ``index`` (0..15624)."""
        order = benchmark_order()
        if not 0 <= index < len(order):
            raise InvalidArchitectureError(f"nb201: index {index} is outside 0..{len(order) - 1}")
        return cls.parse(order[index])

    @classmethod
    def all_architectures(cls) -> list[Architecture]:
        """Every cell, in enumeration (gene) order."""
        return [cls.decode(g) for g in itertools.product(range(len(OPS)), repeat=len(EDGES))]

    @classmethod
    def distinct_architectures(cls, limit: int) -> list[Architecture] | None:
        """The 6,466 class representatives, in enumeration order."""
        reps = _representatives()
        return [cls.decode(g) for g in reps.values()] if len(reps) <= limit else None

    # ----- phenotype -----
    def config(self) -> dict[str, object]:
        return {**super().config(), "C": self.C, "N": self.N}

    def blocks(self, arch: Architecture) -> list[Block]:
        self._check_arch(arch)
        c_in, h, w = self.input_shape
        out: list[Block] = []

        def add(kind: str, tail: str, in_shape: Shape, out_shape: tuple[int, ...], path: str, n_inputs: int = 1, **cfg: object) -> None:
            key = f"{kind}-in:{shape_str(in_shape)}" + (f"-{tail}" if tail else "")
            out.append(Block(key, kind, in_shape, out_shape, path, {"kind": kind, **cfg}, n_inputs))

        C = self.C
        add("stem", f"out:{C}", (c_in, h, w), (C, h, w), "blocks.0", cin=c_in, cout=C)
        idx = 1
        live = _live_edges(arch.genes)
        for stage in range(3):
            if stage > 0:
                h2, w2 = (h - 1) // 2 + 1, (w - 1) // 2 + 1
                add("resblock", f"out:{2 * C}-s2", (C, h, w), (2 * C, h2, w2), f"blocks.{idx}", cin=C, cout=2 * C)
                C, h, w, idx = 2 * C, h2, w2, idx + 1
            shape = (C, h, w)
            for _ in range(self.N):
                if not live:
                    add("zero", "", shape, shape, f"blocks.{idx}.zero")
                for d, s, op in live:
                    if op != "skip_connect":  # identity: no computation, no ONNX node
                        add(op, f"out:{C}", shape, shape, f"blocks.{idx}.edges.e{d}{s}", op=op, channels=C)
                for j in (1, 2, 3):
                    n = sum(1 for d, _, _ in live if d == j)
                    if n > 1:
                        add("sum", f"n{n}", shape, shape, f"blocks.{idx}.sums.n{j}", n_inputs=n)
                idx += 1
        add("head", f"out:{self.num_classes}", (C, h, w), (self.num_classes,), f"blocks.{idx}", cin=C, classes=self.num_classes)
        return out

    def build_block(self, block: Block) -> nn.Module:
        cfg = block.config
        kind = cfg["kind"]
        if kind == "stem":
            return nn.Sequential(nn.Conv2d(cfg["cin"], cfg["cout"], 3, 1, 1, bias=False), nn.BatchNorm2d(cfg["cout"]))
        if kind == "resblock":
            return ResBlock(cfg["cin"], cfg["cout"])
        if kind == "head":
            return BnReluPoolHead(cfg["cin"], cfg["classes"])
        if kind == "sum":
            return Sum()
        if kind == "zero":
            return Zero()
        if kind in OPS:
            return edge_op(kind, cfg["channels"])
        raise InvalidArchitectureError(f"nb201: unknown block kind {kind!r}")

    def build_module(self, arch: Architecture) -> nn.Module:
        c_in = self.input_shape[0]
        C = self.C
        units: list[nn.Module] = [nn.Sequential(nn.Conv2d(c_in, C, 3, 1, 1, bias=False), nn.BatchNorm2d(C))]
        for stage in range(3):
            if stage > 0:
                units.append(ResBlock(C, 2 * C))
                C *= 2
            units += [Cell(_live_edges(arch.genes), C) for _ in range(self.N)]
        units.append(BnReluPoolHead(C, self.num_classes))
        return SequentialNet(units)

    # ----- latency-table view -----
    def catalog_templates(self) -> list[Architecture]:
        # all edges of one op (every op, every sum fan-in), plus a cut cell (the zero block)
        return [self.decode((op,) * len(EDGES)) for op in range(len(OPS))]

    @functools.cached_property
    def _lut(self) -> dict[str, np.ndarray]:
        index = self.catalog_index()
        templates = self.catalog_templates()
        fixed = [b for b in self.blocks(templates[2]) if b.kind in ("stem", "resblock", "head")]
        op = np.zeros((3, len(OPS)), np.int64)
        sum2, sum3, zero = (np.zeros(3, np.int64) for _ in range(3))
        for t, arch in enumerate(templates):
            per_stage = self._blocks_by_stage(arch)
            for s in range(3):
                for b in per_stage[s]:
                    if b.kind in OPS:
                        op[s, t] = index[b.key]
                    elif b.kind == "sum":
                        (sum2 if b.n_inputs == 2 else sum3)[s] = index[b.key]
                    elif b.kind == "zero":
                        zero[s] = index[b.key]
        return {"fixed": np.array([index[b.key] for b in fixed]), "op": op, "sum2": sum2, "sum3": sum3, "zero": zero}

    def _blocks_by_stage(self, arch: Architecture) -> list[list[Block]]:
        stages: list[list[Block]] = [[], [], []]
        stage = 0
        for b in self.blocks(arch):
            if b.kind == "resblock":
                stage += 1
            elif b.kind not in ("stem", "head"):
                stages[stage].append(b)
        return stages

    def surrogate_features(self, genes: np.ndarray) -> np.ndarray:
        """One-hot operations of the live edges (a dead edge counts as ``none``), the path
        encoding of the cell (White et al., BANANAS: which operation sequences lie on an
        input-to-output path) and block-kind counts."""
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        live = _live_mask(g)
        ops = np.where(live, g, 0)
        onehot = np.concatenate([np.eye(len(OPS))[ops[:, i]] for i in range(len(EDGES))], 1)
        real = len(OPS) - 1  # operations other than none, numbered 0..3 on a path
        paths = []
        for path in _PATHS:
            on = np.all(g[:, path] != 0, axis=1)
            code = np.zeros(len(g), dtype=np.int64)
            for e in path:
                code = code * real + (g[:, e] - 1)
            width = real ** len(path)
            paths.append(np.eye(width)[code] * on[:, None])
        # the two length-2 paths share one code book, as BANANAS counts sequences, not edges
        enc = np.concatenate([paths[0], paths[1] + paths[2], paths[3]], 1)
        return np.concatenate([onehot, enc, kind_counts(self, g)], 1)

    def block_slots(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        lut = self._lut
        n = len(g)
        live = _live_mask(g)
        computed = live & (g != OPS.index("skip_connect"))
        fan2 = live[:, 1].astype(int) + live[:, 2]
        fan3 = live[:, 3].astype(int) + live[:, 4] + live[:, 5]
        cut = ~live.any(1)
        cols = [np.broadcast_to(lut["fixed"], (n, len(lut["fixed"])))]
        weights = [np.ones((n, len(lut["fixed"])), np.int32)]
        N = self.N
        for s in range(3):
            cols += [lut["op"][s][g], lut["sum2"][s][None].repeat(n, 0)[:, None],
                     np.where(fan3 == 3, lut["sum3"][s], lut["sum2"][s])[:, None], lut["zero"][s][None].repeat(n, 0)[:, None]]
            weights += [N * computed, N * (fan2 == 2)[:, None], N * (fan3 >= 2)[:, None], N * cut[:, None]]
        return np.concatenate(cols, 1), np.concatenate(weights, 1).astype(np.int32)

