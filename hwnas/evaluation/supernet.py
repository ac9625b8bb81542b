"""``--accuracy supernet``: one-shot weight sharing (SPOS, Guo et al. 2020) for ``mobilenet``
and ``dppnet``.

The supernet holds, for every *sharing slot* a block can occupy (``config["share"]`` of its
blocks: a stage/slot/choice for MBConv, a stage/cell/layer/op for dense layers, the stem, the
head...), one tensor per parameter at the largest shape any architecture needs there. A subnet
is the space's own model in which every parameter is replaced by a slice, a *view*, of the
supernet's tensor: the leading channels, and the centre of larger kernels. Widths, expansion
ratios and growing input channels therefore share their first channels, and kernel sizes their
centres (Once-for-All's elastic kernel, without its transformation matrices). A block whose input
channels sit further into the shared tensor says so (``config["share_shift"]``): a dppnet
transition after a shorter cell reads the longest cell's kernel from its first existing layer on.
Gradients flow into the supernet, and an exported subnet is exactly the model `space.build` makes.

Training, ``sampling="uniform"`` (the default): single-path sampling (SPOS). Every step draws
``paths`` architectures uniformly (per gene, from the run's Generator; one by default), builds their
view-subnets, accumulates their gradients on one training batch and takes one SGD step.
``sampling="sandwich"`` (BigNAS, Yu et al. 2020): every step also trains the space's largest and
smallest architecture (``space.sandwich()``); the largest learns from the labels, the others from
its softened predictions (in-place distillation), so the large subnets are not undertrained and the
small ones learn what the large one knows.
``sampling="fair"`` (FairNAS, Chu et al. 2021, strict fairness): every step trains as many paths as
the widest decision has choices, drawn so that every choice of every decision is used (once for
the widest, about equally for the others); their gradients are accumulated into one step. No
choice's weights fall behind by the luck of the draw, and each update is a compromise between
paths instead of a chase after one. Genes a path does not use (layers beyond its depth) are
dropped, so the choices of optional layers are trained only as often as their layer is drawn.
``split="width"`` (mobilenet; few-shot NAS, Zhao et al. 2021): one sub-supernet per width
multiplier, sharing nothing across widths. With one tensor for all widths, the leading channels
that every narrow subnet uses are trained at every step and the rest only when a wide subnet is
drawn, so narrow and wide subnets come out about equally accurate and width, the decision that
matters most for accuracy, is not ranked. ``split="layers"`` (dppnet) gives each cell length its
own sub-supernet; unsplit, a layer's weights serve every cell at least that long (as Once-for-All's
elastic depth shares its first layers), so the first layers train at every step.
``share_convs=True`` (dppnet): a layer's conv weights are one tensor for all its norm choices
(``bnrelu``, ``bn``, ``id``), and its BatchNorm one for ``bn`` and ``bnrelu``. Per norm-conv pair, a
layer has 15 weight sets, each drawn in 1 step of 15 at best; per conv, 5, each trained 3 times as
often, at the price of one kernel serving normalised and raw inputs alike.
``uniform_over="architectures"``: random paths are drawn with every distinct architecture equally
likely (`SearchSpace.sample_architectures`) instead of every gene uniform. Per gene, a dppnet
cell length is drawn 1 time in 4, so a fourth layer's choice trains in 1 step of 60 while the
first layer's train in 1 of 15, and deep cells come out undertrained against shallow ones;
per architecture, deep cells (most of the space) are drawn in proportion to their number.
Evaluation: build the subnet's views, recalibrate its BatchNorm statistics on a few training
batches (the shared weights carry no per-subnet statistics), then score it on the validation split.
The score (``score="expected"``, the default) is the mean probability the subnet gives the true
class, in %: the expected accuracy of answering with a draw from its softmax. Subnets of one
supernet lie a few validation images apart in top-1 accuracy (``score="top1"``), which counts
only the answers that flip; the probabilities move with every image, so the ranking is far less
noisy (on Fashion-MNIST, one supernet's median rank agreement rose from 0.45 / 0.30 to 0.57 / 0.52).
The trained supernet is saved and reused by later searches with the same settings.
``ensemble=K`` (`SupernetEnsemble`): K supernets alike but for their seeds (``seed`` .. ``seed+K-1``),
each subnet scored by its mean accuracy over them. Which paths a supernet happened to train
when decides much of its ranking (two SPOS supernets of one setting agree with each other about
as little as with stand-alone training), and that part averages out; K times the cost of one.
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
from hwnas.spaces.data import Dataset, load_for_space, make_splits, standardize
from hwnas.evaluation.sharing import (EVAL_ONLY, SAMPLINGS, SCORES, SHARING_VERSION, UNIFORM_OVER, Supernet,
                                      SupernetSettings, check_share_convs, checked_split, fair_paths)
from hwnas.evaluation.options import POSITIVE, EstimatorOptionError, Option, check_options, schema
from hwnas.evaluation.sources import MetricSource
from hwnas.evaluation.training import accuracy_on, nhwc
from hwnas.spaces.base import Architecture, SearchSpace, calibrate_batchnorm

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
    """Refuse an unknown supernet option or a value out of range (EstimatorOptionError, exit 2)."""
    if "quantized" in options:  # each sub-network would need its own calibration and export: minutes, not ms
        raise EstimatorOptionError("supernet: quantized=1 is not supported (the supernet scores shared fp32 weights); "
                                   "use --accuracy train --accuracy-opt quantized=1, or export with --int8 to measure it")
    check_options("supernet", options, SUPERNET_OPTIONS)
    path = options.get("path")
    if path is not None and Path(path).exists() and not Path(path).is_file():
        raise EstimatorOptionError(f"supernet: option path={path}: is a folder or special file; give the path of "
                                   "a weights file (it is written after training, or read if it exists)")


class SupernetAccuracy(MetricSource):
    """Validation accuracy of a subnet inheriting the trained supernet's weights (a proxy)."""

    provides = ("accuracy",)

    def __init__(self, space: SearchSpace, *, dataset: str = "mnist5k", path: str | None = None,
                 threads: int | None = None, log: Any = say, **settings: Any) -> None:
        given = {"dataset": dataset, "path": path, "threads": threads, **settings}
        check_supernet_options({k: v for k, v in given.items() if v is not None})
        self.space, self.settings, self.dataset_name = space, SupernetSettings(**settings), dataset
        if self.settings.sampling == "sandwich" and space.sandwich() is None:
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
        fixed = list(self.space.sandwich() or ()) if s.sampling == "sandwich" else []
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

    def describe(self) -> dict[str, Any]:
        first = self.members[0].describe()
        return {**first, "ensemble": len(self.members), "seeds": [m.settings.seed for m in self.members],
                "paths": [m.describe()["path"] for m in self.members], "train_seconds": self.train_seconds}
