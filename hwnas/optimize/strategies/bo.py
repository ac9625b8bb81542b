"""``bo``: model-based search that spends expensive evaluations only where they are expected to pay.

The cheap objectives of every candidate are known before any accuracy is spent; only the
expensive one is uncertain. Each ask draws a pool of unseen candidates, removes those that break
a hard cheap budget, fits a surrogate (``forest`` or ``gp``) of the expensive objective on every
evaluation so far, and proposes the candidates with the largest expected hypervolume improvement
(``ehvi``) or expected improvement (``ei``). The first ``initial`` evaluations spread over the
cheap objectives' range.

How it works, and why: ``docs/design.md`` (hwnas.optimize.strategies.bo).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.pareto import non_dominated
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet, is_feasible
from hwnas.optimize.strategies.acquisition import expected_hv_improvement, expected_improvement
from hwnas.optimize.strategies.base import FAILED_VALUE, CheapFn, Strategy
from hwnas.optimize.strategies.surrogates import SURROGATES, make_surrogate
from hwnas.spaces.base import Architecture, SearchSpace
from hwnas.spaces.hooks import surrogate_features

ACQUISITIONS = ("auto", "ehvi", "ei")
PROXY_FEATURES = ("none", "synflow")  # data-free, so any search can compute it
REF = 1.1  # reference point of the normalised objectives, as in `hwnas bench`


@dataclass(frozen=True)
class BOOptions:
    batch: int = 1  # candidates per ask
    initial: int = 10  # random candidates before the surrogate is trusted
    surrogate: str = "forest"
    acquisition: str = "auto"  # auto: ei for one expensive objective under a hard budget, else ehvi
    pool: int = 10_000  # candidates drawn per ask in a space too large to list
    enumerate_limit: int = 20_000  # a space this small is listed whole
    warp: bool = True  # rank-warp the targets before fitting
    proxy: str = "none"  # "synflow": a zero-cost proxy as a surrogate feature, for the pool's best candidates
    proxy_pool: int = 32  # candidates the proxy is computed for per ask (chosen by the surrogate without it)
    cost_exponent: float = 0.0  # > 0: the acquisition per (relative latency)^exponent, as a training-time proxy


class BayesianOptimization(Strategy):
    name = "bo"
    description = "model-based: surrogate (GP or trees) + expected hypervolume improvement over a feasible pool"
    needs_cheap: ClassVar[bool] = True
    Options = BOOptions
    option_bounds = {"batch": (1, 100_000), "initial": (1, 100_000), "pool": (10, 10_000_000),
                     "enumerate_limit": (0, 10_000_000), "proxy_pool": (2, 100_000), "cost_exponent": (0.0, 4.0)}
    option_choices = {"acquisition": ACQUISITIONS, "surrogate": tuple(SURROGATES.names()), "proxy": PROXY_FEATURES}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: BOOptions | None = None, *, cheap: CheapFn | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        if cheap is None:
            raise HwnasError("bo needs the cheap-metric function of the search (Strategy.create passes it)")
        o = self.options
        batch, initial, surrogate, acquisition, pool = o.batch, o.initial, o.surrogate, o.acquisition, o.pool
        enumerate_limit, warp = o.enumerate_limit, o.warp
        self.cheap = cheap
        self.batch, self.initial, self.pool_size = int(batch), int(initial), int(pool)
        self.surrogate_name = surrogate
        self.warp = bool(warp)
        objs = objectives.objectives
        self.exp_idx = [j for j, o in enumerate(objs) if not o.cheap]
        self.cheap_idx = [j for j, o in enumerate(objs) if o.cheap]
        self.cheap_metrics = [m for m in objectives.metrics if objectives.is_cheap(m)]
        self.hard = objectives.constraints_on(self.cheap_metrics, hard=True)
        self.feature_metrics = sorted(m for m in objectives.metrics if objectives.is_cheap(m))

        if acquisition == "auto":
            acquisition = "ei" if self.hard and len(self.exp_idx) == 1 else "ehvi"
        self.acquisition = acquisition
        self.fixed_pool = space.distinct_architectures(enumerate_limit)
        self._fixed: dict[str, Any] | None = None
        self.seen: set[str] = set()
        self.obs_arch: list[Architecture] = []
        self.obs_F: list[np.ndarray] = []  # objective vectors to minimise (soft penalties applied)
        self.obs_cheap: list[dict[str, float]] = []
        self.obs_feasible: list[bool] = []
        self.obs_epochs: list[float | None] = []  # a multi-fidelity search's rung of each observation
        self.latest: dict[str, int] = {}  # architecture id -> its observation at the highest rung
        self.proxy, self.proxy_pool = o.proxy, int(o.proxy_pool)
        self.cost_exponent = float(o.cost_exponent)
        # what a candidate costs to evaluate, relatively: its first minimised cheap objective (latency),
        # deterministic where measured training seconds are not (traces must replay identically)
        self.cost_column = next((k for k, j in enumerate(self.cheap_idx)
                                 if self.objectives.objectives[j].direction == "min"), None)
        self._proxy_cache: dict[str, float] = {}

    # ----- the pool ------------------------------------------------------------------------------
    def _describe(self, archs: list[Architecture]) -> dict[str, Any]:
        """Cheap metrics, objective columns and the feasibility of a list of candidates."""
        metrics = self.cheap(archs) if archs else {}
        n = len(archs)
        viol = self.objectives.violation(metrics, hard=True, among=self.cheap_metrics) if n else np.zeros(0)
        soft = self.objectives.violation(metrics, hard=False, among=self.cheap_metrics) if n else np.zeros(0)
        F = np.zeros((n, len(self.cheap_idx)))
        for k, j in enumerate(self.cheap_idx):
            o = self.objectives.objectives[j]
            v = o.to_min(np.asarray(metrics[o.name], dtype=float))
            F[:, k] = np.where(v > 0, v * (1 + soft), v * (1 - soft))
        ok = (viol <= 0) & np.all(np.isfinite(F), axis=1)
        return {"archs": archs, "metrics": metrics, "F": F, "feasible": ok}

    def _pool(self) -> dict[str, Any]:
        """The feasible, not yet asked candidates: archs, cheap objectives F, standardised
        features X, and the standardisation (``mean``, ``sd``, ``used`` columns)."""
        if self.fixed_pool is not None:
            if self._fixed is None:  # a listed space: described once, then only masked
                full = self._describe(self.fixed_pool)
                full.update(_standardise(self._features(full["archs"], full["metrics"])))
                full["ids"] = [a.id for a in full["archs"]]
                full["where"] = {arch_id: i for i, arch_id in enumerate(full["ids"])}
                self._fixed = full
            full = self._fixed
            available = full["feasible"].copy()
            available[[full["where"][i] for i in self.seen if i in full["where"]]] = False
            return _subset(full, np.flatnonzero(available))
        drawn: dict[str, Architecture] = {}
        for a in self._draw():
            if a.id not in self.seen:
                drawn.setdefault(a.id, a)
        d = self._describe(list(drawn.values()))
        d.update(_standardise(self._features(d["archs"], d["metrics"])))
        return _subset(d, np.flatnonzero(d["feasible"]))

    def _draw(self) -> list[Architecture]:
        """A fresh pool: uniform draws, mutations and crossovers of the current front."""
        front = [self.obs_arch[i] for i in self._front_rows()]
        n_var = self.pool_size // 2 if front else 0
        out = self.space.sample_architectures(self.rng, self.pool_size - n_var)
        for k in range(n_var):
            parent = front[int(self.rng.integers(len(front)))]
            if k % 2 and len(front) > 1:
                other = front[int(self.rng.integers(len(front)))]
                out.append(self.space.crossover(parent, other, self.rng)[0])
            else:  # one or two genes changed
                rate = (1 + int(self.rng.integers(2))) / len(self.space.cardinalities())
                out.append(self.space.mutate(parent, self.rng, rate=rate))
        return out

    def _features(self, archs: Sequence[Architecture], metrics: dict[str, np.ndarray]) -> np.ndarray:
        genes = np.array([a.genes for a in archs], dtype=np.int64).reshape(len(archs), -1)
        cols = [surrogate_features(self.space, genes)] if len(archs) else [np.zeros((0, 1))]
        for name in self.feature_metrics:
            v = np.asarray(metrics[name], dtype=float)
            cols.append((np.log(np.maximum(v, 1e-12)) if np.all(v > 0) else v).reshape(-1, 1))
        return np.concatenate(cols, 1)

    # ----- ask/tell ------------------------------------------------------------------------------
    def ask(self) -> list[Architecture]:
        pool = self._pool()
        if not pool["archs"]:  # the feasible space is exhausted: repeat a known one (not counted again)
            return [self.obs_arch[-1]] if self.obs_arch else self.space.sample(self.rng, 1)
        n_complete = len(self._complete())
        if n_complete < self.initial or not self.exp_idx:
            return self._space_filling(pool, max(self.initial - n_complete, self.batch))
        picks = self._acquire(pool)
        self.seen.update(a.id for a in picks)
        return picks

    def _space_filling(self, pool: dict[str, Any], n: int) -> list[Architecture]:
        """``n`` candidates spread over the first cheap objective: one per quantile stratum."""
        n = min(n, len(pool["archs"]))
        key = pool["F"][:, 0] if pool["F"].shape[1] else np.zeros(len(pool["archs"]))
        order = np.argsort(key, kind="stable")
        strata = np.array_split(order, n)
        picks = [pool["archs"][int(s[self.rng.integers(len(s))])] for s in strata if len(s)]
        self.seen.update(a.id for a in picks)
        return picks

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        F = self.objective_matrix(evaluations)  # failed: the expensive objectives at FAILED_VALUE
        known = {a.id for a in self.obs_arch}
        for e, f in zip(evaluations, F):
            self.seen.add(e.arch.id)
            if e.arch.id in known or e.status == "infeasible":
                continue  # a repeat the loop answered again, or (never from the pool) a broken budget
            known.add(e.arch.id)
            self._add(e, f)

    def observe(self, evaluations: Sequence[Evaluation]) -> None:
        """Results of candidates told before, at a higher fidelity (a multi-fidelity search's
        promotions): the surrogate learns from every rung, with the epochs as a feature, and
        predicts at the highest rung it has seen (as BOHB's model learns from every budget)."""
        for e, f in zip(evaluations, self.objective_matrix(evaluations)):
            self._add(e, f)

    def _add(self, e: Evaluation, f: np.ndarray) -> None:
        if e.arch.id in self.latest and not e.ok:
            return  # a failed promotion: the lower rung's result stands
        self.latest[e.arch.id] = len(self.obs_arch)
        self.obs_arch.append(e.arch)
        self.obs_F.append(f)
        self.obs_cheap.append({m: v for m, v in e.metrics.items() if self.objectives.is_cheap(m)})
        self.obs_feasible.append(is_feasible(e))
        self.obs_epochs.append(e.fidelity)

    def _front_rows(self) -> list[int]:
        latest = set(self.latest.values())
        rows = [i for i, ok in enumerate(self.obs_feasible) if ok and i in latest]
        if not rows:
            return []
        F = np.array([self.obs_F[i] for i in rows])
        return [rows[i] for i in non_dominated(F)]

    # ----- the model -----------------------------------------------------------------------------
    def _complete(self) -> list[int]:
        """Observations whose expensive objectives were all measured."""
        return [i for i, F in enumerate(self.obs_F) if np.all(F[self.exp_idx] < FAILED_VALUE)]

    def _training_set(self) -> tuple[list[int], np.ndarray, np.ndarray]:
        """The complete observations, their features and their objective values (to minimise)."""
        done = self._complete()
        metrics = {m: np.array([self.obs_cheap[i].get(m, np.nan) for i in done], dtype=float)
                   for m in self.feature_metrics}
        X = self._features([self.obs_arch[i] for i in done], metrics)
        return done, X, np.array([self.obs_F[i] for i in done])

    def _epochs_feature(self, rows: list[int]) -> np.ndarray | None:
        """log(epochs) of each observation, 0 at the highest rung seen and -1 at the lowest (None
        outside a multi-fidelity search, or while every observation is at one rung)."""
        epochs = np.array([self.obs_epochs[i] or 0.0 for i in rows], dtype=float)
        if not len(epochs) or epochs.min() <= 0 or epochs.min() == epochs.max():
            return None
        return (np.log(epochs) - np.log(epochs.max())) / np.log(epochs.max() / epochs.min())

    def _acquire(self, pool: dict[str, Any]) -> list[Architecture]:
        done, X_obs, F_obs = self._training_set()
        Xp, Xo = pool["X"], (X_obs[:, pool["used"]] - pool["mean"]) / pool["sd"]
        if self.proxy != "none":
            pool, Xp, Xo = self._with_proxy(pool, Xp, Xo, done, F_obs)
        epochs = self._epochs_feature(done)
        if epochs is not None:  # the pool is predicted at the highest rung
            Xo, Xp = np.column_stack([Xo, epochs]), np.column_stack([Xp, np.zeros(len(Xp))])
        seed = int(self.rng.integers(2**31 - 1))
        if len(self.exp_idx) == 1:
            y = gaussian_copula(F_obs[:, self.exp_idx[0]]) if self.warp else F_obs[:, self.exp_idx[0]]
            mean, sd = make_surrogate(self.surrogate_name, seed).fit(Xo, y).predict(Xp)
            latest = set(self.latest.values())
            feasible = np.array([self.obs_feasible[i] and i in latest for i in done], dtype=bool)
            return self._greedy(pool, F_obs[feasible][:, self.cheap_idx], y[feasible], mean, sd,
                                y_range=(float(y.min()), float(y.max())))
        # several expensive objectives: ParEGO, a random Chebyshev scalarisation per ask (a batch is
        # its best expected improvements: the scalarisation has no front to add fantasies to)
        lo, hi = F_obs.min(0), F_obs.max(0)
        w = self.rng.dirichlet(np.ones(F_obs.shape[1]))
        f = (F_obs - lo) / np.where(hi > lo, hi - lo, 1.0)
        g = gaussian_copula((w * f).max(1) + 0.05 * (w * f).sum(1))
        mean, sd = make_surrogate(self.surrogate_name, seed).fit(Xo, g).predict(Xp)
        score = expected_improvement(float(g.min()), mean, sd)
        order = np.argsort(-score, kind="stable")[: self.batch]
        return [pool["archs"][int(i)] for i in order]

    def _greedy(self, pool: dict[str, Any], front_c: np.ndarray, front_y: np.ndarray, mean: np.ndarray,
                sd: np.ndarray, *, y_range: tuple[float, float]) -> list[Architecture]:
        """Pick ``batch`` candidates one by one, each pick's mean joining as a fantasy.

        ``front_c`` and ``front_y`` are the cheap and (warped) expensive objectives of the feasible
        complete observations; ``mean`` and ``sd`` are on the same scale as ``front_y``."""
        cheap = pool["F"]
        # normalise: cheap objectives by the pool's range, the expensive one by what was observed
        c_lo = np.minimum(cheap.min(0), front_c.min(0)) if len(front_c) else cheap.min(0)
        c_span = np.where(cheap.max(0) > c_lo, cheap.max(0) - c_lo, 1.0)
        y_lo, y_span = y_range[0], (y_range[1] - y_range[0]) or 1.0
        cand_c, cand_m, cand_s = (cheap - c_lo) / c_span, (mean - y_lo) / y_span, sd / y_span
        fr_c, fr_y = (front_c - c_lo) / c_span, (front_y - y_lo) / y_span
        k = cand_c.shape[1]
        cost = self._relative_cost(pool)
        picks: list[int] = []
        available = np.ones(len(cand_m), dtype=bool)
        for _ in range(min(self.batch, len(cand_m))):
            if self.acquisition == "ei" or k == 0:
                score = expected_improvement(float(fr_y.min()) if len(fr_y) else REF, cand_m, cand_s)
            else:
                keep = non_dominated(np.column_stack([fr_c, fr_y])) if len(fr_y) else np.array([], dtype=int)
                score = expected_hv_improvement(cand_c, cand_m, cand_s, fr_c[keep], fr_y[keep], lower=np.zeros(k),
                                                ref=np.full(k + 1, REF), rng=self.rng)
            score = score / cost
            best = int(np.argmax(np.where(available, score, -np.inf)))  # ties: the first in pool order
            picks.append(best)
            available[best] = False
            fr_c = np.vstack([fr_c, cand_c[best]])  # the fantasy: the pick at its predicted mean
            fr_y = np.append(fr_y, cand_m[best])
        return [pool["archs"][i] for i in picks]

    def _relative_cost(self, pool: dict[str, Any]) -> np.ndarray:
        """Each pool candidate's cost over the pool's median, to the power ``cost_exponent`` (ones
        when off): expected improvement per unit of cost, as in Snoek et al. (2012), with the cost
        metric standing for training time (both grow with a model's multiply-adds)."""
        n = len(pool["archs"])
        if self.cost_exponent <= 0 or self.cost_column is None or not n:
            return np.ones(n)
        c = np.asarray(pool["F"][:, self.cost_column], dtype=float)
        c = np.where(np.isfinite(c) & (c > 0), c, np.nan)
        if np.all(np.isnan(c)):
            return np.ones(n)
        c = np.where(np.isnan(c), np.nanmax(c), c)
        return (c / np.median(c)) ** self.cost_exponent

    def _proxy(self, archs: Sequence[Architecture]) -> np.ndarray:
        """The zero-cost proxy of each architecture at its seeded initial weights (cached)."""
        from hwnas.core.threads import torch_threads
        from hwnas.evaluation.proxies import synflow

        with torch_threads(1):  # one small model at a time: more threads only wait on each other
            for a in archs:
                if a.id not in self._proxy_cache:
                    model = self.space.build(a, seed=0, calibrate_bn=False)
                    self._proxy_cache[a.id] = synflow(model, self.space.input_shape)
        return np.array([self._proxy_cache[a.id] for a in archs])

    def _with_proxy(self, pool: dict[str, Any], Xp: np.ndarray, Xo: np.ndarray, done: list[int],
                    F_obs: np.ndarray) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """The pool cut to ``proxy_pool`` candidates (half the surrogate's best by expected
        improvement of the expensive objective, half spread over the first cheap objective), and both
        feature matrices with the proxy as one more (standardised) column."""
        n = len(pool["archs"])
        if n > self.proxy_pool:
            y = F_obs[:, self.exp_idx].mean(1)
            mean, sd = make_surrogate(self.surrogate_name, int(self.rng.integers(2**31 - 1))).fit(Xo, y).predict(Xp)
            best = np.argsort(-expected_improvement(float(y.min()), mean, sd), kind="stable")[: self.proxy_pool // 2]
            rest = np.setdiff1d(np.arange(n), best)
            key = pool["F"][rest, 0] if pool["F"].shape[1] else np.zeros(len(rest))
            spread = [int(s[len(s) // 2]) for s in np.array_split(rest[np.argsort(key, kind="stable")],
                                                                  self.proxy_pool - len(best)) if len(s)]
            keep = np.sort(np.concatenate([best, np.array(spread, dtype=int)]))
            pool, Xp = _subset(pool, keep), Xp[keep]
        cand = self._proxy(pool["archs"])
        seen = self._proxy([self.obs_arch[i] for i in done])
        mu, sdv = seen.mean(), seen.std() or 1.0
        return pool, np.column_stack([Xp, (cand - mu) / sdv]), np.column_stack([Xo, (seen - mu) / sdv])

    def state(self) -> dict[str, Any]:
        return {"observed": len(self.obs_arch), "front": len(self._front_rows()), "surrogate": self.surrogate_name,
                "acquisition": self.acquisition}


def gaussian_copula(y: np.ndarray) -> np.ndarray:
    """Ranks mapped to standard normal quantiles: a long tail of poor values (diverged or
    degenerate networks) no longer dominates the surrogate's fit; the order is kept."""
    from scipy.stats import norm, rankdata

    return norm.ppf((rankdata(y) - 0.5) / len(y))


def _subset(pool: dict[str, Any], keep: np.ndarray) -> dict[str, Any]:
    """The rows ``keep`` of a described pool, with its standardisation."""
    return {"archs": [pool["archs"][i] for i in keep], "F": pool["F"][keep], "X": pool["X"][keep],
            "mean": pool["mean"], "sd": pool["sd"], "used": pool["used"]}


def _standardise(X: np.ndarray) -> dict[str, np.ndarray]:
    """Features scaled to mean 0 and sd 1 over the pool; columns constant there are dropped."""
    mean, sd = X.mean(0), X.std(0)
    used = sd > 1e-12
    return {"X": (X[:, used] - mean[used]) / sd[used], "mean": mean[used], "sd": sd[used], "used": used}
