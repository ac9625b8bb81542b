"""``--accuracy supernet``: one-shot weight sharing (SPOS, Guo et al. 2020) for ``mobilenet``
and ``dppnet``.

One supernet holds a shared tensor per sharing slot; a subnet is the space's own model whose
parameters are views of those tensors. It is trained once per search (``sampling``: uniform
single paths, sandwich or fair; optionally ``split`` into sub-supernets), saved to ``path`` and
reused; a subnet's score is its mean true-class probability on the validation split after its
BatchNorm statistics are recalibrated. ``ensemble=K`` averages K supernets of consecutive seeds.

How it works, and why: ``docs/design.md`` (hwnas.evaluation.supernet).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hwnas.core.log import say
from hwnas.core.errors import HwnasError
from hwnas.core.files import atomic_path
from hwnas.core.threads import torch_threads
from hwnas.measure.conditions import threads_now
from hwnas.data.datasets import Dataset, load_for_space, make_splits, small_split_warning, standardize
from hwnas.evaluation.sharing import (EVAL_ONLY, SAMPLINGS, SCORES, SHARING_VERSION, UNIFORM_OVER, Supernet,
                                      SupernetSettings, check_share_convs, checked_split, fair_paths)
from hwnas.core.options import POSITIVE, OptionError, Option, check_options, schema
from hwnas.evaluation.sources import MetricSource
from hwnas.evaluation.training import accuracy_on, nhwc
from hwnas.spaces.base import Architecture, SearchSpace, calibrate_batchnorm
from hwnas.spaces.hooks import extremes

__all__ = ["SHARING_VERSION", "Supernet", "SupernetAccuracy", "SupernetEnsemble", "SupernetSettings", "fair_paths",
           "member_path"]


SEED_RANGE = (0, 2**63 - 1)
SUPERNET_OPTIONS = schema(
    SupernetSettings,
    {"epochs": (1, 10_000), "batch_size": (1, 1_000_000), "lr": POSITIVE, "momentum": (0.0, 0.999),
     "weight_decay": (0.0, 1.0), "seed": SEED_RANGE, "split_seed": SEED_RANGE, "calib_batches": (0, 10_000),
     "paths": (1, 1_000)},
    {"sampling": SAMPLINGS, "uniform_over": UNIFORM_OVER, "score": SCORES},
    dataset=Option(str), path=Option(str), threads=Option(int, (1, 4096)), ensemble=Option(int, (1, 1_000)))


def check_supernet_options(options: Mapping[str, Any]) -> None:
    """Refuse an unknown supernet option or a value out of range (OptionError, exit 2)."""
    if "quantized" in options:  # each sub-network would need its own calibration and export: minutes, not ms
        raise OptionError("supernet: quantized=1 is not supported (the supernet scores shared fp32 weights); "
                                   "use --accuracy train --accuracy-opt quantized=1, or export with --int8 to measure it")
    check_options("supernet", options, SUPERNET_OPTIONS)
    path = options.get("path")
    if path is not None and Path(path).exists() and not Path(path).is_file():
        raise OptionError(f"supernet: option path={path}: is a folder or special file; give the path of "
                                   "a weights file (it is written after training, or read if it exists)")


class SupernetAccuracy(MetricSource):
    """Validation accuracy of a subnet inheriting the trained supernet's weights (a proxy)."""

    provides = ("accuracy",)
    cheap = False  # a training, or a supernet evaluation on the validation split

    def __init__(self, space: SearchSpace, *, dataset: str = "mnist5k", path: str | None = None,
                 threads: int | None = None, log: Any = say, **settings: Any) -> None:
        given = {"dataset": dataset, "path": path, "threads": threads, **settings}
        check_supernet_options({k: v for k, v in given.items() if v is not None})
        self.space, self.settings, self.dataset_name = space, SupernetSettings(**settings), dataset
        if self.settings.sampling == "sandwich" and extremes(space) is None:
            raise HwnasError(f"supernet: space {space.name} has no largest/smallest pair for sampling=sandwich")
        checked_split(space, self.settings.split)  # before the data loads
        check_share_convs(space, self.settings.share_convs)  # likewise
        if self.settings.uniform_over != "genes" and self.settings.sampling == "fair":
            raise HwnasError("supernet: uniform_over applies to random paths (sampling=uniform or sandwich), not to sampling=fair")
        self.ds: Dataset = load_for_space(dataset, space, who="supernet")
        self.splits = make_splits(self.ds, self.settings.split_seed)
        mean, std = standardize(self.ds, self.splits.train)
        self.x = (torch.from_numpy(self.ds.x) - torch.as_tensor(mean)[None, :, None, None]) / torch.as_tensor(std)[None, :, None, None]
        self.y = torch.from_numpy(self.ds.y)
        self.threads, self.threads_why = (threads, "given") if threads else threads_now()
        log(f"supernet: torch runs {self.threads_why}")
        self.path = Path(path) if path else None
        self.meta = {"space": space.name, "space_version": space.version, "space_config": space.config(),
                     "sharing": SHARING_VERSION, "dataset": dataset, "settings": self.settings.training()}
        self.train_seconds = 0.0
        with self._threads():
            self.net = self._load_or_train(log)

    def _threads(self) -> Any:
        return torch_threads(self.threads)

    def _load_or_train(self, log: Any) -> Supernet:
        net = Supernet(self.space, self.settings.seed, self.settings.split, self.settings.share_convs)
        if self.path and self.path.is_file():
            saved = load_weights(self.path, "supernet")
            meta = dict(saved.get("meta") or {})
            if "settings" in meta:  # settings added later default to what older supernets were trained with
                meta["settings"] = {k: v for k, v in {**SupernetSettings().training(), **meta["settings"]}.items()
                                    if k not in EVAL_ONLY}
            wanted = json.loads(json.dumps(self.meta))
            if meta != wanted:
                field = next(k for k in sorted(set(meta) | set(wanted)) if meta.get(k) != wanted.get(k))
                if isinstance(meta.get(field), dict) and isinstance(wanted.get(field), dict):
                    sub = next(k for k in sorted(set(meta[field]) | set(wanted[field]))
                               if meta[field].get(k) != wanted[field].get(k))
                    field, have, want = f"{field}.{sub}", meta[field].get(sub), wanted[field].get(sub)
                else:
                    have, want = meta.get(field), wanted.get(field)
                raise HwnasError(f"{self.path}: a supernet trained with other settings ({field} is {have!r}, "
                                 f"this run needs {want!r}); delete it or give another path")
            net.load_state_dict(saved["state"])
            self.train_seconds = float(saved.get("train_seconds", 0.0))
            return net
        start = time.perf_counter()
        self.train(net, log)
        self.train_seconds = time.perf_counter() - start
        if self.path:
            with atomic_path(self.path) as tmp:
                torch.save({"meta": self.meta, "state": net.state_dict(), "train_seconds": self.train_seconds}, tmp)
            log(f"supernet trained in {self.train_seconds:.0f} s, saved to {self.path}")
        return net

    def train(self, net: Supernet, log: Any = say) -> None:
        s = self.settings
        start = time.perf_counter()
        rng = np.random.default_rng(s.seed)
        idx = self.splits.train
        steps = math.ceil(len(idx) / s.batch_size)
        opt = torch.optim.SGD(net.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, nesterov=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, s.epochs * steps))
        loss_fn = nn.CrossEntropyLoss()
        fixed = list(extremes(self.space) or ()) if s.sampling == "sandwich" else []
        draw = self.space.sample_architectures if s.uniform_over == "architectures" else self.space.sample
        for epoch in range(s.epochs):
            order = rng.permutation(idx)
            total, seen = 0.0, 0
            for b in range(steps):
                batch = torch.from_numpy(order[b * s.batch_size:(b + 1) * s.batch_size])
                if len(batch) < 2:
                    continue
                x, y = nhwc(self.x[batch]), self.y[batch]
                opt.zero_grad(set_to_none=True)
                teacher: torch.Tensor | None = None
                drawn = ([a for _ in range(s.paths) for a in fair_paths(self.space, rng)] if s.sampling == "fair"
                         else draw(rng, s.paths))
                for arch in fixed + drawn:
                    out = net.subnet(arch).train()(x)
                    if teacher is None:
                        loss = loss_fn(out, y)
                    else:  # in-place distillation from the largest subnet
                        loss = F.kl_div(F.log_softmax(out, 1), teacher, reduction="batchmean")
                    if not torch.isfinite(loss):
                        raise HwnasError(f"supernet training diverged (loss {float(loss)}) on {arch.string}")
                    if fixed and teacher is None:
                        teacher = F.softmax(out.detach(), 1)
                    loss.backward()
                    total, seen = total + float(loss.detach()) * len(batch), seen + len(batch)
                opt.step()
                sched.step()
            log(f"supernet epoch {epoch + 1}/{s.epochs}: loss {total / max(seen, 1):.3f} "
                f"({time.perf_counter() - start:.0f} s)")

    def accuracy(self, arch: Architecture) -> float:
        s = self.settings
        with self._threads(), torch.no_grad():
            sub = self.net.standalone(arch).to(memory_format=torch.channels_last)
            rng = np.random.default_rng(s.seed + 1)
            calib = rng.permutation(self.splits.train)[: s.calib_batches * s.batch_size]
            batches = (nhwc(self.x[torch.from_numpy(calib[i:i + s.batch_size])]) for i in range(0, len(calib), s.batch_size))
            calibrate_batchnorm(sub, batches)
            return accuracy_on(sub, self.x, self.y, self.splits.val, expected=s.score == "expected")

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        return {"accuracy": np.array([self.accuracy(a) for a in archs], dtype=float)}

    def warnings(self) -> list[str]:
        line = small_split_warning(self.dataset_name, self.splits)
        return [line] if line else []

    def describe(self) -> dict[str, Any]:
        return {"source": "supernet", "proxy": True, **self.meta, "path": str(self.path) if self.path else None,
                "evaluation": {k: getattr(self.settings, k) for k in EVAL_ONLY}, "train_seconds": self.train_seconds,
                "threads": self.threads, "threads_chosen": self.threads_why}


