"""``hwnas retrain RUN_DIR``: retrain each member of a search's front from scratch at full
fidelity, and measure it on the validation split and, once, on the test split.

Accuracies from ``--accuracy train`` (low fidelity) and ``--accuracy supernet`` (inherited
weights) are proxies; the search records them as such. Retraining gives each front member its own
validation and test accuracy. The test split is read here and nowhere in the search. Writes
``RUN_DIR/retrain.json`` and the weights to ``RUN_DIR/retrained/<arch_id>.pt`` (for export).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch

from hwnas.core.log import say
from hwnas.core.files import atomic_path, output_folder, write_json
from hwnas.core.errors import HwnasError
from hwnas.core.pareto import spread
from hwnas.core.threads import torch_threads
from hwnas.data.datasets import Splits, load_for_space, make_splits, standardize
from hwnas.evaluation.training import TrainingFailed, TrainSettings, accuracy_on, fit, normalised
from hwnas.optimize.rundir import RunDir


# the dataset an estimator trains on when the search named none (their ``dataset`` default)
DEFAULT_DATASETS = {"train": "mnist5k", "supernet": "mnist5k"}


def retrain(run_dir: str | Path, *, epochs: int = 15, dataset: str | None = None, seed: int = 0,
            limit: int | None = None, archs: Sequence[str] | None = None, threads: int | None = None,
            log: Any = say) -> dict[str, Any]:
    """Retrain the front (``limit`` members spread along it, or the given ``archs``); models
    already in ``retrain.json`` with the same settings and weights on disk are kept, not redone."""
    run = RunDir(run_dir)
    run_dir = run.path
    front_members = run.front()["front"] if archs is None else []
    config = run.config()
    options = config.accuracy_options
    dataset = dataset or options.get("dataset") or DEFAULT_DATASETS.get(config.accuracy or "")
    if not dataset:
        raise HwnasError(f"{run_dir}: the search used no dataset (accuracy {config.accuracy!r}); give --dataset")
    space = config.build_space()
    ds = load_for_space(dataset, space, who="retrain")
    split_seed = int(options.get("split_seed", 0))
    splits = make_splits(ds, split_seed)  # the search's own split: its test part was never read
    mean, std = standardize(ds, splits.train)
    x_all, y_all = normalised(ds, mean, std)
    keep = {k: options[k] for k in ("batch_size", "lr", "momentum", "weight_decay", "label_smoothing") if k in options}
    settings = TrainSettings(**{**keep, "epochs": epochs, "subset": 1.0, "seed": seed, "split_seed": split_seed})
    if archs is None:
        front = [front_members[i] for i in spread(len(front_members), limit)]
    else:
        front = [{"arch": a} for a in archs]
    out_dir = run_dir / "retrained"
    output_folder(out_dir, "retrained weights folder")
    report_path = run / RunDir.RETRAIN
    previous = run.retrained() or {}
    kept = {m["arch_id"]: m for m in previous.get("models", [])
            if previous.get("settings") == asdict(settings) and previous.get("dataset") == dataset}
    models: list[dict[str, Any]] = []

    def save() -> dict[str, Any]:
        report = {"run_dir": str(run_dir), "dataset": dataset, "split_seed": split_seed,
                  "split_sizes": {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)},
                  "settings": asdict(settings), "models": models + list(kept.values())}
        write_json(report_path, report)
        return report

    with torch_threads(threads):
        for member in front:
            arch = space.parse(member["arch"])
            old = kept.pop(arch.id, None)
            if old and old.get("status") == "complete" and Path(old.get("weights", "")).is_file():
                models.append(old)  # finished work survives: not retrained again
                continue
            row = {"arch": arch.string, "arch_id": arch.id, "proxy_accuracy": member.get("accuracy"),
                   "proxy": config.accuracy, "epochs": epochs,
                   **_train_one(space.build(arch, seed=seed, calibrate_bn=False), x_all, y_all, splits, settings,
                                out_dir / f"{arch.id}.pt")}
            models.append(row)
            save()  # after each model: a crash loses the model in progress at most
            log(f"retrained {arch.string}: val {row.get('val_accuracy', float('nan')):.2f}%  "
                f"test {row.get('test_accuracy', float('nan')):.2f}%  ({row['seconds']:.0f} s)")
    return save()


def _train_one(model: torch.nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, splits: Splits,
               settings: TrainSettings, weights: Path) -> dict[str, Any]:
    """Train from scratch; val and test accuracy and the saved weights, or the failure."""
    start = time.perf_counter()
    try:
        model = fit(model, x_all, y_all, splits.train, settings)
        row: dict[str, Any] = {"val_accuracy": accuracy_on(model, x_all, y_all, splits.val),
                               "test_accuracy": accuracy_on(model, x_all, y_all, splits.test), "status": "complete"}
        with atomic_path(weights) as tmp:
            torch.save(model.state_dict(), tmp)
        row["weights"] = str(weights)
    except TrainingFailed as exc:
        row = {"status": "failed", "reason": str(exc)}
    return {**row, "seconds": time.perf_counter() - start}
