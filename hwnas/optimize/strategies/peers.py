"""Peers: what a user would pick instead of hwnas, run through the same loop so that every
comparison counts and scores them exactly as hwnas's own strategies.

``optuna-tpe`` (multivariate TPE) and ``optuna-nsga2`` (Optuna's NSGA-II) drive an Optuna study
through its ask/tell interface: each gene is a categorical parameter, every objective a study
direction. A candidate the loop already knows is answered again without counting (as for any
strategy); a hard budget is Optuna's constraint (its violation, 0 when met), so samplers that
honour constraints rank a candidate that breaks it after every feasible one. Optuna is an optional
extra: ``pip install 'hwnas[peers]'``.
"""

from __future__ import annotations

import abc
import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.registry import Registry
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet
from hwnas.optimize.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace

CONSTRAINT_ATTR = "hwnas_violation"


def require_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise HwnasError("the Optuna peers need Optuna, an optional extra: pip install 'hwnas[peers]'") from None
    return optuna


def _constraint(trial: Any) -> tuple[float]:
    return (float(trial.user_attrs.get(CONSTRAINT_ATTR, 0.0)),)


def _constraint_option(optuna: Any) -> dict[str, Any]:
    """Optuna 5 reads a trial's constraint from ``Trial.set_constraint``; older ones from a
    sampler's ``constraints_func``."""
    return {} if hasattr(optuna.trial.Trial, "set_constraint") else {"constraints_func": _constraint}


class OptunaPeer(Strategy):
    """One Optuna sampler behind the ask/tell contract (one candidate per ask)."""

    @classmethod
    def parse_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """A peer's options are its Optuna sampler's keyword arguments, passed on as given."""
        return dict(options)

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: Mapping[str, Any] | None = None) -> None:
        optuna = require_optuna()
        super().__init__(space, objectives, rng, dict(options or {}))
        options = self.options
        seed = int(rng.integers(2**31 - 1))  # the run's Generator decides the sampler's seed
        with _quiet(optuna):
            sampler = self.make_sampler(optuna, seed, options)
            directions = ["maximize" if o.direction == "max" else "minimize" for o in objectives.objectives]
            self.study = optuna.create_study(directions=directions, sampler=sampler)
        self.optuna = optuna
        self.card = space.cardinalities()
        self.trial: Any = None
        self.worst: dict[str, float] = {}

    @abc.abstractmethod
    def make_sampler(self, optuna: Any, seed: int, options: dict[str, Any]) -> Any:
        """The Optuna sampler, seeded with ``seed``; ``options`` go to its constructor."""

    def ask(self) -> list[Architecture]:
        with _quiet(self.optuna):
            self.trial = self.study.ask()
            genes = [self.trial.suggest_categorical(f"g{i}", list(range(c))) for i, c in enumerate(self.card)]
        return [self.space.decode(genes)]

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        (e,) = evaluations
        objs = self.objectives.objectives
        for o in objs:  # the worst value seen stands in where a broken budget left one unmeasured
            v = e.metrics.get(o.name)
            if v is not None and np.isfinite(v):
                w = self.worst.get(o.name, v)
                self.worst[o.name] = min(w, v) if o.direction == "max" else max(w, v)
        with _quiet(self.optuna):
            if e.status == "failed":
                self.study.tell(self.trial, state=self.optuna.trial.TrialState.FAIL)
                return
            values = [e.metrics.get(o.name, np.nan) for o in objs]
            values = [float(v) if v is not None and np.isfinite(v) else self.worst.get(o.name, 0.0)
                      for v, o in zip(values, objs)]
            if hasattr(self.trial, "set_constraint"):
                self.trial.set_constraint("hard_budget", float(e.violation))
            else:
                self.trial.set_user_attr(CONSTRAINT_ATTR, float(e.violation))
            self.study.tell(self.trial, values)


class OptunaTPE(OptunaPeer):
    name = "optuna-tpe"
    description = "Optuna's multivariate TPE sampler (a peer, not an hwnas strategy)"

    def make_sampler(self, optuna: Any, seed: int, options: dict[str, Any]) -> Any:
        opts = {"multivariate": True, **options}
        return optuna.samplers.TPESampler(seed=seed, **_constraint_option(optuna), **opts)


class OptunaNSGA2(OptunaPeer):
    name = "optuna-nsga2"
    description = "Optuna's NSGA-II sampler (a peer, not an hwnas strategy)"

    def make_sampler(self, optuna: Any, seed: int, options: dict[str, Any]) -> Any:
        return optuna.samplers.NSGAIISampler(seed=seed, **_constraint_option(optuna), **options)


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna logs every trial and warns that multivariate TPE is experimental; say nothing,
    and leave its verbosity as it was."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


PEERS: Registry[type[Strategy]] = Registry("peer")
for _cls in (OptunaTPE, OptunaNSGA2):
    PEERS.register(_cls.name, _cls)
