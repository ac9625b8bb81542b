"""Do zero-cost proxies help ``bo``'s surrogate as features? A script, not a test.

Reads the archives of real-data searches (``hwnas bench-real``'s ``runs/*``, or any runs of the
``train`` estimator on one dataset and space), takes every architecture's accuracy at the lowest
rung (or the run's own fidelity), and compares, by leave-one-out, the surrogate ``bo`` fits (a
random forest on the space's features with log MACs and log latency) with the same surrogate given
the zero-cost proxies as extra features. Prints the Kendall tau between the held-out predictions
and the measured accuracies, with a bootstrap 95% interval, for each feature set and for each
signal alone.

    .venv/bin/python tests/bench/proxy_features.py bench-results/real-fm10k/runs/*
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from hwnas.evaluation.proxies import PROXIES, ZeroCostProxies
from hwnas.evaluation.sources import FactsMetrics
from hwnas.optimize.archive import Archive
from hwnas.optimize.config import RunConfig
from hwnas.optimize.strategies.surrogates import make_surrogate
from hwnas.spaces.hooks import surrogate_features


def _rows(runs: list[Path]) -> tuple[RunConfig, list, np.ndarray, np.ndarray]:
    """The first run's config, and every distinct architecture's lowest-rung accuracy and latency."""
    config = None
    seen: dict[str, tuple] = {}
    for run in runs:
        with Archive(run / "archive.sqlite", readonly=True) as a:
            config = config or RunConfig.from_dict(a.meta("config"))
            space = config.build_space()
            for r in a.records():
                if r.status == "complete" and r.expensive and "accuracy" in r.metrics:
                    low = r.fidelity if r.fidelity is not None else 0
                    have = seen.get(r.arch_id)
                    if have is None or low < have[0]:
                        seen[r.arch_id] = (low, space.parse(r.arch), r.metrics["accuracy"], r.metrics.get("latency_ms"))
    if config is None or len(seen) < 8:
        raise SystemExit("need at least 8 evaluated architectures")
    archs = [v[1] for v in seen.values()]
    return config, archs, np.array([v[2] for v in seen.values()]), np.array([v[3] for v in seen.values()], dtype=float)


def _loo_tau(X: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Held-out predictions of the forest surrogate, one architecture left out at a time."""
    pred = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mu, sd = X[keep].mean(0), X[keep].std(0) + 1e-12
        pred[i] = make_surrogate("forest", seed).fit((X[keep] - mu) / sd, y[keep]).predict(((X[i:i + 1] - mu) / sd))[0][0]
    return pred


def _tau_ci(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float, float]:
    taus = [kendalltau(a[idx], b[idx])[0] for idx in (rng.integers(0, len(a), len(a)) for _ in range(n))]
    return float(kendalltau(a, b)[0]), float(np.nanpercentile(taus, 2.5)), float(np.nanpercentile(taus, 97.5))


def main(runs: list[str]) -> None:
    config, archs, acc, latency = _rows([Path(r) for r in runs])
    space = config.build_space()
    dataset = str(config.accuracy_options.get("dataset"))
    macs = FactsMetrics(space).evaluate(archs)["macs"]
    proxies = ZeroCostProxies(space, dataset=dataset).evaluate(archs)
    genes = np.array([a.genes for a in archs])
    base = np.column_stack([surrogate_features(space, genes), np.log(macs), np.log(latency)])
    with_proxies = np.column_stack([base, *(proxies[p] for p in PROXIES)])
    rng = np.random.default_rng(0)
    print(f"{len(archs)} architectures from {len(runs)} run(s); {space!r}; accuracy at the lowest rung on {dataset}")
    print(f"{'signal':<34} Kendall tau [95% bootstrap interval] against measured accuracy")
    for name, values in [("MACs alone", macs), *((f"{p} alone", proxies[p]) for p in PROXIES),
                         ("surrogate, bo's features (LOO)", _loo_tau(base, acc)),
                         ("surrogate, + proxies (LOO)", _loo_tau(with_proxies, acc))]:
        tau, lo, hi = _tau_ci(np.asarray(values, dtype=float), acc, rng)
        print(f"{name:<34} {tau:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    print("command: .venv/bin/python tests/bench/proxy_features.py " + " ".join(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
