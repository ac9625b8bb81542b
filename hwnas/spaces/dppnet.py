"""``dppnet``: a mobile cell space in the style of DPP-Net (Dong et al., ECCV 2018).

A cell is a sequence of 1-4 layers. Each layer applies a normalisation op and then a
convolution to the concatenation of everything before it in the cell (dense connectivity, as in
DenseNet and CondenseNet), and adds ``growth`` channels:

    norm: bnrelu (BN + ReLU) | bn | id
    conv: conv1x1 | conv3x3 | gconv1x1 | gconv3x3 (groups) | dwsep3x3 (depthwise 3x3 + pointwise)

How it works, and why: ``docs/design.md`` (hwnas.spaces.dppnet).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.spaces.base import Architecture, Block, SearchSpace, SequentialNet, Shape, make_divisible, shape_str
from hwnas.spaces.hooks import reset_after
from hwnas.spaces.modules import BnReluPoolHead

NORMS: tuple[str, ...] = ("bnrelu", "bn", "id")
CONVS: tuple[str, ...] = ("conv1x1", "conv3x3", "gconv1x1", "gconv3x3", "dwsep3x3")
LAYERS: tuple[int, ...] = (1, 2, 3, 4)
MAX_LAYERS = max(LAYERS)


def _norm(name: str, channels: int) -> list[nn.Module]:
    if name == "bnrelu":
        return [nn.BatchNorm2d(channels), nn.ReLU()]
    if name == "bn":
        return [nn.BatchNorm2d(channels)]
    return []


def _conv(name: str, cin: int, cout: int, groups: int) -> list[nn.Module]:
    if name == "conv1x1":
        return [nn.Conv2d(cin, cout, 1, bias=False)]
    if name == "conv3x3":
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False)]
    if name == "gconv1x1":
        return [nn.Conv2d(cin, cout, 1, groups=groups, bias=False)]
    if name == "gconv3x3":
        return [nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False)]
    if name == "dwsep3x3":
        return [nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False)]
    raise InvalidArchitectureError(f"dppnet: unknown conv {name!r}")


class DenseLayer(nn.Module):
    """conv(norm(x)) concatenated in front of x: the newest features come first, so a layer's
    input starts with the same growth channels in cells of any length (the stage input, whose
    width depends on the cell length, comes last). A supernet shares such a layer across cell
    lengths with plain leading-channel views."""

    def __init__(self, norm: str, conv: str, cin: int, growth: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_norm(norm, cin), *_conv(conv, cin, growth, groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.body(x), x], dim=1)


class Transition(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.AvgPool2d(2, 2, ceil_mode=True))


def _stem(cin: int, cout: int, stride: int, pools: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    layers += [nn.AvgPool2d(2, 2, ceil_mode=True) for _ in range(pools)]
    return nn.Sequential(*layers)


class DPPNetSpace(SearchSpace):
    name = "dppnet"
    version = "2"  # 2: a dense layer puts its new channels first (a channel permutation of version 1)
    description = "DPP-Net cells: 1-4 densely connected layers x {bnrelu, bn, id} x 5 convs"
    blocks_in_sequence = True  # build_module runs blocks() one after another (memory composes per block)
    weight_sharing = True
    norm_choices = True

    def __init__(
        self,
        *,
        input_shape: Shape,
        num_classes: int = 10,
        growth: int = 12,
        N: int = 2,
        stem_channels: int = 24,
        groups: int = 4,
    ) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        if min(growth, N, stem_channels, groups) < 1 or max(growth, stem_channels, groups) > 4096 or N > 100:
            raise InvalidInputShapeError("dppnet: growth, stem_channels and groups must be in [1, 4096], N in [1, 100]")
        if growth % groups or stem_channels % groups:
            raise InvalidInputShapeError(f"dppnet: growth ({growth}) and stem_channels ({stem_channels}) must be multiples of groups ({groups})")
        self.growth, self.N, self.stem_channels, self.groups = int(growth), int(N), int(stem_channels), int(groups)

    # ----- genotype -----
    @classmethod
    def cardinalities(cls) -> tuple[int, ...]:
        return (len(LAYERS),) + (len(NORMS), len(CONVS)) * MAX_LAYERS

    @classmethod
    def _normalise(cls, genes: tuple[int, ...]) -> tuple[int, ...]:
        n = LAYERS[genes[0]]
        return genes[: 1 + 2 * n] + (0,) * (2 * (MAX_LAYERS - n))

    @classmethod
    def randomize_inactive(cls, genes, rng):  # type: ignore[no-untyped-def]
        genes = genes.copy()
        for slot in range(LAYERS[genes[0]], MAX_LAYERS):
            genes[1 + 2 * slot] = rng.integers(len(NORMS))
            genes[2 + 2 * slot] = rng.integers(len(CONVS))
        return genes

    @classmethod
    def sample_architectures(cls, rng: np.random.Generator, n: int = 1) -> list[Architecture]:
        # a cell of L layers has 15^L members: draw L in that proportion, then the layers per gene
        counts = np.array([(len(NORMS) * len(CONVS)) ** k for k in LAYERS], dtype=float)
        card = np.asarray(cls.cardinalities())
        genes = rng.integers(0, card, size=(n, len(card)))
        genes[:, 0] = rng.choice(len(LAYERS), size=n, p=counts / counts.sum())
        return [cls.decode(row) for row in genes]

    @classmethod
    def genes_to_string(cls, genes: tuple[int, ...]) -> str:
        n = LAYERS[genes[0]]
        return "+".join(f"{NORMS[genes[1 + 2 * i]]}-{CONVS[genes[2 + 2 * i]]}" for i in range(n))

    @classmethod
    def string_to_genes(cls, text: str) -> tuple[int, ...]:
        layers = text.split("+")
        if len(layers) not in LAYERS:
            raise InvalidArchitectureError(f"dppnet: {text!r} has {len(layers)} layers; a cell has {LAYERS[0]}-{LAYERS[-1]}")
        genes = [LAYERS.index(len(layers))]
        for i, layer in enumerate(layers, start=1):
            norm, _, conv = layer.partition("-")
            if norm not in NORMS:
                raise InvalidArchitectureError(f"dppnet: layer {i} {layer!r}: norm {norm!r} is not one of {', '.join(NORMS)}")
            if conv not in CONVS:
                raise InvalidArchitectureError(f"dppnet: layer {i} {layer!r}: conv {conv!r} is not one of {', '.join(CONVS)}")
            genes += [NORMS.index(norm), CONVS.index(conv)]
        genes += [0, 0] * (MAX_LAYERS - len(layers))
        return tuple(genes)

    @classmethod
    def growth_steps(cls) -> list[list[int]]:
        # one layer per step; the layer-count gene is set by grown()
        return [[1 + 2 * i, 2 + 2 * i] for i in range(MAX_LAYERS)]

    @classmethod
    def grown(cls, genes, step: int) -> tuple[int, ...]:  # type: ignore[no-untyped-def]
        g = list(reset_after(cls.growth_steps(), genes, step))
        g[0] = min(step, len(LAYERS) - 1)
        return tuple(g)

    @classmethod
    def size(cls) -> int:
        return sum((len(NORMS) * len(CONVS)) ** n for n in LAYERS)

    # ----- phenotype -----
    def config(self) -> dict[str, object]:
        return {**super().config(), "growth": self.growth, "N": self.N, "stem_channels": self.stem_channels, "groups": self.groups}

    def _stem_reduction(self) -> tuple[int, int]:
        side = min(self.input_shape[1:])
        n = min(3, int(math.log2(side / 32))) if side >= 64 else 0
        return (2 if n else 1), max(0, n - 1)

    def blocks(self, arch: Architecture) -> list[Block]:
        self._check_arch(arch)
        g = arch.genes
        layers = [(NORMS[g[1 + 2 * i]], CONVS[g[2 + 2 * i]]) for i in range(LAYERS[g[0]])]
        c_in, h, w = self.input_shape
        stride, pools = self._stem_reduction()
        out: list[Block] = []

        def add(kind: str, tail: str, in_shape: Shape, out_shape: tuple[int, ...], **cfg: object) -> None:
            key = f"{kind}-in:{shape_str(in_shape)}-{tail}"
            out.append(Block(key, kind, in_shape, out_shape, f"blocks.{len(out)}", {"kind": kind, **cfg}))

        h2, w2 = (h - 1) // stride + 1, (w - 1) // stride + 1
        for _ in range(pools):
            h2, w2 = (h2 + 1) // 2, (w2 + 1) // 2
        c = self.stem_channels
        add("stem", f"out:{c}-s{stride}-p{pools}", (c_in, h, w), (c, h2, w2), cin=c_in, cout=c, stride=stride, pools=pools,
            share="stem")
        h, w = h2, w2
        # a transition's or the head's input is the last cell's layers, newest first, then what came
        # before: a shorter cell's inputs sit that many growth channels into the longest cell's
        # (its layer l output at the same place), the supernet's view starts there
        shift = self.growth * (MAX_LAYERS - len(layers))
        for stage in range(3):
            if stage > 0:
                c2 = make_divisible(c * 0.5, self.groups)
                h2, w2 = (h + 1) // 2, (w + 1) // 2
                add("transition", f"out:{c2}", (c, h, w), (c2, h2, w2), cin=c, cout=c2, share=f"t{stage}", share_shift=shift)
                c, h, w = c2, h2, w2
            for cell in range(self.N):
                for layer, (norm, conv) in enumerate(layers):
                    tail = f"{norm}-{conv}-out:{self.growth}" + (f"-g{self.groups}" if conv.startswith("g") else "")
                    add("dense", tail, (c, h, w), (c + self.growth, h, w), norm=norm, conv=conv, cin=c, growth=self.growth,
                        groups=self.groups, share=f"st{stage}c{cell}l{layer}-{norm}-{conv}",
                        # what a supernet with share_convs uses instead: the conv by itself, and the
                        # BatchNorm (of bn and bnrelu alike) by itself; body.{norm_modules} is the conv
                        share_conv=f"st{stage}c{cell}l{layer}-{conv}", share_norm=f"st{stage}c{cell}l{layer}-norm",
                        norm_modules=len(_norm(norm, 1)))
                    c += self.growth
        add("head", f"out:{self.num_classes}", (c, h, w), (self.num_classes,), cin=c, classes=self.num_classes, share="head",
            share_shift=shift)
        return out

    def build_block(self, block: Block) -> nn.Module:
        cfg = block.config
        kind = cfg["kind"]
        if kind == "stem":
            return _stem(cfg["cin"], cfg["cout"], cfg["stride"], cfg["pools"])
        if kind == "dense":
            return DenseLayer(cfg["norm"], cfg["conv"], cfg["cin"], cfg["growth"], cfg["groups"])
        if kind == "transition":
            return Transition(cfg["cin"], cfg["cout"])
        if kind == "head":
            return BnReluPoolHead(cfg["cin"], cfg["classes"])
        raise InvalidArchitectureError(f"dppnet: unknown block kind {kind!r}")

    def build_module(self, arch: Architecture) -> nn.Module:
        return SequentialNet([self.build_block(b) for b in self.blocks(arch)])

    # ----- latency-table view -----
    def sandwich(self) -> tuple[Architecture, Architecture]:
        # most compute: the deepest cell of full 3x3 convolutions; least: one grouped 1x1
        return (self.parse("+".join(["bnrelu-conv3x3"] * MAX_LAYERS)), self.parse("id-gconv1x1"))

    def supernet_splits(self) -> tuple[str, ...]:
        return ("layers",)

    def supernet_group(self, arch: Architecture, split: str) -> str:
        if split != "layers":
            raise InvalidArchitectureError(f"{self.name}: no supernet split {split!r}")
        return f"L{LAYERS[arch.genes[0]]}"

    def catalog_templates(self) -> list[Architecture]:
        # for each cell length, every layer the same op: covers every (position, op) pair
        return [self.decode((li,) + (ni, ci) * MAX_LAYERS)
                for li in range(len(LAYERS)) for ni in range(len(NORMS)) for ci in range(len(CONVS))]

    @functools.cached_property
    def _lut(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per cell length: catalog positions of the fixed blocks, and dense[position, op]."""
        index = self.catalog_index()
        n_ops = len(NORMS) * len(CONVS)
        out = []
        for li in range(len(LAYERS)):
            dense = None
            fixed = None
            for op in range(n_ops):
                arch = self.catalog_templates()[li * n_ops + op]
                blocks = self.blocks(arch)
                d = [index[b.key] for b in blocks if b.kind == "dense"]
                if dense is None:
                    dense = np.zeros((len(d), n_ops), np.int64)
                    fixed = np.array([index[b.key] for b in blocks if b.kind != "dense"])
                dense[:, op] = d
            out.append((fixed, dense))
        return out

    def block_slots(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        n = len(g)
        n_fixed = len(self._lut[0][0])
        width = n_fixed + max(len(d) for _, d in self._lut)
        idx = np.zeros((n, width), np.int64)
        weight = np.zeros((n, width), np.int32)
        for li, (fixed, dense) in enumerate(self._lut):
            rows = np.flatnonzero(g[:, 0] == li)
            if not len(rows):
                continue
            L = LAYERS[li]
            ops = g[rows][:, 1 : 1 + 2 * L].reshape(len(rows), L, 2)
            op = ops[:, :, 0] * len(CONVS) + ops[:, :, 1]  # (rows, L)
            positions = len(dense)
            layer = np.arange(positions) % L  # positions run stage-major, then cell, then layer
            idx[rows, :n_fixed] = fixed
            weight[rows, :n_fixed] = 1
            idx[rows, n_fixed : n_fixed + positions] = dense[np.arange(positions), op[:, layer]]
            weight[rows, n_fixed : n_fixed + positions] = 1
        return idx, weight

