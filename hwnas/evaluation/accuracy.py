"""Accuracy estimators, registered by name: ``table`` reads a benchmark column, ``train`` trains
each candidate, ``supernet`` scores it with weights shared in a trained supernet.

    source = ACCURACY.get("train")(space, dataset="digits", epochs=3)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwnas.core.registry import Registry
from hwnas.evaluation.sources import BenchmarkMetrics, MetricSource
from hwnas.spaces.base import SearchSpace

# name -> factory(space, **options) -> a MetricSource providing "accuracy"
AccuracyFactory = Callable[..., MetricSource]
ACCURACY: Registry[AccuracyFactory] = Registry("accuracy estimator")


def _table_accuracy(space: SearchSpace, *, benchmark: str | Path, column: str = "accuracy", **_: Any) -> MetricSource:
    return BenchmarkMetrics(benchmark, space, columns={"accuracy": column} if column != "accuracy" else None)


ACCURACY.register("table", _table_accuracy)


def _train_accuracy(space: SearchSpace, **options: Any) -> MetricSource:
    from hwnas.evaluation.training import TrainAccuracy  # torch training code loads only when asked for

    return TrainAccuracy(space, **options)


ACCURACY.register("train", _train_accuracy)


def _supernet_accuracy(space: SearchSpace, **options: Any) -> MetricSource:
    from hwnas.evaluation.supernet import SupernetAccuracy, SupernetEnsemble

    if "ensemble" in options:
        return SupernetEnsemble(space, **options)
    return SupernetAccuracy(space, **options)


ACCURACY.register("supernet", _supernet_accuracy)
