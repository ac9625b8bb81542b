"""Does what hwnas tells a user about their own model hold? The real-data benchmark's check of the
claim that ``hwnas search --reference`` and ``hwnas export --retrain`` make.

A user brings a trained model (here: the benchmark's reference MobileNetV2 width, trained once
with the benchmark's recipe and exported to ONNX) and searches with it as ``--reference``; the
export's card then claims "N.NNx faster and D points more accurate (95% interval ...)". The
benchmark retrains both models over several seeds with one recipe, which gives the same
difference measured properly; the claim holds when that difference lies in the claimed interval
and the measured speed-up agrees with the claimed one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["check_claims", "claim_of", "trained_reference"]


def trained_reference(name: str, build: Callable[[int], Any], dataset: str, epochs: int, input_shape: str,
                      folder: Path, log: Callable[[str], None]) -> Path:
    """``build(0)`` trained ``epochs`` epochs on ``dataset``'s training split (seed 0, the
    benchmark's recipe) and exported to ``folder/<name>-trained.onnx``; kept there, so that a
    continued benchmark uses the same file (the runs record its hash)."""
    import time

    import torch

    from hwnas.core.files import output_folder
    from hwnas.core.threads import torch_threads
    from hwnas.data.datasets import load_dataset, make_splits, standardize
    from hwnas.evaluation.training import TrainSettings, fit, normalised
    from hwnas.measure.conditions import threads_now
    from hwnas.models.onnx_io import export_onnx
    from hwnas.spaces import parse_shape

    path = output_folder(folder, "models folder") / f"{name}-trained.onnx"
    if path.is_file():
        return path
    t0 = time.perf_counter()
    ds = load_dataset(dataset)
    splits = make_splits(ds, 0)
    x, y = normalised(ds, *standardize(ds, splits.train))
    with torch_threads(threads_now()[0]):
        model = fit(build(0), x, y, splits.train, TrainSettings(epochs=epochs, seed=0))
    export_onnx(model.eval(), torch.zeros((1, *parse_shape(input_shape))), path)  # dynamic batch: scored in batches
    log(f"   {name} trained as the user's reference ({time.perf_counter() - t0:.0f} s): {path}")
    return path


def claim_of(run: Path, out: Path, epochs: int, log: Callable[[str], None]) -> dict[str, Any] | None:
    """``hwnas export RUN --retrain --select accuracy --limit 1`` into ``out``; what its card says
    against the run's reference (None where the run has no reference or no model). Kept: an
    ``index.json`` already in ``out`` is read, not made again."""
    from hwnas.core.errors import HwnasError
    from hwnas.core.files import read_json
    from hwnas.deploy.export import ExportSettings, export_front

    if (out / "index.json").is_file():
        index = read_json(out / "index.json", HwnasError, "export index")
    else:
        index = export_front(run, out, ExportSettings(retrain=True, epochs=epochs, limit=1, select="accuracy"),
                             progress=False, log=lambda _m: None)
    if not index.get("models"):
        return None
    card = read_json(out / index["models"][0]["card_json"], HwnasError, "model card")
    ref = card.get("reference") or {}
    if ref.get("accuracy_points") is None:
        return None
    claim = {"arch": card.get("arch"), "speedup": ref["speedup"], "accuracy_points": ref["accuracy_points"],
             "accuracy_points_ci95": ref["accuracy_points_ci95"], "card": str(out / index["models"][0]["card_json"])}
    log(f"   {run.name}: the card claims {claim['speedup']:.2f}x faster and {claim['accuracy_points']:+.2f} points "
        f"[{claim['accuracy_points_ci95'][0]:+.2f}, {claim['accuracy_points_ci95'][1]:+.2f}] against the reference")
    return claim


def check_claims(claims: Mapping[str, Mapping[str, Any]], accuracy: Mapping[str, Sequence[float]],
                 measured: Mapping[str, float], reference: str) -> list[dict[str, Any]]:
    """Each claim (by the compared model's name) against retraining: the mean paired difference over
    seeds, whether it lies in the claimed interval, and the measured speed-up beside the claimed one."""
    from hwnas.bench.stats import ci95

    rows = []
    for name, c in claims.items():
        if name not in accuracy or reference not in accuracy:
            continue
        diff = ci95([a - b for a, b in zip(accuracy[name], accuracy[reference])])
        lo, hi = c["accuracy_points_ci95"]
        speedup = measured[reference] / measured[name] if measured.get(name) else None
        rows.append({"model": name, "claimed_points": c["accuracy_points"], "claimed_ci95": [lo, hi],
                     "retrained_points": diff, "in_interval": bool(lo <= diff["mean"] <= hi),
                     "claimed_speedup": c["speedup"], "measured_speedup": speedup,
                     "speedup_error": None if speedup is None else float(np.log(c["speedup"] / speedup))})
    return rows
