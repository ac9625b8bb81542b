"""The torch modules of ``nb201`` models: the benchmark's cell operations, cells, residual
reduction blocks and head."""

from __future__ import annotations

import torch
from torch import nn

from hwnas.core.errors import InvalidArchitectureError


class ReLUConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout))


class Sum(nn.Module):
    """Sum of a node's incoming edges (a block of its own in the table)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Zero(nn.Module):
    """Output of a cell with no live path from input to output.

    ``x * 0`` rather than ``zeros_like(x)``: with static shapes onnxruntime folds a zeros_like
    and everything after it into a constant, so the exported model would skip the network the
    table and the torch model describe.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def edge_op(op: str, channels: int) -> nn.Module:
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity()
    raise InvalidArchitectureError(f"nb201: no module for op {op!r}")


class Cell(nn.Module):
    """A cell of its live edges (dst, src, op): edges first, then the sums of nodes with several."""

    def __init__(self, live: list[tuple[int, int, str]], channels: int) -> None:
        super().__init__()
        self.live = live
        self.edges = nn.ModuleDict({f"e{d}{s}": edge_op(op, channels) for d, s, op in self.live})
        fan_in = {j: sum(1 for d, _, _ in self.live if d == j) for j in (1, 2, 3)}
        self.sums = nn.ModuleDict({f"n{j}": Sum() for j, n in fan_in.items() if n > 1})
        self.zero = Zero() if not self.live else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.zero is not None:
            return self.zero(x)
        nodes = {0: x}
        for j in (1, 2, 3):
            terms = [self.edges[f"e{d}{s}"](nodes[s]) for d, s, _ in self.live if d == j]
            if terms:
                nodes[j] = self.sums[f"n{j}"](*terms) if len(terms) > 1 else terms[0]
        return nodes[3]


class ResBlock(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 ResNet basic block with a pooled shortcut."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        # ceil_mode keeps the shortcut's size equal to the strided conv's on odd inputs
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2, ceil_mode=True), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


