"""Search strategies, registered by name. Every one speaks ask/tell and takes one Generator."""

from __future__ import annotations

from hwnas.core.registry import Registry
from hwnas.optimize.strategies.base import Strategy
from hwnas.optimize.strategies.bo import BayesianOptimization
from hwnas.optimize.strategies.evolution import RegularizedEvolution
from hwnas.optimize.strategies.nsga2 import NSGA2Strategy
from hwnas.optimize.strategies.progressive import ProgressiveSearch
from hwnas.optimize.strategies.random_search import RandomSearch
from hwnas.optimize.strategies.rl import RLController

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
for _cls in (RandomSearch, NSGA2Strategy, RLController, RegularizedEvolution, ProgressiveSearch, BayesianOptimization):
    STRATEGIES.register(_cls.name, _cls)

__all__ = ["STRATEGIES", "Strategy"]
