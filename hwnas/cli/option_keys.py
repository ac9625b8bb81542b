"""The keys each KEY=VALUE option of the command line takes, for ``--help`` (which must not load
torch to list them). The tables below are generated from the strategies', estimators' and
spaces' own option declarations by ``python -m hwnas.cli.option_keys --write``; a test fails when
they fall behind. Do not edit the tables by hand."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

# ----- generated: begin -----
STRATEGY_KEYS = {
    "bo": "batch, initial, surrogate (forest|gp), acquisition (auto|ehvi|ei), pool, enumerate_limit, warp, proxy (none|synflow), proxy_pool, cost_exponent",
    "evolution": "population, sample_size, batch",
    "nsga2": "pop_size, crossover_prob, mutation_rate",
    "progressive": "beam, mutations",
    "random": "batch",
    "rl": "reward (monas|mnas-soft|mnas-hard), batch, hidden, lr, alpha, baseline_decay, entropy, cost_metric",
}
ACCURACY_KEYS = {
    "supernet": "epochs, batch_size, lr, momentum, weight_decay, seed, split_seed, calib_batches, sampling (uniform|sandwich|fair), paths, split, uniform_over (genes|architectures), share_convs, score (expected|top1), dataset, path, threads, ensemble",
    "table": "(none: map a column with --metric accuracy=COLUMN)",
    "train": "epochs, subset, batch_size, lr, momentum, weight_decay, label_smoothing, seed, split_seed, max_loss, dataset, cache, threads, quantized",
}
SPACE_KEYS = {
    "dppnet": "growth, N, stem_channels, groups",
    "mobilenet": "scale",
    "nb201": "C, N",
}
# ----- generated: end -----


def _listed(keys: dict[str, tuple[str, ...]]) -> str:
    return ", ".join(f"{k} ({'|'.join(c)})" if c else k for k, c in keys.items())


def generate() -> str:
    """The generated block, from the registries (loads every strategy, estimator and space)."""
    from hwnas.evaluation.supernet import SUPERNET_OPTIONS
    from hwnas.evaluation.training import TRAIN_OPTIONS
    from hwnas.optimize.strategies import STRATEGIES
    from hwnas.spaces import SPACES

    strategies = {}
    for name in sorted(STRATEGIES.names()):
        cls = STRATEGIES.get(name)
        if name.startswith("optuna"):  # peers: their options are Optuna's
            continue
        strategies[name] = _listed({k: o.choices for k, o in cls.schema().items()})
    accuracy = {"supernet": _listed({k: o.choices for k, o in SUPERNET_OPTIONS.items()}),
                "table": "(none: map a column with --metric accuracy=COLUMN)",
                "train": _listed({k: o.choices for k, o in TRAIN_OPTIONS.items()})}
    spaces = {name: ", ".join(k for k in inspect.signature(SPACES.get(name).__init__).parameters
                              if k not in ("self", "input_shape", "num_classes")) for name in sorted(SPACES.names())}
    lines = ["# ----- generated: begin -----"]
    for var, table in (("STRATEGY_KEYS", strategies), ("ACCURACY_KEYS", accuracy), ("SPACE_KEYS", spaces)):
        lines.append(f"{var} = {{")
        lines += [f"    {name!r}: {keys!r},".replace("'", '"') for name, keys in table.items()]
        lines.append("}")
    lines.append("# ----- generated: end -----")
    return "\n".join(lines) + "\n"


def _current() -> str:
    text = Path(__file__).read_text()
    return text[text.index("# ----- generated: begin -----"):text.index("# ----- generated: end -----")] + \
        "# ----- generated: end -----\n"


if __name__ == "__main__":  # python -m hwnas.cli.option_keys --write
    if "--write" in sys.argv:
        text = Path(__file__).read_text()
        Path(__file__).write_text(text.replace(_current(), generate()))
    else:
        print(generate(), end="")