def load_weights(path: Path, what: str) -> dict[str, Any]:
    """A dict saved with ``torch.save``, read as tensors and plain data only (``weights_only``): a
    crafted file cannot run code. Anything else is a one-line error naming the file."""
    try:
        with warnings.catch_warnings():  # torch warns about a foreign file's protocol before refusing it
            warnings.simplefilter("ignore")
            saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # the restricted unpickler raises many types on foreign or garbled files
        raise HwnasError(f"{path}: not a {what} file saved by hwnas (it is not a torch file, or it holds objects "
                         "other than tensors and plain data, which are never loaded)") from None
    if not isinstance(saved, dict):
        raise HwnasError(f"{path}: not a {what} file saved by hwnas (it holds a {type(saved).__name__})")
    return saved


def member_path(path: str | Path | None, seed: int, k: int) -> Path | None:
    """Where the k-th supernet of an ensemble is saved: the given path for the first (so a
    supernet trained alone is reused as member 0), ``<stem>-seed<S><suffix>`` beside it for the others."""
    if path is None:
        return None
    path = Path(path)
    return path if k == 0 else path.with_name(f"{path.stem}-seed{seed + k}{path.suffix}")


class SupernetEnsemble(MetricSource):
    """``ensemble=K`` supernets with consecutive seeds; a subnet's accuracy is their mean (a proxy)."""

    provides = ("accuracy",)
    cheap = False  # a training, or a supernet evaluation on the validation split

    def __init__(self, space: SearchSpace, *, ensemble: int, path: str | None = None, log: Any = say,
                 **options: Any) -> None:
        check_supernet_options({"ensemble": ensemble, **({"path": path} if path else {}), **options})
        seed = int(options.pop("seed", 0))
        # each member is trained (or loaded) in turn; a crash keeps the members already saved
        self.members = [SupernetAccuracy(space, path=str(p) if (p := member_path(path, seed, k)) else None,
                                         seed=seed + k, log=log, **options) for k in range(ensemble)]
        self.space, self.settings = space, self.members[0].settings
        self.train_seconds = float(sum(m.train_seconds for m in self.members))

    def accuracy(self, arch: Architecture) -> float:
        return float(np.mean([m.accuracy(arch) for m in self.members]))

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        return {"accuracy": np.array([self.accuracy(a) for a in archs], dtype=float)}

    def warnings(self) -> list[str]:
        return self.members[0].warnings()

    def describe(self) -> dict[str, Any]:
        first = self.members[0].describe()
        return {**first, "ensemble": len(self.members), "seeds": [m.settings.seed for m in self.members],
                "paths": [m.describe()["path"] for m in self.members], "train_seconds": self.train_seconds}
