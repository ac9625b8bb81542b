"""What a search that trains its candidates (``--accuracy train``) uses unless told otherwise: the
configuration ``hwnas bench-real`` measured best on Fashion-MNIST (docs/benchmarks/real-data.md).
``hwnas search`` and ``hwnas bench-real`` both start from it, so the benchmark measures what a user
gets; anything the user gives wins over it, and the run's config records what was used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.optimize.fidelity import ASHAOptions, parse_scheduler

__all__ = ["TRAIN_ACCURACY_OPTIONS", "TRAIN_SCHEDULER", "TIME_BUDGET_BO_OPTIONS", "train_sources_defaults",
           "strategy_defaults"]

TRAIN_SCHEDULER = "asha"  # with ASHAOptions()'s rungs: 1, 2 and 4 epochs
TRAIN_ACCURACY_OPTIONS: dict[str, Any] = {"subset": 0.5}  # half the training split per evaluation
# under a wall-clock budget, expected improvement per unit of (latency as) training cost
TIME_BUDGET_BO_OPTIONS: dict[str, Any] = {"cost_exponent": 1.0}


def train_sources_defaults(accuracy: str | None, accuracy_options: Mapping[str, Any], scheduler: str | None,
                           scheduler_options: Mapping[str, Any]) -> tuple[dict[str, Any], ASHAOptions | None]:
    """The estimator's options and the scheduler for a search. With ``accuracy == "train"``: ASHA
    when no scheduler is named (``scheduler`` None) and no fixed ``epochs`` is given (then none: the
    user fixed the training), and an ASHA search trains on half the training split unless
    ``accuracy_options`` give ``subset``. Otherwise what was given. Raises OptionError for a bad
    scheduler or option."""
    options = dict(accuracy_options)
    if accuracy == "train":
        scheduler = scheduler or ("none" if "epochs" in options else TRAIN_SCHEDULER)
        if scheduler == "asha":
            options = {**TRAIN_ACCURACY_OPTIONS, **options}
    return options, parse_scheduler(scheduler, dict(scheduler_options))


def strategy_defaults(strategy: str, options: Mapping[str, Any], accuracy: str | None,
                      time_budget_s: float | None) -> dict[str, Any]:
    """``bo``'s options for a search that trains its candidates under a wall-clock budget: the
    latency cost term unless ``options`` set it; otherwise ``options`` as given."""
    if strategy == "bo" and accuracy == "train" and time_budget_s:
        return {**TIME_BUDGET_BO_OPTIONS, **options}
    return dict(options)
