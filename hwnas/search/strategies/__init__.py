"""Search strategies, registered by name. Every one speaks ask/tell and takes one Generator."""

from __future__ import annotations

from hwnas.core.registry import Registry
from hwnas.search.strategies.base import Strategy
from hwnas.search.strategies.bo import BayesianOptimization
from hwnas.search.strategies.evolution import RegularizedEvolution
from hwnas.search.strategies.nsga2 import NSGA2Strategy
from hwnas.search.strategies.progressive import ProgressiveSearch
from hwnas.search.strategies.random_search import RandomSearch
from hwnas.search.strategies.rl import RLController

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
for _cls in (RandomSearch, NSGA2Strategy, RLController, RegularizedEvolution, ProgressiveSearch, BayesianOptimization):
    STRATEGIES.register(_cls.name, _cls)

__all__ = ["STRATEGIES", "Strategy"]
