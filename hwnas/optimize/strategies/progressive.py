"""``progressive``: DPP-Net-style progressive search (Dong et al., 2018) for cell spaces.

Cells grow one step at a time (a layer for ``dppnet``, a node with its edges for ``nb201``: the
space's ``growth_steps``). At each step every member of the current Pareto set is expanded into
all its children; a surrogate, a small MLP regressor on one-hot genes trained on every evaluation
so far, predicts the expensive objectives of the children, the cheap ones are computed exactly,
and the best ``beam`` children by predicted non-dominated rank are evaluated. The Pareto set of
the step's evaluations is kept for the next step. After the last step the search goes on from
the global Pareto set with surrogate-ranked mutations.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
from torch import nn

from hwnas.core.errors import HwnasError
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet, is_feasible
from hwnas.optimize.strategies.base import FAILED_VALUE, CheapFn, Strategy
from hwnas.spaces.base import Architecture, SearchSpace
from hwnas.spaces.hooks import Grows, growth_steps



class Surrogate:
    """A 2-layer MLP on one-hot genes, predicting the expensive objectives (to minimise)."""

    def __init__(self, cardinalities: Sequence[int], n_out: int, seed: int, hidden: int = 64, steps: int = 200) -> None:
        self.card = list(cardinalities)
        self.n_out, self.seed, self.hidden, self.steps = n_out, seed, hidden, steps
        self.model: nn.Module | None = None
        self.mu = self.sd = None

    def encode(self, genes: np.ndarray) -> torch.Tensor:
        cols = [np.eye(c, dtype=np.float32)[genes[:, i]] for i, c in enumerate(self.card)]
        return torch.from_numpy(np.concatenate(cols, 1))

    def fit(self, genes: np.ndarray, y: np.ndarray) -> None:
        x = self.encode(genes)
        self.mu, self.sd = y.mean(0), y.std(0) + 1e-8
        t = torch.from_numpy(((y - self.mu) / self.sd).astype(np.float32))
        gen = torch.Generator().manual_seed(self.seed)
        model = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.n_out))
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-0.1, 0.1, generator=gen)
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
        for _ in range(self.steps):
            opt.zero_grad()
            loss = ((model(x) - t) ** 2).mean()
            loss.backward()
            opt.step()
        self.model = model

    def predict(self, genes: np.ndarray) -> np.ndarray:
        assert self.model is not None
        with torch.no_grad():
            return self.model(self.encode(genes)).numpy() * self.sd + self.mu


@dataclass(frozen=True)
class ProgressiveOptions:
    beam: int = 8  # parents kept per growth step
    mutations: int = 64  # mutants of the beam scored by the surrogate once the cell is grown


class ProgressiveSearch(Strategy):
    name = "progressive"
    description = "DPP-Net progressive cell growth with an MLP surrogate choosing which children to evaluate"
    needs_cheap = True
    Options = ProgressiveOptions
    option_bounds = {"beam": (1, 100_000), "mutations": (1, 1_000_000)}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: ProgressiveOptions | None = None, *, cheap: CheapFn | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        beam, mutations = self.options.beam, self.options.mutations
        steps = growth_steps(space)
        if steps is None or not isinstance(space, Grows):
            raise HwnasError(f"progressive search grows cells; space {space.name!r} has no growth steps "
                             "(use it with nb201 or dppnet)")
        self.steps, self.beam, self.cheap, self.n_mut = steps, beam, cheap, mutations
        self.step = 0
        self.parents: list[Architecture] = [space.decode(space.grown((0,) * len(space.cardinalities()), -1))]
        self.history: list[tuple[Architecture, np.ndarray, bool]] = []  # arch, F, feasible
        self.seen: set[str] = set()
        self.surrogate_seed = int(rng.integers(2**31 - 1))
        self.exp_idx = [i for i, o in enumerate(objectives.objectives) if not o.cheap]

    def _children(self) -> list[Architecture]:
        card = self.space.cardinalities()
        genes_now = self.steps[self.step]
        out: dict[str, Architecture] = {}
        for parent in self.parents:
            for values in itertools.product(*(range(card[g]) for g in genes_now)):
                g = list(parent.genes)
                for gi, v in zip(genes_now, values):
                    g[gi] = v
                child = self.space.decode(self.space.grown(g, self.step))
                if child.id not in self.seen:
                    out.setdefault(child.id, child)
        return list(out.values())

    def _mutants(self) -> list[Architecture]:
        F = np.array([f for _, f, ok in self.history if ok] or [f for _, f, _ in self.history])
        archs = [a for a, _, ok in self.history if ok] or [a for a, _, _ in self.history]
        front = NonDominatedSorting().do(F, only_non_dominated_front=True)
        out: dict[str, Architecture] = {}
        for _ in range(self.n_mut * 4):
            parent = archs[front[self.rng.integers(len(front))]]
            child = self.space.mutate(parent, self.rng)
            if child.id not in self.seen:
                out.setdefault(child.id, child)
            if len(out) >= self.n_mut:
                break
        return list(out.values()) or self.space.sample(self.rng, self.beam)

    def _choose(self, candidates: list[Architecture]) -> list[Architecture]:
        if len(candidates) <= self.beam:
            return candidates
        usable = [(a, f) for a, f, _ in self.history if np.all(f[self.exp_idx] < FAILED_VALUE)]
        if len(usable) < 5 or self.cheap is None:
            pick = self.rng.choice(len(candidates), self.beam, replace=False)
            return [candidates[i] for i in sorted(pick)]
        genes = np.array([a.genes for a in candidates])
        surrogate = Surrogate(self.space.cardinalities(), len(self.exp_idx), self.surrogate_seed)
        surrogate.fit(np.array([a.genes for a, _ in usable]), np.array([f[self.exp_idx] for _, f in usable]))
        pred = surrogate.predict(genes)
        metrics = self.cheap(candidates)
        F = np.empty((len(candidates), len(self.objectives.objectives)))
        for j, o in enumerate(self.objectives.objectives):
            F[:, j] = pred[:, self.exp_idx.index(j)] if j in self.exp_idx else o.to_min(metrics[o.name])
        viol = self.objectives.violation(metrics, hard=True, among=metrics)
        chosen: list[int] = []
        for feasible in (True, False):  # feasible children first, then the least violating
            pool = np.flatnonzero((viol == 0) == feasible)
            if feasible is False:
                pool = pool[np.argsort(viol[pool], kind="stable")]
            if not len(pool) or len(chosen) >= self.beam:
                continue
            for front in NonDominatedSorting().do(F[pool]):
                idx = pool[front]
                need = self.beam - len(chosen)
                chosen += list(idx if len(idx) <= need else self.rng.choice(idx, need, replace=False))
                if len(chosen) >= self.beam:
                    break
        return [candidates[i] for i in sorted(chosen)]

    def ask(self) -> list[Architecture]:
        while True:
            if self.step < len(self.steps):
                candidates = self._children()
                if not candidates:  # every child seen: grow the next step from the same parents
                    self.step += 1
                    continue
            else:
                candidates = self._mutants()
            batch = self._choose(candidates)
            self.seen.update(a.id for a in batch)
            return batch

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        F = self.objective_matrix(evaluations)
        feasible = [is_feasible(e) for e in evaluations]
        self.history += list(zip((e.arch for e in evaluations), F, feasible))
        if self.step < len(self.steps):
            keep = [i for i, ok in enumerate(feasible) if ok] or list(range(len(evaluations)))
            front = NonDominatedSorting().do(F[keep], only_non_dominated_front=True)
            self.parents = [evaluations[keep[i]].arch for i in front]
            self.step += 1

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "parents": len(self.parents)}
