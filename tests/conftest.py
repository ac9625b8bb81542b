"""Shared fixtures. Tiny real inputs keep the suite fast; nothing is faked but the hardware."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.spaces import SPACES, SearchSpace, get_space

# A small input per space, at which every model builds and exports in well under a second.
TEST_INPUTS = {"mobilenet": "1x28x28", "nb201": "3x16x16", "dppnet": "3x16x16"}


@pytest.fixture(params=SPACES.names())
def space(request: pytest.FixtureRequest) -> SearchSpace:
    """Every registered space, so that a new space is tested the moment it is registered."""
    return get_space(request.param, input_shape=TEST_INPUTS.get(request.param, "3x16x16"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
