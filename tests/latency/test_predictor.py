"""The predictor: vectorised sums equal the block lists, the context fit, calibration, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hwnas.latency.predictor import Predictor, fit_context
from hwnas.latency.table import LatencyTable, MissingEntryError, space_record
from hwnas.latency.records import ContextFit, ContextModel, TableCalibration, TableContext, TableEnergy, TableEntry
from hwnas.measure.timing import Protocol
from hwnas.spaces import SearchSpace, get_space
from hwnas.spaces.base import SearchSpace as Base


def _synthetic_table(space: SearchSpace, rng: np.random.Generator) -> LatencyTable:
    table = LatencyTable(fingerprint={}, device={}, space=space_record(space), protocol=Protocol(), statistic="p10")
    for b in space.catalog():
        table.entries[b.key] = TableEntry(b.kind, list(b.in_shape), list(b.out_shape), b.n_inputs,
                                          float(rng.uniform(0.01, 1.0)), energy_mj=float(rng.uniform(0.1, 2.0)))
    table.energy = TableEnergy(True, "synthetic", False)
    return table


def test_vectorised_block_slots_match_the_block_lists(space: SearchSpace, rng: np.random.Generator) -> None:
    genes = np.array([a.genes for a in space.sample(rng, 200)])
    np.testing.assert_array_equal(space.block_counts(genes), _reference_counts(space, genes))
    # the base class's generic slots (used by any new space) agree too
    idx, weight = Base.block_slots(space, genes)
    assert (weight.sum(1) == space.block_counts(genes).sum(1)).all()


def _reference_counts(space: SearchSpace, genes: np.ndarray) -> np.ndarray:
    index = space.catalog_index()
    counts = np.zeros((len(genes), len(index)), dtype=np.int64)
    for row, g in enumerate(genes):
        for b in space.blocks(space.decode(g)):
            counts[row, index[b.key]] += 1
    return counts


def test_catalog_covers_every_block(space: SearchSpace, rng: np.random.Generator) -> None:
    index = space.catalog_index()
    assert len(index) == len(space.catalog())
    for arch in space.sample(rng, 100):
        for b in space.blocks(arch):
            assert b.key in index


def test_prediction_is_the_sum_over_blocks(space: SearchSpace, rng: np.random.Generator) -> None:
    table = _synthetic_table(space, rng)
    predictor = Predictor(table, space)
    archs = space.sample(rng, 30)
    pred = predictor.predict(archs)
    for arch, lat, en in zip(archs, pred.latency_ms, pred.energy_mj):
        blocks = space.blocks(arch)
        assert lat == pytest.approx(sum(table.entries[b.key].latency_ms for b in blocks))
        assert en == pytest.approx(sum(table.entries[b.key].energy_mj for b in blocks))


def test_calibration_scales_the_prediction(rng: np.random.Generator) -> None:
    space = get_space("nb201", input_shape="3x8x8", N=1)
    table = _synthetic_table(space, rng)
    archs = space.sample(rng, 5)
    base = Predictor(table, space).predict(archs).latency_ms
    table.calibration = TableCalibration(2.0, 0.1)
    np.testing.assert_allclose(Predictor(table, space).predict(archs).latency_ms, 2 * base + 0.1)
    np.testing.assert_allclose(Predictor(table, space, calibrated=False).predict(archs).latency_ms, base)


def test_missing_entry_names_it(rng: np.random.Generator) -> None:
    space = get_space("nb201", input_shape="3x8x8", N=1)
    table = _synthetic_table(space, rng)
    key = next(k for k in table.entries if k.startswith("nor_conv_3x3"))
    del table.entries[key]
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    with pytest.raises(MissingEntryError, match=f"no entry '{key}', needed by"):
        Predictor(table, space).predict([arch])
    avoids = space.parse("|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|")
    assert Predictor(table, space).predict([avoids]).latency_ms[0] > 0  # only what is used must exist


def test_context_fit_recovers_a_known_boundary_cost(rng: np.random.Generator) -> None:
    space = get_space("dppnet", input_shape="3x16x16", N=1)
    table = _synthetic_table(space, rng)
    archs = space.sample(rng, 30)
    counts = space.block_counts(np.array([a.genes for a in archs]))
    iso = np.array([table.entries[b.key].latency_ms for b in space.catalog()])
    # whole models pay 0.02 ms less per block than the blocks alone, plus 0.05 ms once
    measured = counts @ iso - 0.02 * counts.sum(1) + 0.05
    table.context = TableContext([ContextModel(a.string, {"p10_ms": float(m)}) for a, m in zip(archs, measured)])
    fit = fit_context(space, table)
    assert fit.leave_one_out["max_abs_err"] < 0.01
    assert fit.raw_sum["mape"] > fit.leave_one_out["mape"]
    table.context.fit = fit
    fresh = space.sample(rng, 10)
    c = space.block_counts(np.array([a.genes for a in fresh]))
    truth = c @ iso - 0.02 * c.sum(1) + 0.05
    np.testing.assert_allclose(Predictor(table, space).predict(fresh).latency_ms, truth, rtol=0.01)


def test_context_fit_learns_the_cost_of_re_reading_weights(rng: np.random.Generator) -> None:
    """Whole models that pay per parameter (weights read again from memory) on top of the block
    sum: the fit recovers the term, writes the parameter counts into the entries, and the predictor
    applies it; a fit without the term (an older table) leaves predictions as they were."""
    from hwnas.spaces.facts import count_params

    space = get_space("mobilenet", input_shape="3x16x16", scale=0.25)
    table = _synthetic_table(space, rng)
    catalog = space.catalog()
    params = np.array([count_params(space.build_block(b)) for b in catalog], dtype=float)
    iso = np.array([table.entries[b.key].latency_ms for b in catalog])
    per_param_ms = 0.2 / params.max()  # the largest block pays 0.2 ms more inside a model
    archs = space.sample(rng, 40)
    counts = space.block_counts(np.array([a.genes for a in archs]))
    measured = counts @ (iso + per_param_ms * params) + 0.03
    table.context = TableContext([ContextModel(a.string, {"p10_ms": float(m)}) for a, m in zip(archs, measured)])
    fit = fit_context(space, table)
    assert all(table.entries[b.key].params == p for b, p in zip(catalog, params))
    assert fit.leave_one_out["max_abs_err"] < 0.01 < fit.raw_sum["mape"]
    assert fit.per_kind["mbconv"].per_100k_params_ms == pytest.approx(-per_param_ms * 1e5, rel=0.05)
    table.context.fit = fit
    fresh = space.sample(rng, 10)
    c = space.block_counts(np.array([a.genes for a in fresh]))
    with_term = Predictor(table, space).predict(fresh).latency_ms
    np.testing.assert_allclose(with_term, c @ (iso + per_param_ms * params) + 0.03, rtol=0.01)
    old = fit.to_dict()
    for kind in old["per_kind"].values():  # as fitted before the term existed
        del kind["per_100k_params_ms"]
    table.context.fit = ContextFit.from_dict("context.fit", old)
    without = Predictor(table, space).predict(fresh).latency_ms
    np.testing.assert_allclose(without, with_term - per_param_ms * (c @ params), rtol=0.01)
