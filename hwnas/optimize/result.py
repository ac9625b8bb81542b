"""What a search returns: the front as typed members, and the run around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.core.errors import HwnasError
from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.choice import Recommendation, accuracy_images, recommend
from hwnas.optimize.config import RunConfig
from hwnas.optimize.rundir import RunDir

__all__ = ["FrontMember", "SearchResult"]


@dataclass(frozen=True)
class FrontMember:
    """One Pareto-optimal architecture: its string and id, its metrics, and whether it meets every
    budget. ``member["accuracy"]`` reads a metric (or ``arch``, ``arch_id``, ``feasible``,
    ``violation``, ``epochs``). ``epochs``: the rung of a multi-fidelity search its metrics come from."""

    arch: str
    arch_id: str
    metrics: dict[str, float]
    feasible: bool
    violation: float = 0.0
    epochs: float | None = None

    def __getitem__(self, name: str) -> Any:
        if name in ("arch", "arch_id", "feasible", "violation", "epochs"):
            return getattr(self, name)
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "arch_id": self.arch_id, **self.metrics, "feasible": self.feasible,
                "violation": self.violation, **({} if self.epochs is None else {"epochs": self.epochs})}


@dataclass
class SearchResult:
    """What :func:`search` returns: the front (cheapest member first), whether it is feasible (else
    it is the least-violating set), every evaluation in order, and the run's config."""

    run_dir: Path
    front: list[FrontMember]
    feasible: bool
    evaluations: list[Evaluation]
    used: int
    config: RunConfig
    stopped: str = "evaluations"  # or "time budget", or why the search ended early
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0  # the search's wall time, over every resume

    @property
    def archive_path(self) -> Path:
        return self.run_dir / RunDir.ARCHIVE

    def recommend(self, how: str | None = None) -> Recommendation | None:
        """The member to ship and why (``hwnas.optimize.choice.recommend``): by default the most
        accurate within every budget, or the front's knee when there is none; ``how="accuracy-1se"``
        the fastest within one standard error of the most accurate on the search's validation
        images. None for an empty front. Its values are the search's: predicted latency, the
        estimator's accuracy."""
        return recommend([m.to_dict() for m in self.front], self.config.objectives, how=how,
                         accuracy_n=accuracy_images(RunDir(self.run_dir).meta().get("sources"))
                         if how == "accuracy-1se" else None)

    def to_pandas(self) -> Any:
        """The front as a ``pandas.DataFrame``, one row per member: the objectives first (what a
        printed frame shows when it is cut), then other metrics, feasibility and the architecture
        last. Needs pandas installed."""
        try:
            import pandas as pd
        except ImportError:
            raise HwnasError("SearchResult.to_pandas needs pandas: pip install pandas") from None
        frame = pd.DataFrame([m.to_dict() for m in self.front])
        first = [n for n in self.config.objectives.names if n in frame.columns]
        last = [c for c in ("feasible", "violation", "epochs", "arch", "arch_id") if c in frame.columns]
        return frame[first + [c for c in frame.columns if c not in first and c not in last] + last]
