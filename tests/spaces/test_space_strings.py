"""Per-space string formats and their named errors."""

from __future__ import annotations

import pytest

from hwnas.core.errors import InvalidArchitectureError
from hwnas.spaces import DPPNetSpace, MobileNetSpace, get_space

MBV2_LIKE = "w1.0_k3e6,k3e6_k3e6,k3e6,k3e6_k3e6,k3e6,k3e6,k3e6_k3e6,k3e6,k3e6_k3e6,k3e6,k3e6_k3e6"


def test_mobilenet_string_round_trip_and_settings() -> None:
    arch = MobileNetSpace.parse(MBV2_LIKE)
    assert arch.string == MBV2_LIKE
    same = MobileNetSpace.from_settings(width="1.0", stages=[[(3, 6)] * d for d in (2, 3, 4, 3, 3, 1)])
    assert same == arch


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("w1.0_k3e6", "6 stages"),
        ("w2.0_k3e6_k3e6_k3e6_k3e6_k3e6_k3e6", "width '2.0'"),
        ("w1.0_k3e6,k3e6,k3e6,k3e6,k3e6_k3e6_k3e6_k3e6_k3e6_k3e6", "depth must be"),
        ("w1.0_k4e6_k3e6_k3e6_k3e6_k3e6_k3e6", "kernel 4"),
        ("w1.0_k3e2_k3e6_k3e6_k3e6_k3e6_k3e6", "expansion 2"),
        ("w1.0_k3_k3e6_k3e6_k3e6_k3e6_k3e6", "k<kernel>e<expansion>"),
    ],
)
def test_mobilenet_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=message):
        MobileNetSpace.parse(text)


def test_mobilenet_strides_adapt_to_the_input() -> None:
    arch = MobileNetSpace.parse(MBV2_LIKE)
    for shape, side in [("3x224x224", 7), ("3x32x32", 4), ("1x28x28", 7), ("1x8x8", 4)]:
        head = get_space("mobilenet", input_shape=shape).blocks(arch)[-1]
        assert head.in_shape[1:] == (side, side), shape


def test_mobilenet_block_key_format() -> None:
    blocks = get_space("mobilenet", input_shape="3x32x32").blocks(MobileNetSpace.parse(MBV2_LIKE))
    assert blocks[1].key == "mbconv-in:16x32x32-out:24-k3-e6-s1"
    assert blocks[3].key == "mbconv-in:24x32x32-out:32-k3-e6-s2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bnrelu-conv3x3+bn-conv1x1+id-conv1x1+bn-conv1x1+bn-conv1x1", "5 layers"),
        ("relu-conv3x3", "norm 'relu'"),
        ("bn-conv5x5", "conv 'conv5x5'"),
        ("bnconv3x3", "norm"),
    ],
)
def test_dppnet_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=message):
        DPPNetSpace.parse(text)


def test_dppnet_cells_grow_densely() -> None:
    space = get_space("dppnet", input_shape="3x32x32", growth=8, N=1, stem_channels=16, groups=4)
    arch = DPPNetSpace.parse("bnrelu-conv3x3+bn-gconv1x1+id-dwsep3x3")
    dense = [b for b in space.blocks(arch) if b.kind == "dense"]
    assert [b.in_shape[0] for b in dense[:3]] == [16, 24, 32]
    assert dense[1].key == "dense-in:24x32x32-bn-gconv1x1-out:8-g4"
