"""Search strategies, registered by name. Every one speaks ask/tell and takes one Generator."""

from __future__ import annotations

from hwnas.registry import Registry
from hwnas.strategies.base import Strategy
from hwnas.strategies.bo import BayesianOptimization
from hwnas.strategies.evolution import RegularizedEvolution
from hwnas.strategies.nsga2 import NSGA2Strategy
from hwnas.strategies.progressive import ProgressiveSearch
from hwnas.strategies.random_search import RandomSearch
from hwnas.strategies.rl import RLController

STRATEGIES: Registry[type[Strategy]] = Registry("strategy")
for _cls in (RandomSearch, NSGA2Strategy, RLController, RegularizedEvolution, ProgressiveSearch, BayesianOptimization):
    STRATEGIES.register(_cls.name, _cls)

__all__ = ["STRATEGIES", "Strategy"]
