"""Hand-designed reference models: what an engineer would pick without a search.

``mobilenet_v2(width, input_shape)`` is MobileNetV2 (Sandler et al. 2018) with a width multiplier:
a 3x3 stem of 32 channels, the inverted-residual table (t, c, n, s) = (1,16,1,1), (6,24,2,2),
(6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1) with every channel count scaled by
the width and rounded to a multiple of 8, and a 1x1 head of 1280 channels (never narrower, as in
torchvision's ``mobilenet_v2(width_mult=...)``). The downsampling is adapted to the input size
exactly as the ``mobilenet`` space adapts it (a 28x28 input keeps the stages that would shrink it
below 4x4 at stride 1), so the reference and the searched models see the same resolutions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from hwnas.spaces.architecture import Architecture, Shape
from hwnas.spaces.modules import SequentialNet, init_weights, make_divisible
from hwnas.spaces.mobilenet import HEAD_CHANNELS, MobileNetSpace

__all__ = ["MOBILENET_V2_DEPTHS", "ReferenceModel", "mobilenet_v2"]

MOBILENET_V2_DEPTHS = (2, 3, 4, 3, 3, 1)  # repeats of the 24..320-channel stages (t=6, k=3)


@dataclass(frozen=True)
class ReferenceModel:
    """A named hand-designed model: ``build(seed)`` gives it with weights initialised from ``seed``
    alone (as a space's ``build``); ``macs`` and ``params`` are its counts."""

    name: str
    space: MobileNetSpace
    arch: Architecture
    head_channels: int

    def build(self, seed: int = 0) -> nn.Module:
        blocks = self.space.blocks(self.arch)
        head = blocks[-1]
        blocks[-1] = dataclasses.replace(head, config={**head.config, "mid": self.head_channels})
        return init_weights(SequentialNet([self.space.build_block(b) for b in blocks]), seed).eval()

    @property
    def input_shape(self) -> Shape:
        return self.space.input_shape

    def counts(self) -> tuple[int, int]:
        """(parameters, multiply-adds) of one inference."""
        import torch

        from hwnas.spaces.facts import count_params, macs_of

        model = self.build(0)
        return count_params(model), int(macs_of(model, torch.zeros((1, *self.space.input_shape))).total())


def mobilenet_v2(width: float, input_shape: Shape | str, num_classes: int = 10) -> ReferenceModel:
    """MobileNetV2 at width multiplier ``width`` (0.35, 0.5, ...), adapted to ``input_shape``."""
    from hwnas.spaces import get_space

    space = get_space("mobilenet", input_shape=input_shape, num_classes=num_classes, scale=float(width))
    arch = space.from_settings(width="1.0", stages=[[(3, 6)] * d for d in MOBILENET_V2_DEPTHS])
    head = make_divisible(HEAD_CHANNELS * max(1.0, float(width)))
    return ReferenceModel(f"mobilenetv2-{float(width):g}", space, arch, head)
