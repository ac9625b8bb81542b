"""Zero-cost proxies: deterministic by seed, sensible on the space's extremes, bad names and
missing data refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.core.errors import HwnasError, UsageError
from hwnas.evaluation.proxies import PROXIES, ZeroCostProxies, scores
from hwnas.spaces import get_space
from hwnas.spaces.hooks import extremes


@pytest.fixture(scope="module")
def space():
    return get_space("dppnet", input_shape="1x8x8", N=1)


def test_proxies_are_deterministic_by_seed(space) -> None:
    archs = space.sample(np.random.default_rng(0), 4)
    a = ZeroCostProxies(space, dataset="digits", seed=3).evaluate(archs)
    b = ZeroCostProxies(space, dataset="digits", seed=3).evaluate(archs)
    other = ZeroCostProxies(space, dataset="digits", seed=4).evaluate(archs)
    assert set(a) == set(PROXIES) and all(np.isfinite(a[n]).all() for n in PROXIES)
    assert all(np.array_equal(a[n], b[n]) for n in PROXIES)  # same seed: the same weights and batch
    assert any(not np.array_equal(a[n], other[n]) for n in PROXIES)  # another seed: other weights and batch


def test_a_larger_network_has_more_synaptic_flow(space) -> None:
    largest, smallest = extremes(space)
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    big = scores(space.build(largest, seed=0, calibrate_bn=False), x, y)
    small = scores(space.build(smallest, seed=0, calibrate_bn=False), x, y)
    assert big["synflow"] > small["synflow"] and big["snip"] > small["snip"]


def test_scoring_leaves_the_model_as_it_was(space) -> None:
    model = space.build(space.sample(np.random.default_rng(1), 1)[0], seed=0, calibrate_bn=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scores(model, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_bad_names_and_missing_data_are_one_line(space, tmp_path) -> None:
    with pytest.raises(UsageError, match="zero-cost proxy 'jacov': not one of synflow, naswot, grad_norm, snip"):
        ZeroCostProxies(space, dataset="digits", names=["synflow", "jacov"])
    with pytest.raises(HwnasError) as info:
        ZeroCostProxies(space, dataset=f"idx:{tmp_path / 'none'}")
    assert "\n" not in str(info.value)
