"""Surrogate models with a predictive distribution, for model-based strategies (``bo``).

A surrogate maps architecture features (``SearchSpace.surrogate_features`` plus the cheap
objectives) to a predictive mean and standard deviation of one expensive objective. Both models
come from scikit-learn and are fitted with BLAS on one thread, so a seeded fit gives the same
numbers whatever else runs in the process (a resumed search replays its asks exactly).

* ``gp``: a Gaussian process with a Matern-5/2 kernel on standardised features, a fitted noise
  term, and its exact posterior. Good with few data points, cubic in them.
* ``forest``: extremely randomised trees; the spread of the trees' predictions is the
  uncertainty (as in SMAC), with the leaf variance's floor from the data's noise.
"""

from __future__ import annotations

import abc
import warnings
from typing import ClassVar

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.core.registry import Registry


class Surrogate(abc.ABC):
    """Predicts the mean and standard deviation of one objective (any scale)."""

    name: ClassVar[str]

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    @abc.abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> Surrogate:
        """Fit to features ``X`` (n, d) and targets ``y`` (n,)."""

    @abc.abstractmethod
    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predictive mean and standard deviation (both (n,)) at ``X``."""


def _one_thread():  # type: ignore[no-untyped-def]
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


class GPSurrogate(Surrogate):
    name = "gp"

    def fit(self, X: np.ndarray, y: np.ndarray) -> GPSurrogate:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        d = X.shape[1]
        # one length scale for all (standardised) features: a handful of points cannot fit one
        # per feature; it starts at the typical distance between two points
        kernel = (ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.sqrt(2.0 * d), (1e-1, 1e3), nu=2.5)
                  + WhiteKernel(0.1, (1e-5, 1.0)))
        self.model = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                              random_state=self.seed)
        with _one_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with _one_thread():
            mean, sd = self.model.predict(X, return_std=True)
        return np.asarray(mean, dtype=float), np.maximum(np.asarray(sd, dtype=float), 1e-9)


class ForestSurrogate(Surrogate):
    name = "forest"

    def fit(self, X: np.ndarray, y: np.ndarray) -> ForestSurrogate:
        from sklearn.ensemble import ExtraTreesRegressor

        self.model = ExtraTreesRegressor(n_estimators=64, min_samples_leaf=2, max_features=0.5,
                                         random_state=self.seed, n_jobs=1)
        with _one_thread():
            self.model.fit(X, y)
        # a floor for the spread where all trees agree: a tenth of the targets' spread
        self.floor = 0.1 * float(np.std(y)) + 1e-9
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # each fitted tree's own predict, without the per-call input checks of the estimator
        # wrapper (they cost more than the trees on a pool of thousands)
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        per_tree = np.stack([t.tree_.predict(X32).reshape(len(X32)) for t in self.model.estimators_])
        return per_tree.mean(0), np.sqrt(per_tree.var(0) + self.floor ** 2)


SURROGATES: Registry[type[Surrogate]] = Registry("surrogate")
for _cls in (GPSurrogate, ForestSurrogate):
    SURROGATES.register(_cls.name, _cls)


def make_surrogate(name: str, seed: int) -> Surrogate:
    """A surrogate by name; raises HwnasError naming the known ones."""
    if name not in SURROGATES:
        raise HwnasError(f"unknown surrogate {name!r} (known: {', '.join(SURROGATES.names())})")
    return SURROGATES.get(name)(seed)
