"""Accuracy estimators, registered by name: ``table`` reads a benchmark column, ``train`` trains
each candidate, ``supernet`` scores it with weights shared in a trained supernet.

    source = ACCURACY.get("train")(space, dataset="digits", epochs=3)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.core.registry import Registry
from hwnas.evaluation.sources import BenchmarkMetrics, MetricSource
from hwnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class AccuracyEstimator:
    """A named way to score candidates, and what it needs of the search around it. The source it
    builds declares its accuracy expensive (``cheap = False``): what a search spends evaluations on.

    ``check``: refuses bad options (a usage error) before any data loads or work starts.
    ``artifact``: the file name of something the estimator trains once and reuses (a supernet);
    the search keeps it in the run folder (the ``path`` option), so a resumed run and every worker
    load it instead of training again. ``threads``: it runs torch and takes a ``threads`` option,
    which executors set from the cores each worker may use.
    """

    build: Callable[..., MetricSource]
    artifact: str | None = None
    threads: bool = False
    check: Callable[[dict[str, Any]], None] | None = None

    def __call__(self, space: SearchSpace, **options: Any) -> MetricSource:
        return self.build(space, **options)


# an entry is an AccuracyEstimator, or any factory(space, **options) -> MetricSource (no needs)
ACCURACY: Registry[Callable[..., MetricSource]] = Registry("accuracy estimator")


def estimator(name: str) -> AccuracyEstimator:
    """The estimator registered as ``name``, with what it needs (a plain factory needs nothing)."""
    entry = ACCURACY.get(name)
    return entry if isinstance(entry, AccuracyEstimator) else AccuracyEstimator(entry)


def _table_accuracy(space: SearchSpace, *, benchmark: str | Path, column: str = "accuracy", **_: Any) -> MetricSource:
    return BenchmarkMetrics(benchmark, space, columns={"accuracy": column} if column != "accuracy" else None,
                            expensive=("accuracy",))


def _train_accuracy(space: SearchSpace, **options: Any) -> MetricSource:
    from hwnas.evaluation.training import TrainAccuracy  # torch training code loads only when asked for

    return TrainAccuracy(space, **options)


def _supernet_accuracy(space: SearchSpace, **options: Any) -> MetricSource:
    from hwnas.evaluation.supernet import SupernetAccuracy, SupernetEnsemble

    if "ensemble" in options:
        return SupernetEnsemble(space, **options)
    return SupernetAccuracy(space, **options)


def _check_train(options: dict[str, Any]) -> None:
    from hwnas.core.options import check_options
    from hwnas.evaluation.training import TRAIN_OPTIONS

    check_options("train", options, TRAIN_OPTIONS)


def _check_supernet(options: dict[str, Any]) -> None:
    from hwnas.evaluation.supernet import check_supernet_options

    check_supernet_options(options)


ACCURACY.register("table", AccuracyEstimator(_table_accuracy))
ACCURACY.register("train", AccuracyEstimator(_train_accuracy, threads=True, check=_check_train))
ACCURACY.register("supernet", AccuracyEstimator(_supernet_accuracy, artifact="supernet.pt", threads=True,
                                                check=_check_supernet))
