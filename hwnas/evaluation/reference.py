"""A user's own model scored as the search scores its candidates: the same dataset, split and
preprocessing (standardised by the training split's statistics), on the test split, from its ONNX
file. What a report compares the found models with ("how much more accurate than what I had")."""

from __future__ import annotations

import os
from typing import Any

from hwnas.data.datasets import load_for_space, make_splits, standardize
from hwnas.models.quantize import onnx_predictions, top1_percent
from hwnas.spaces.base import SearchSpace

__all__ = ["reference_accuracy", "reference_record"]


def reference_accuracy(path: str | os.PathLike[str], dataset: str, space: SearchSpace, *,
                       split_seed: int = 0) -> dict[str, Any]:
    """The ONNX classifier's top-1 accuracy (%) on the test split of ``dataset`` as the search
    splits it; raises DatasetError for a dataset whose images or classes do not fit the space."""
    from hwnas.evaluation.training import normalised

    ds = load_for_space(dataset, space, who="--reference")
    splits = make_splits(ds, split_seed)
    x, y = normalised(ds, *standardize(ds, splits.train))
    test = splits.test
    predictions = onnx_predictions(path, x[test].numpy(), threads=1)
    return {"dataset": dataset, "split": "test", "split_seed": split_seed, "n": len(test),
            "accuracy": top1_percent(predictions, y[test].numpy())}


def reference_record(path: str | os.PathLike[str], table: Any, space: SearchSpace, *, dataset: str | None = None,
                     split_seed: int = 0) -> dict[str, Any]:
    """What a run records of the user's model (``Problem.build(reference=...)``): its latency timed
    beside the table's sentinels (``measure_reference``), and, with a ``dataset``, its accuracy on
    that dataset's test split, scored as the candidates are. Raises ModelFileError for a file that
    cannot be measured and DatasetError for a dataset that does not fit it."""
    from hwnas.latency.onnx_models import measure_reference

    record = measure_reference(path, table, space).to_dict()
    if dataset:
        record["accuracy"] = reference_accuracy(path, dataset, space, split_seed=split_seed)
    return record
