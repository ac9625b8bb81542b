"""A budget checked against the space before any training: one that no model can meet, or that
every model meets, is almost always a typo or a wrong unit (``latency_ms<=60`` where every model
runs under 1 ms), and is said in one line with the range the cheap metric actually spans."""

from __future__ import annotations

import numpy as np

from hwnas.core.errors import HwnasError
from hwnas.optimize.evaluator import CandidateEvaluator
from hwnas.optimize.objectives import Constraint
from hwnas.spaces import SearchSpace
from hwnas.spaces.hooks import extremes

SAMPLES = 200  # random architectures, beside the space's largest and smallest


def budget_warnings(constraints: tuple[Constraint, ...], space: SearchSpace, evaluator: CandidateEvaluator,
                    rng: np.random.Generator) -> list[str]:
    """One line for each hard budget on a cheap metric that excludes every model or binds none,
    judged on ``SAMPLES`` random architectures and the space's extremes (where it has them)."""
    checked = [c for c in constraints if c.hard and c.name in evaluator.cheap_metrics]
    if not checked:
        return []
    archs = space.sample(rng, SAMPLES)
    largest_smallest = extremes(space)
    if largest_smallest:
        archs += list(largest_smallest)
    try:
        values = evaluator.cheap(archs)
    except HwnasError:  # a benchmark that lacks some sampled architectures: no judgement
        return []
    out = []
    for c in checked:
        v = values[c.name][np.isfinite(values[c.name])]
        if not len(v):
            continue
        low, high = float(v.min()), float(v.max())
        meets = c.within(v)
        span = f"the {len(archs):,} models sampled, whose {c.name} spans {low:.4g} to {high:.4g}"
        if not meets.any():
            out.append(f"budget {c.text} excludes all {span} (is the budget in the metric's unit?); if nothing "
                       "meets it, the search ends with the least-violating models")
        elif meets.all():
            out.append(f"budget {c.text} binds none of {span}: it filters nothing")
    return out
