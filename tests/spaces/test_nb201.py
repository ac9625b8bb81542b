"""NAS-Bench-201 specifics: isomorphism classes, index order, dead-edge pruning."""

from __future__ import annotations

import itertools

import pytest
import torch

from hwnas.core.errors import InvalidArchitectureError
from hwnas.spaces import NB201Space, get_space
from hwnas.spaces.nb201 import benchmark_order

INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def test_canonicalisation_gives_6466_classes() -> None:
    archs = NB201Space.all_architectures()
    assert len(archs) == 15625
    assert len({a.string for a in archs}) == 15625
    assert len({a.id for a in archs}) == 6466 == NB201Space.n_distinct()


def test_benchmark_index_order() -> None:
    order = benchmark_order()
    assert order[0] == INDEX0
    assert len(set(order)) == 15625
    assert NB201Space.from_index(0).string == INDEX0
    with pytest.raises(InvalidArchitectureError, match="index 15625"):
        NB201Space.from_index(15625)


def test_isomorphic_cells_share_an_id_but_not_a_string() -> None:
    # node 1 is a skip copy of the input, so a conv from node 1 computes what a conv from node 0 does
    a = NB201Space.parse("|skip_connect~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    b = NB201Space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|none~2|")
    assert a.string != b.string and a.id == b.id and a.canonical == b.canonical
    c = NB201Space.parse("|skip_connect~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|none~2|")
    assert c.id != a.id
    # the canonical string is itself a member of the class, the first in enumeration order
    assert NB201Space.parse(a.canonical).id == a.id
    members = [x for x in NB201Space.all_architectures() if x.id == a.id]
    assert {a.string, b.string} <= {x.string for x in members}
    assert a.canonical == min(members, key=lambda x: x.genes).string


def test_disconnected_cells_are_detected_and_output_zeros() -> None:
    cut = NB201Space.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert not NB201Space.is_connected(cut)
    assert NB201Space.is_connected(NB201Space.parse(INDEX0))
    n_cut = sum(not NB201Space.is_connected(a) for a in NB201Space.all_architectures())
    # no path from 0 to 3 iff edge 3<-0 is none and every route through 1 or 2 is cut
    expected = 0
    for g in itertools.product(range(5), repeat=6):
        e10, e20, e21, e30, e31, e32 = (x != 0 for x in g)
        reach1 = e10
        reach2 = e20 or (reach1 and e21)
        expected += not (e30 or (reach1 and e31) or (reach2 and e32))
    assert n_cut == expected
    space = get_space("nb201", input_shape="3x16x16", N=1)
    model = space.build(cut)
    assert "zero" in [b.kind for b in space.blocks(cut)]
    with torch.no_grad():
        assert torch.isfinite(model(space.example_input(2))).all()


def test_dead_edges_are_pruned_from_the_model() -> None:
    # node 1 is fed only by 'none', so its conv edge to the output is dead
    arch = NB201Space.parse("|none~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|skip_connect~2|")
    space = get_space("nb201", input_shape="3x16x16", N=1)
    kinds = [b.kind for b in space.blocks(arch)]
    assert "nor_conv_3x3" not in kinds
    assert kinds.count("nor_conv_1x1") == 3  # one per stage
    assert kinds.count("sum") == 3  # node 3 sums conv1x1(input) and skip(node 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("|nor_conv_3x3~0|", "cell string"),
        ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "should come from node 0"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2"),
    ],
)
def test_nb201_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArchitectureError, match=message):
        NB201Space.parse(text)


def test_macro_skeleton_defaults() -> None:
    space = get_space("nb201", input_shape="3x32x32")
    blocks = space.blocks(NB201Space.parse(INDEX0))
    assert space.config()["C"] == 16 and space.config()["N"] == 5
    res = [b for b in blocks if b.kind == "resblock"]
    assert [b.key for b in res] == ["resblock-in:16x32x32-out:32-s2", "resblock-in:32x16x16-out:64-s2"]
    assert blocks[-1].in_shape == (64, 8, 8)
