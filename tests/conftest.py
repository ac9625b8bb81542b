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


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The export cache of the whole run (and of the processes it starts) in a temporary folder,
    never the user's ~/.cache."""
    import os

    os.environ["HWNAS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


QUICK_DEVICE = {
    "name": "test-cpu",
    "runtime": {"intra_op_threads": 1, "affinity": [1] if len(__import__("os").sched_getaffinity(0)) > 1 else [0]},
    "protocol": {"warmup_runs": 3, "warmup_s": 0.2, "min_runs": 20, "max_runs": 80, "max_seconds": 60.0,
                 "min_span_s": 0.2},
}


@pytest.fixture(scope="session")
def quick_device() -> dict:
    return QUICK_DEVICE


@pytest.fixture(scope="session")
def quick_spec():
    """A real CPU device with a short protocol, so a whole tiny profile takes seconds."""
    from hwnas.device.spec import parse_device

    return parse_device(QUICK_DEVICE, "test-cpu.toml")


@pytest.fixture(scope="session")
def tiny_table(tmp_path_factory: pytest.TempPathFactory, quick_spec):
    """A real profile of nb201 (one cell per stage) at 3x8x8 on this CPU."""
    from hwnas.latency.profiler import ProfileSettings, profile

    space = get_space("nb201", input_shape="3x8x8", N=1)
    path = tmp_path_factory.mktemp("tables") / "nb201-3x8x8.json"
    return profile(quick_spec, space, out=path, progress=False, log=lambda _m: None,
                   settings=ProfileSettings(context_models=16))
