"""Contract tests run on every registered space."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hwnas.core.errors import InvalidArchitectureError, InvalidInputShapeError
from hwnas.spaces import SPACES, Architecture, SearchSpace, get_space
from hwnas.spaces.facts import CatalogFacts, count_params, describe
from hwnas.models.onnx_io import export_onnx


def test_registry_lists_the_three_spaces() -> None:
    assert {"mobilenet", "nb201", "dppnet"} <= set(SPACES.names())


def test_sampled_architectures_are_valid_values(space: SearchSpace, rng: np.random.Generator) -> None:
    for arch in space.sample(rng, 20):
        assert arch.space == space.name
        assert space.parse(arch.string) == arch
        assert space.decode(arch.encode()) == arch
        assert len(arch.id) == 16 and arch.id == space.parse(arch.canonical).id
        with pytest.raises(dataclasses.FrozenInstanceError):
            arch.string = "x"  # type: ignore[misc]


def test_encode_decode_round_trip_ignores_inactive_genes(space: SearchSpace, rng: np.random.Generator) -> None:
    card = np.asarray(space.cardinalities())
    for _ in range(50):
        genes = rng.integers(0, card)
        arch = space.decode(genes)
        assert space.decode(arch.encode()) == arch
        noisy = space.randomize_inactive(arch.encode(), rng)
        assert space.decode(noisy) == arch  # genes the phenotype ignores do not change the value


def test_multiplicity_counts_the_gene_vectors_of_an_architecture(space: SearchSpace, rng: np.random.Generator) -> None:
    card = np.asarray(space.cardinalities())
    for _ in range(20):
        arch = space.decode(rng.integers(0, card))
        # the gene vectors that randomising the inactive genes reaches all decode to the architecture
        noisy = {space.randomize_inactive(arch.encode(), rng).tobytes() for _ in range(200)}
        assert space.multiplicity(arch.genes) >= len(noisy)


def test_multiplicity_of_short_cells_and_shallow_stages() -> None:
    dpp = get_space("dppnet", input_shape="1x28x28")
    assert dpp.multiplicity(dpp.parse("bn-conv1x1").genes) == 15 ** 3
    assert dpp.multiplicity(dpp.parse("bn-conv1x1+id-gconv3x3+bn-conv1x1+bnrelu-dwsep3x3").genes) == 1
    mob = get_space("mobilenet", input_shape="1x28x28", scale=0.25)
    stages = [[(3, 6)] * d for d in (1, 4, 2, 4, 3, 4)]  # 9 choices per block slot beyond a stage's depth
    assert mob.multiplicity(mob.from_settings(width="0.5", stages=stages).genes) == 9 ** (3 + 2 + 1)


def test_sample_architectures_is_uniform_over_distinct_architectures(space: SearchSpace) -> None:
    for arch in space.sample_architectures(np.random.default_rng(0), 20):
        assert space.decode(arch.encode()) == arch
    # each architecture equally likely: a length/depth d, with c^d members, is drawn in proportion c^d;
    # the exact draws of the spaces that override it and the generic rejection agree with that
    cases = {"dppnet": (0, 15), "mobilenet": (1, 9)}
    if space.name not in cases:
        rng = np.random.default_rng(1)
        assert all(space.multiplicity(a.genes) == 1 for a in space.sample(rng, 50))  # nothing inactive: = sample
        return
    gene, per = cases[space.name]
    expected = np.array([per ** d for d in (1, 2, 3, 4)], dtype=float)
    expected /= expected.sum()
    draws = [(space.sample_architectures, 20000)]
    if space.name == "dppnet":  # the generic rejection accepts 27% of dppnet's draws (mobilenet's: 0.05%)
        draws.append((space.sample_by_rejection, 1500))
    for draw, n in draws:
        freq = np.bincount([a.genes[gene] for a in draw(np.random.default_rng(2), n)], minlength=4) / n
        assert np.all(np.abs(freq - expected) <= 5 * np.sqrt(expected * (1 - expected) / n) + 1e-3), (freq, expected)


def test_mutation_and_crossover_stay_in_the_space(space: SearchSpace, rng: np.random.Generator) -> None:
    parents = space.sample(rng, 10)
    for a, b in zip(parents, parents[1:]):
        child = space.mutate(a, rng)
        assert child != a and space.parse(child.string) == child
        for c in space.crossover(a, b, rng):
            assert space.parse(c.string) == c
            # gene 0 (width, depth or layer count) is always active: it comes from a parent
            assert c.genes[0] in (a.genes[0], b.genes[0])


def test_variation_is_driven_only_by_the_generator(space: SearchSpace) -> None:
    def run(seed: int) -> list[str]:
        g = np.random.default_rng(seed)
        pop = space.sample(g, 4)
        pop += [space.mutate(p, g) for p in pop]
        pop += list(space.crossover(pop[0], pop[1], g))
        return [a.string for a in pop]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_direct_construction_is_validated(space: SearchSpace, rng: np.random.Generator) -> None:
    arch = space.sample(rng, 1)[0]
    with pytest.raises(InvalidArchitectureError):
        Architecture(space.name, arch.genes, arch.string + "x", arch.canonical)
    bad = list(arch.genes)
    bad[0] = space.cardinalities()[0]
    with pytest.raises(InvalidArchitectureError, match="gene 0"):
        space.decode(bad)
    with pytest.raises(InvalidArchitectureError, match="expected"):
        space.decode(arch.genes[:-1])
    with pytest.raises(InvalidArchitectureError):
        space.parse("")


def test_model_builds_and_runs(space: SearchSpace, rng: np.random.Generator) -> None:
    for arch in space.sample(rng, 3):
        model = space.build(arch)
        assert not model.training
        with torch.no_grad():
            out = model(space.example_input(2))
        assert out.shape == (2, space.num_classes)
        assert torch.isfinite(out).all()


def test_build_is_deterministic_in_its_seed(space: SearchSpace, rng: np.random.Generator) -> None:
    arch = space.sample(rng, 1)[0]
    x = space.example_input(2)
    with torch.no_grad():
        a, b, c = (space.build(arch, seed=s)(x) for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_onnx_export_matches_torch(space: SearchSpace, rng: np.random.Generator, tmp_path) -> None:
    for i, arch in enumerate(space.sample(rng, 2)):
        path = tmp_path / f"m{i}.onnx"
        report = export_onnx(space.build(arch), space.example_input(1), path)
        assert path.is_file()
        assert report.opset >= 17
        assert report.max_abs_diff <= 1e-4


def test_block_list_is_consistent_with_the_built_model(space: SearchSpace, rng: np.random.Generator) -> None:
    for arch in space.sample(rng, 3):
        model = space.build(arch)
        blocks = space.blocks(arch)
        assert len({b.path for b in blocks}) == len(blocks)
        seen: dict[str, list[tuple[tuple[int, ...], ...]]] = {}

        def hook(path: str, seen: dict = seen):
            def record(_m, inputs, output):
                seen.setdefault(path, []).append((tuple(t.shape[1:] for t in inputs), tuple(output.shape[1:])))
            return record

        handles = [model.get_submodule(b.path).register_forward_hook(hook(b.path)) for b in blocks]
        with torch.no_grad():
            model(space.example_input(1))
        for h in handles:
            h.remove()
        for b in blocks:
            assert len(seen[b.path]) == 1, f"{b.path} ran {len(seen.get(b.path, []))} times"
            in_shapes, out_shape = seen[b.path][0]
            assert in_shapes == (b.in_shape,) * b.n_inputs, b.key
            assert out_shape == b.out_shape, b.key
            alone = space.build_block(b)
            assert count_params(alone) == count_params(model.get_submodule(b.path)), b.key
            with torch.no_grad():
                y = alone.eval()(*[torch.randn(1, *b.in_shape) for _ in range(b.n_inputs)])
            assert tuple(y.shape[1:]) == b.out_shape
        # the blocks account for every parameter of the model: nothing is left out of the table
        assert sum(count_params(model.get_submodule(b.path)) for b in blocks) == count_params(model)
        assert blocks[0].in_shape == space.input_shape
        assert blocks[-1].out_shape == (space.num_classes,)


def test_block_keys_identify_the_computation(space: SearchSpace, rng: np.random.Generator) -> None:
    by_key: dict[str, int] = {}
    for arch in space.sample(rng, 10):
        model = space.build(arch)
        for b in space.blocks(arch):
            n = count_params(model.get_submodule(b.path))
            assert by_key.setdefault(b.key, n) == n, f"{b.key} names two different blocks"


def test_describe_counts_params_and_macs(space: SearchSpace, rng: np.random.Generator) -> None:
    arch = space.sample(rng, 1)[0]
    facts = describe(space, arch)
    assert facts.params == count_params(space.build(arch)) > 0
    assert facts.macs > 0
    assert sum(b.macs for b in facts.blocks) == facts.macs  # every MAC is attributed to a block



def test_catalog_sums_equal_whole_model_counts(space: SearchSpace, rng: np.random.Generator) -> None:
    """The vectorised params/MACs that a search pool uses equal fvcore on the built model."""
    archs = space.sample_architectures(rng, 4)
    params, macs = CatalogFacts(space).evaluate(archs)
    for arch, p, m in zip(archs, params, macs):
        facts = describe(space, arch)
        assert (facts.params, facts.macs) == (int(p), int(m)), arch.string

def test_space_sizes() -> None:
    assert SPACES.get("nb201").size() == 15625
    assert SPACES.get("dppnet").size() == 15 + 15**2 + 15**3 + 15**4
    assert SPACES.get("mobilenet").size() == 4 * (9 + 9**2 + 9**3 + 9**4) ** 6


@pytest.mark.parametrize("shape", ["1x8x8", "1x28x28", "3x32x32", "3x15x15", "3x64x64"])
def test_spaces_accept_a_range_of_input_shapes(shape: str) -> None:
    g = np.random.default_rng(0)
    for name in SPACES.names():
        space = get_space(name, input_shape=shape, num_classes=7)
        arch = space.sample(g, 1)[0]
        with torch.no_grad():
            assert space.build(arch)(space.example_input(1)).shape == (1, 7)


def test_input_shape_errors() -> None:
    with pytest.raises(InvalidInputShapeError, match="CxHxW"):
        get_space("nb201", input_shape="32x32")
    with pytest.raises(InvalidInputShapeError, match="smaller than"):
        get_space("mobilenet", input_shape="3x2x2")
    with pytest.raises(InvalidInputShapeError, match="bad space option"):
        get_space("nb201", input_shape="3x32x32", depth=3)


def test_architecture_of_another_space_is_refused(rng: np.random.Generator) -> None:
    nb = get_space("nb201", input_shape="3x16x16")
    dpp = get_space("dppnet", input_shape="3x16x16")
    arch = nb.sample(rng, 1)[0]
    with pytest.raises(InvalidArchitectureError, match="space 'dppnet'"):
        dpp.build(arch)
