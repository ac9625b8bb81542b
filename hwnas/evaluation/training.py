"""``--accuracy train``: train each candidate from scratch at low fidelity and report its
validation accuracy (a proxy, recorded as such).

A few epochs on a subset of the training split; SGD with momentum and a cosine schedule; label
smoothing optional. Deterministic by seed: weights come from ``space.build(arch, seed=...)`` and
the batch order from a private numpy Generator; nothing touches global random state. Results are
cached by architecture id and settings (in memory, and in a JSON file when ``cache`` is given). A
loss that turns NaN or diverges raises TrainingFailed, which the search records as a failed
evaluation with its reason. Only the training and validation splits are ever read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import HwnasError
from hwnas.core.files import read_json, write_json
from hwnas.core.threads import torch_threads
from hwnas.core.processes import scratch_folder
from hwnas.core.options import POSITIVE, Option, as_flag, check_options, schema
from hwnas.measure.conditions import threads_now
from hwnas.data.datasets import Dataset, load_for_space, make_splits, small_split_warning, standardize
from hwnas.evaluation.sources import MetricSource
from hwnas.spaces.base import Architecture, SearchSpace
from hwnas.models.quantize import Calibration, export_pair, onnx_predictions, top1_percent


# Bump when a default below changes: cached results made under the old default must not be reused.
TRAIN_DEFAULTS = 1


def settings_key(settings: Any, defaults: int, skip: Collection[str] = ()) -> str:
    """A short hash of the settings that differ from their defaults, and of ``defaults`` (a number
    bumped whenever a default changes). A setting added later, whose default keeps the old
    behaviour, then leaves every cached result and saved supernet valid. ``skip`` names settings
    that do not change what is cached (a supernet's evaluation-only settings)."""
    changed = {f.name: getattr(settings, f.name) for f in fields(settings)
               if f.name not in skip and getattr(settings, f.name) != f.default}
    return hashlib.sha256(json.dumps({"defaults": defaults, **changed}, sort_keys=True).encode()).hexdigest()[:12]


class TrainingFailed(RuntimeError):
    """A candidate whose training diverged (a candidate failure, not a setup error)."""


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 3
    subset: float = 1.0  # fraction of the training split used
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    seed: int = 0  # weights and batch order
    split_seed: int = 0  # the train/validation/test split
    max_loss: float = 1e3  # above this (or NaN) the run has diverged

    def __post_init__(self) -> None:
        # the options hwnas knows (a subclass may add its own, checked by itself)
        check_options("train", {k: v for k, v in dataclasses.asdict(self).items() if k in TRAIN_OPTIONS}, TRAIN_OPTIONS)

    def key(self) -> str:
        return settings_key(self, TRAIN_DEFAULTS)


SEED_RANGE = (0, 2**63 - 1)
TRAIN_OPTIONS = schema(
    TrainSettings,
    {"epochs": (1, 10_000), "subset": (POSITIVE[0], 1.0), "batch_size": (1, 1_000_000), "lr": POSITIVE,
     "momentum": (0.0, 0.999), "weight_decay": (0.0, 1.0), "label_smoothing": (0.0, 0.99), "seed": SEED_RANGE,
     "split_seed": SEED_RANGE, "max_loss": POSITIVE},
    dataset=Option(str), cache=Option(str), threads=Option(int, (1, 4096)), quantized=Option(bool))


def normalised(ds: Dataset, mean: np.ndarray, std: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.as_tensor(mean, dtype=torch.float32)[None, :, None, None]
    sd = torch.as_tensor(std, dtype=torch.float32)[None, :, None, None]
    return (torch.from_numpy(ds.x) - m) / sd, torch.from_numpy(ds.y)


def nhwc(x: torch.Tensor) -> torch.Tensor:
    """Channels-last batches: CPU depthwise-conv backward runs about 2x faster in NHWC."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def fit(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, train_idx: np.ndarray, s: TrainSettings) -> nn.Module:
    """Train ``model`` in place on ``train_idx``; raises TrainingFailed if the loss diverges."""
    rng = np.random.default_rng(s.seed)
    n_train = max(s.batch_size, int(round(s.subset * len(train_idx))))
    idx = rng.permutation(train_idx)[:n_train]
    steps_per_epoch = math.ceil(len(idx) / s.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.epochs * steps_per_epoch))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)
    model.to(memory_format=torch.channels_last)
    model.train()
    for epoch in range(s.epochs):
        order = rng.permutation(idx)
        for b in range(steps_per_epoch):
            batch = torch.from_numpy(order[b * s.batch_size:(b + 1) * s.batch_size])
            if len(batch) < 2:  # BatchNorm needs two samples
                continue
            loss = loss_fn(model(nhwc(x_all[batch])), y_all[batch])
            value = float(loss.detach())
            if not math.isfinite(value) or value > s.max_loss:
                raise TrainingFailed(f"loss diverged to {value:.3g} in epoch {epoch + 1}, step {b + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


EVAL_BATCH = 64  # small batches keep a layer's activations in cache: 3x faster than 512 on a dense cell


def accuracy_on(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, idx: np.ndarray,
                batch_size: int = EVAL_BATCH, expected: bool = False) -> float:
    """Top-1 accuracy (%) of ``model`` on the samples ``idx``; with ``expected``, the mean probability
    (%) it gives the true class: the expected accuracy of answering with a draw from its softmax."""
    model.eval()
    correct = 0.0
    with torch.inference_mode():
        for b in range(0, len(idx), batch_size):
            batch = torch.from_numpy(idx[b:b + batch_size])
            logits = model(nhwc(x_all[batch]))
            if not torch.isfinite(logits).all():
                raise TrainingFailed("the trained model outputs NaN or infinite logits")
            y = y_all[batch]
            if expected:
                correct += float(logits.double().softmax(1).gather(1, y[:, None]).sum())
            else:
                correct += int((logits.argmax(1) == y).sum())
    return 100.0 * correct / len(idx)


def train_and_evaluate(model: nn.Module, ds: Dataset, train_idx: np.ndarray, eval_idx: np.ndarray,
                       s: TrainSettings, mean: np.ndarray, std: np.ndarray) -> float:
    """Train ``model`` on ``train_idx`` and return its accuracy (%) on ``eval_idx``."""
    x_all, y_all = normalised(ds, mean, std)
    return accuracy_on(fit(model, x_all, y_all, train_idx, s), x_all, y_all, eval_idx)


class TrainAccuracy(MetricSource):
    """Validation accuracy after low-fidelity training from scratch. With ``quantized``, the
    accuracy of the trained model after static INT8 quantization (calibrated on the train split),
    run through onnxruntime: what an int8 device will answer."""

    provides = ("accuracy",)
    cheap = False  # a training, or a supernet evaluation on the validation split

    def __init__(self, space: SearchSpace, *, dataset: str = "mnist5k", cache: str | None = None,
                 threads: int | None = None, quantized: bool | int = False, **settings: Any) -> None:
        given = {"dataset": dataset, "cache": cache, "threads": threads, "quantized": quantized, **settings}
        check_options("train", {k: v for k, v in given.items() if v is not None}, TRAIN_OPTIONS)
        self.quantized = as_flag(quantized)
        self.space = space
        self.settings = TrainSettings(**settings)
        self.dataset_name = dataset
        self.ds = load_for_space(dataset, space, who="train")
        self.splits = make_splits(self.ds, self.settings.split_seed)
        self.mean, self.std = standardize(self.ds, self.splits.train)
        self.threads, self.threads_why = (threads, "given") if threads else threads_now()
        self.cache_path = Path(cache) if cache else None
        self._cache: dict[str, float] = {}
        if self.cache_path and self.cache_path.is_file():
            self._cache = read_json(self.cache_path, HwnasError, "accuracy cache")
        self.hits = 0

    def _key(self, arch: Architecture) -> str:
        return f"{self.space.name}:{arch.id}:{self.dataset_name}:{self.settings.key()}{':int8' if self.quantized else ''}"

    def accuracy(self, arch: Architecture) -> float:
        key = self._key(arch)
        if key in self._cache:
            self.hits += 1
            return self._cache[key]
        with torch_threads(self.threads):
            model = self.space.build(arch, seed=self.settings.seed, calibrate_bn=False)
            if self.quantized:
                acc = self._int8_accuracy(model)
            else:
                acc = train_and_evaluate(model, self.ds, self.splits.train, self.splits.val, self.settings, self.mean,
                                         self.std)
        self._cache[key] = acc
        if self.cache_path:
            write_json(self.cache_path, self._cache)
        return acc

    def _int8_accuracy(self, model: nn.Module) -> float:
        """Train, quantize (calibrated on train images only), score on the validation split."""
        x_all, y_all = normalised(self.ds, self.mean, self.std)
        model = fit(model, x_all, y_all, self.splits.train, self.settings)
        calibration = Calibration.from_train_split(self.dataset_name, self.ds.x, self.splits.train, self.mean, self.std,
                                                   split_seed=self.settings.split_seed)
        with scratch_folder("int8") as tmp:
            try:
                _, int8 = export_pair(model, self.space.input_shape, calibration, Path(tmp), seed=self.settings.seed)
            except HwnasError as exc:  # this candidate cannot be quantized: it fails, the search goes on
                raise TrainingFailed(str(exc)) from None
            val = self.splits.val
            predictions = onnx_predictions(int8, x_all[val].numpy(), threads=self.threads)
        return top1_percent(predictions, y_all[val].numpy())

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        return {"accuracy": np.array([self.accuracy(a) for a in archs], dtype=float)}

    def fidelities(self) -> tuple[float, ...]:
        return ()  # any whole number of epochs

    def evaluate_at(self, archs: Sequence[Architecture], epochs: float) -> dict[str, np.ndarray]:
        """Accuracy after ``epochs`` of training (from scratch, with the cosine schedule over them)."""
        if epochs != int(epochs) or epochs < 1:
            raise HwnasError(f"train: a fidelity is a whole number of epochs >= 1, not {epochs:g}")
        full = self.settings
        self.settings = dataclasses.replace(full, epochs=int(epochs))
        try:
            return self.evaluate(archs)
        finally:
            self.settings = full

    def warnings(self) -> list[str]:
        line = small_split_warning(self.dataset_name, self.splits)
        return [line] if line else []

    def describe(self) -> dict[str, Any]:
        return {"source": "train", "proxy": True, "dataset": self.dataset_name, "settings": asdict(self.settings),
                "quantized": "int8 static QDQ, calibrated on train images, scored in onnxruntime" if self.quantized else False,
                "split_seed": self.splits.seed, "split_sizes": [len(self.splits.train), len(self.splits.val), len(self.splits.test)],
                "threads": self.threads, "threads_chosen": self.threads_why}
