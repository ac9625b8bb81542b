"""``mobilenet``: inverted-residual (MBConv) stages in the style of MnasNet, FBNet and Once-for-All.

Macro skeleton (MobileNetV2 channels, scaled by the width multiplier):

    stem  conv3x3(32) + depthwise-separable(16)            fixed
    six stages of MBConv blocks, out channels 24, 32, 64, 96, 160, 320; nominal strides 2,2,2,1,2,1
    head  conv1x1(1280) + global average pool + linear     fixed

How it works, and why: ``docs/design.md`` (hwnas.spaces.mobilenet).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.spaces.base import (
    Architecture,
    Block,
    SearchSpace,
    SequentialNet,
    Shape,
    make_divisible,
    shape_str,
)

WIDTHS: tuple[str, ...] = ("0.25", "0.5", "0.75", "1.0")
KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANSIONS: tuple[int, ...] = (1, 3, 6)
DEPTHS: tuple[int, ...] = (1, 2, 3, 4)
STAGE_CHANNELS: tuple[int, ...] = (24, 32, 64, 96, 160, 320)
STAGE_STRIDES: tuple[int, ...] = (2, 2, 2, 1, 2, 1)
STEM_CHANNELS, FIRST_CHANNELS, HEAD_CHANNELS = 32, 16, 1280
MAX_DEPTH = max(DEPTHS)
GENES_PER_STAGE = 1 + 2 * MAX_DEPTH  # depth, then (kernel, expansion) per block slot

_BLOCK_RE = re.compile(r"^k(\d+)e(\d+)$")


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return layers


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (absent when e=1), kxk depthwise, 1x1 linear projection.

    The three parts are named by role, not by position, so that a parameter's path says what it
    is whatever the expansion: the supernet shares tensors by path, and with positional names an
    e=1 block's depthwise kernel and an e=6 block's expansion both sat at ``body.0``.
    """

    def __init__(self, cin: int, cout: int, kernel: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        self.expand = nn.Sequential(*_conv_bn(cin, hidden, 1)) if expansion != 1 else None
        self.depthwise = nn.Sequential(*_conv_bn(hidden, hidden, kernel, stride, groups=hidden))
        self.project = nn.Sequential(*_conv_bn(hidden, cout, 1, act=False))
        self.residual = stride == 1 and cin == cout
        self.register_load_state_dict_pre_hook(self._legacy_keys)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        return x + out if self.residual else out

    def _legacy_keys(self, module: nn.Module, state: dict[str, Any], prefix: str, *args: Any) -> None:
        """Weights saved before the parts were named (one ``body`` Sequential) still load."""
        parts = (["expand"] if self.expand is not None else []) + ["depthwise", "project"]
        for key in [k for k in state if k.startswith(prefix + "body.")]:
            index, _, rest = key[len(prefix) + 5:].partition(".")
            part, layer = divmod(int(index), 3)  # conv, bn, activation per part
            state[f"{prefix}{parts[part]}.{layer}.{rest}"] = state.pop(key)


class ConvPoolHead(nn.Module):
    """conv1x1 (BN, ReLU6), global average pool, linear: the MobileNetV2 classifier."""

    def __init__(self, cin: int, mid: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_conv_bn(cin, mid, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(mid, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.conv(x)), 1))


def _conv_out(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # odd kernel, padding k//2


class MobileNetSpace(SearchSpace):
    name = "mobilenet"
    version = "1"
    description = "MBConv stages (MnasNet/FBNet/OFA style): width x depth x kernel x expansion"
    blocks_in_sequence = True  # build_module runs blocks() one after another (memory composes per block)
    weight_sharing = True

    def __init__(self, *, input_shape: Shape, num_classes: int = 10, scale: float = 1.0) -> None:
        super().__init__(input_shape=input_shape, num_classes=num_classes)
        if not 0 < float(scale) <= 4:
            raise InvalidInputShapeError(f"mobilenet: option scale must be in (0, 4], got {scale}")
        self.scale = float(scale)

    def config(self) -> dict[str, object]:
        return {**super().config(), "scale": self.scale}

    # ----- genotype -----
    @classmethod
    def cardinalities(cls) -> tuple[int, ...]:
        stage = (len(DEPTHS),) + (len(KERNELS), len(EXPANSIONS)) * MAX_DEPTH
        return (len(WIDTHS),) + stage * len(STAGE_CHANNELS)

    @classmethod
    def _stage_genes(cls, genes: tuple[int, ...], s: int) -> tuple[int, ...]:
        start = 1 + s * GENES_PER_STAGE
        return genes[start : start + GENES_PER_STAGE]

    @classmethod
    def _normalise(cls, genes: tuple[int, ...]) -> tuple[int, ...]:
        out = list(genes)
        for s in range(len(STAGE_CHANNELS)):
            start = 1 + s * GENES_PER_STAGE
            depth = DEPTHS[genes[start]]
            for i in range(start + 1 + 2 * depth, start + GENES_PER_STAGE):
                out[i] = 0  # slots past the stage's depth do not exist
        return tuple(out)

    @classmethod
    def randomize_inactive(cls, genes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        genes = genes.copy()
        for s in range(len(STAGE_CHANNELS)):
            start = 1 + s * GENES_PER_STAGE
            depth = DEPTHS[genes[start]]
            for slot in range(depth, MAX_DEPTH):
                i = start + 1 + 2 * slot
                genes[i] = rng.integers(len(KERNELS))
                genes[i + 1] = rng.integers(len(EXPANSIONS))
        return genes

    @classmethod
    def sample_architectures(cls, rng: np.random.Generator, n: int = 1) -> list[Architecture]:
        # stages are independent and a stage of depth d has 9^d members: draw each depth in that proportion
        counts = np.array([(len(KERNELS) * len(EXPANSIONS)) ** d for d in DEPTHS], dtype=float)
        card = np.asarray(cls.cardinalities())
        genes = rng.integers(0, card, size=(n, len(card)))
        for s in range(len(STAGE_CHANNELS)):
            genes[:, 1 + s * GENES_PER_STAGE] = rng.choice(len(DEPTHS), size=n, p=counts / counts.sum())
        return [cls.decode(row) for row in genes]

    @classmethod
    def genes_to_string(cls, genes: tuple[int, ...]) -> str:
        parts = [f"w{WIDTHS[genes[0]]}"]
        for s in range(len(STAGE_CHANNELS)):
            g = cls._stage_genes(genes, s)
            depth = DEPTHS[g[0]]
            parts.append(",".join(f"k{KERNELS[g[1 + 2 * b]]}e{EXPANSIONS[g[2 + 2 * b]]}" for b in range(depth)))
        return "_".join(parts)

    @classmethod
    def string_to_genes(cls, text: str) -> tuple[int, ...]:
        parts = text.split("_")
        n = len(STAGE_CHANNELS)
        if len(parts) != n + 1 or not parts[0].startswith("w"):
            raise InvalidArchitectureError(
                f"mobilenet: {text!r} is not 'w<width>_<stage1>_..._<stage{n}>' with {n} stages, "
                "e.g. 'w1.0_k3e6,k5e3_k3e6_...'"
            )
        width = parts[0][1:]
        if width not in WIDTHS:
            raise InvalidArchitectureError(f"mobilenet: width {width!r} is not one of {', '.join(WIDTHS)}")
        genes = [WIDTHS.index(width)]
        for s, stage in enumerate(parts[1:], start=1):
            blocks = stage.split(",")
            if len(blocks) not in DEPTHS:
                raise InvalidArchitectureError(
                    f"mobilenet: stage {s} has {len(blocks)} blocks; depth must be one of {DEPTHS}"
                )
            genes.append(DEPTHS.index(len(blocks)))
            for b, token in enumerate(blocks, start=1):
                m = _BLOCK_RE.match(token)
                if not m:
                    raise InvalidArchitectureError(f"mobilenet: stage {s} block {b} {token!r} is not 'k<kernel>e<expansion>'")
                k, e = int(m.group(1)), int(m.group(2))
                if k not in KERNELS:
                    raise InvalidArchitectureError(f"mobilenet: stage {s} block {b}: kernel {k} is not one of {KERNELS}")
                if e not in EXPANSIONS:
                    raise InvalidArchitectureError(f"mobilenet: stage {s} block {b}: expansion {e} is not one of {EXPANSIONS}")
                genes += [KERNELS.index(k), EXPANSIONS.index(e)]
            genes += [0, 0] * (MAX_DEPTH - len(blocks))
        return tuple(genes)

    @classmethod
    def size(cls) -> int:
        per_stage = sum((len(KERNELS) * len(EXPANSIONS)) ** d for d in DEPTHS)
        return len(WIDTHS) * per_stage ** len(STAGE_CHANNELS)

    @classmethod
    def from_settings(cls, *, width: str, stages: list[list[tuple[int, int]]]) -> Architecture:
        """Build an architecture from readable settings: ``stages[s]`` lists (kernel, expansion)."""
        text = f"w{width}_" + "_".join(",".join(f"k{k}e{e}" for k, e in st) for st in stages)
        return cls.parse(text)

    # ----- phenotype -----
    def _strides(self) -> tuple[int, list[int]]:
        """Stem stride and per-stage first-block strides for this input size."""
        side = min(self.input_shape[1:])
        n_down = min(5, int(math.log2(side / 4))) if side >= 4 else 0
        positions: list[str | int] = ["stem"] + [s for s, st in enumerate(STAGE_STRIDES) if st == 2]
        active = set(positions[len(positions) - n_down :]) if n_down else set()
        stem = 2 if "stem" in active else 1
        return stem, [2 if s in active else 1 for s in range(len(STAGE_CHANNELS))]

    def blocks(self, arch: Architecture) -> list[Block]:
        self._check_arch(arch)
        g = arch.genes
        width = float(WIDTHS[g[0]]) * self.scale
        stem_stride, strides = self._strides()
        c, h, w = self.input_shape
        stem_c, first_c = make_divisible(STEM_CHANNELS * width), make_divisible(FIRST_CHANNELS * width)
        out: list[Block] = []

        def add(kind: str, key_tail: str, in_shape: Shape, out_shape: Shape, config: dict[str, Any]) -> None:
            key = f"{kind}-in:{shape_str(in_shape)}-{key_tail}"
            out.append(Block(key, kind, in_shape, out_shape, f"blocks.{len(out)}", {"kind": kind, **config}))

        h2, w2 = _conv_out(h, stem_stride), _conv_out(w, stem_stride)
        add("stem", f"mid:{stem_c}-out:{first_c}-s{stem_stride}", (c, h, w), (first_c, h2, w2),
            {"cin": c, "mid": stem_c, "cout": first_c, "stride": stem_stride, "share": "stem"})
        cin, h, w = first_c, h2, w2
        for s, base in enumerate(STAGE_CHANNELS):
            sg = self._stage_genes(g, s)
            cout = make_divisible(base * width)
            for b in range(DEPTHS[sg[0]]):
                k, e = KERNELS[sg[1 + 2 * b]], EXPANSIONS[sg[2 + 2 * b]]
                stride = strides[s] if b == 0 else 1
                h2, w2 = _conv_out(h, stride), _conv_out(w, stride)
                add("mbconv", f"out:{cout}-k{k}-e{e}-s{stride}", (cin, h, w), (cout, h2, w2),
                    {"cin": cin, "cout": cout, "kernel": k, "expansion": e, "stride": stride,
                     "share": f"s{s + 1}b{b + 1}"})  # every (k, e) choice shares one tensor (OFA)
                cin, h, w = cout, h2, w2
        mid = make_divisible(HEAD_CHANNELS * width)
        add("head", f"mid:{mid}-out:{self.num_classes}", (cin, h, w), (self.num_classes,),
            {"cin": cin, "mid": mid, "classes": self.num_classes, "share": "head"})
        return out

    def build_block(self, block: Block) -> nn.Module:
        cfg = block.config
        kind = cfg["kind"]
        if kind == "stem":
            return nn.Sequential(
                *_conv_bn(cfg["cin"], cfg["mid"], 3, cfg["stride"]),
                *_conv_bn(cfg["mid"], cfg["mid"], 3, groups=cfg["mid"]),
                *_conv_bn(cfg["mid"], cfg["cout"], 1, act=False),
            )
        if kind == "mbconv":
            return MBConv(cfg["cin"], cfg["cout"], cfg["kernel"], cfg["expansion"], cfg["stride"])
        if kind == "head":
            return ConvPoolHead(cfg["cin"], cfg["mid"], cfg["classes"])
        raise InvalidArchitectureError(f"mobilenet: unknown block kind {kind!r}")

    def build_module(self, arch: Architecture) -> nn.Module:
        return SequentialNet([self.build_block(b) for b in self.blocks(arch)])

    # ----- latency-table view -----
    def catalog_templates(self) -> list[Architecture]:
        # every stage at depth 2 (a first and a repeated block), every block the same (k, e)
        return [
            self.from_settings(width=w, stages=[[(k, e)] * 2 for _ in STAGE_CHANNELS])
            for w in WIDTHS for k in KERNELS for e in EXPANSIONS
        ]

    def sandwich(self) -> tuple[Architecture, Architecture]:
        # widest, deepest, largest kernel and expansion / narrowest, shallowest, smallest
        n = len(STAGE_CHANNELS)
        return (self.from_settings(width=WIDTHS[-1], stages=[[(KERNELS[-1], EXPANSIONS[-1])] * DEPTHS[-1]] * n),
                self.from_settings(width=WIDTHS[0], stages=[[(KERNELS[0], EXPANSIONS[0])] * DEPTHS[0]] * n))

    def supernet_templates(self) -> list[Architecture]:
        # every stage 4 deep, once per (kernel, expansion), widest first: the widest alone sets
        # the shapes of an unsplit supernet; the narrower ones fill a supernet split by width
        return [self.from_settings(width=w, stages=[[(k, e)] * MAX_DEPTH for _ in STAGE_CHANNELS])
                for w in reversed(WIDTHS) for k in KERNELS for e in EXPANSIONS]

    def supernet_splits(self) -> tuple[str, ...]:
        return ("width",)

    def supernet_group(self, arch: Architecture, split: str) -> str:
        if split != "width":
            raise InvalidArchitectureError(f"{self.name}: no supernet split {split!r}")
        return f"w{WIDTHS[arch.genes[0]]}"

    @functools.cached_property
    def _lut(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Catalog positions: stem[w], head[w], block[w, stage, first-or-repeat, k, e]."""
        index = self.catalog_index()
        n_w, n_s = len(WIDTHS), len(STAGE_CHANNELS)
        stem = np.zeros(n_w, np.int64)
        head = np.zeros(n_w, np.int64)
        blk = np.zeros((n_w, n_s, 2, len(KERNELS), len(EXPANSIONS)), np.int64)
        for arch, (wi, ki, ei) in zip(self.catalog_templates(),
                                      np.ndindex(n_w, len(KERNELS), len(EXPANSIONS))):
            blocks = self.blocks(arch)
            stem[wi], head[wi] = index[blocks[0].key], index[blocks[-1].key]
            for s in range(n_s):
                for pos in range(2):
                    blk[wi, s, pos, ki, ei] = index[blocks[1 + 2 * s + pos].key]
        return stem, head, blk

    def block_slots(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        stem, head, blk = self._lut
        w = g[:, 0]
        depths = np.asarray(DEPTHS)
        cols, masks = [stem[w], head[w]], [np.ones(len(g), np.int32)] * 2
        for s in range(len(STAGE_CHANNELS)):
            start = 1 + s * GENES_PER_STAGE
            depth = depths[g[:, start]]
            for slot in range(MAX_DEPTH):
                k, e = g[:, start + 1 + 2 * slot], g[:, start + 2 + 2 * slot]
                cols.append(blk[w, s, min(slot, 1), k, e])
                masks.append((slot < depth).astype(np.int32))
        return np.stack(cols, 1), np.stack(masks, 1)

