"""Zero-cost proxies: scores of an untrained network, from one minibatch, that are meant to predict
how well it will train (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS"; Mellor
et al. 2021, "Neural Architecture Search without Training"). They cost one forward and backward
pass, not a training, so they can rank thousands of candidates; White et al. 2022 find that alone
they rarely beat counting FLOPs, and that they help as features of a surrogate.

- ``synflow``: log of sum |theta * dR/dtheta| with every weight replaced by its magnitude and an
  all-ones input, R the sum of the outputs (data-free; computed in float64);
- ``naswot``: log |det K| of the activation-pattern kernel, K_ij the number of rectifier units on
  which inputs i and j agree (on or off);
- ``grad_norm``: log of the summed L2 norms of the loss gradients of every weight;
- ``snip``: log of sum |theta * dL/dtheta| over the convolution and linear weights.

Every score is a deterministic function of the architecture, the weights' seed and the batch
(drawn from the training split with ``seed``). ``ZeroCostProxies`` is the metric source."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import UsageError
from hwnas.core.threads import torch_threads
from hwnas.data.datasets import load_for_space, make_splits, standardize
from hwnas.evaluation.sources import MetricSource
from hwnas.evaluation.training import normalised
from hwnas.spaces.base import Architecture, SearchSpace

PROXIES = ("synflow", "naswot", "grad_norm", "snip")
RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU)
TINY = 1e-30  # keeps log finite for a network whose score is exactly zero


def check_names(names: Sequence[str]) -> None:
    """Raise UsageError for a name that is not a proxy."""
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise UsageError(f"zero-cost proxy {unknown[0]!r}: not one of {', '.join(PROXIES)}")


def synflow(model: nn.Module, input_shape: Sequence[int]) -> float:
    """Log synaptic flow of ``model`` (left unchanged: the score is taken on a float64 copy)."""
    net = copy.deepcopy(model).double().eval()  # eval: BatchNorm passes its (initial) running statistics
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    total = sum(float((p.detach() * p.grad).abs().sum()) for p in net.parameters() if p.grad is not None)
    return math.log(total + TINY)


def naswot(model: nn.Module, x: torch.Tensor) -> float:
    """Log-determinant of the batch's activation-pattern kernel (Mellor et al. 2021)."""
    codes: list[torch.Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        codes.append((output.detach() > 0).flatten(1).double())

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, RECTIFIERS)]
    try:
        model.train()  # batch statistics, as at the start of training
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if not codes:
        return 0.0
    c = torch.cat(codes, 1)
    kernel = c @ c.T + (1 - c) @ (1 - c).T  # units on which two inputs agree
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else math.log(TINY)


def loss_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """``model`` with the gradients of the batch's cross-entropy loss (training mode), for
    ``grad_norm`` and ``snip``."""
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return model


def grad_norm(model: nn.Module) -> float:
    """Log of the summed gradient norms of a model holding its loss gradients (``loss_gradients``)."""
    total = sum(float(p.grad.norm()) for p in model.parameters() if p.grad is not None)
    return math.log(total + TINY)


def snip(model: nn.Module) -> float:
    """Log connection sensitivity of the convolution and linear weights of a model holding its loss
    gradients (``loss_gradients``)."""
    total = sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in model.modules()
                if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None)
    return math.log(total + TINY)


def scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: Sequence[str] = PROXIES) -> dict[str, float]:
    """The proxies ``names`` of an untrained ``model`` on the batch (``x``, ``y``), each on its own
    copy (``grad_norm`` and ``snip`` share one backward pass). Raises UsageError for an unknown name."""
    check_names(names)
    out = {}
    if "synflow" in names:
        out["synflow"] = synflow(model, tuple(x.shape[1:]))
    if "naswot" in names:
        out["naswot"] = naswot(copy.deepcopy(model), x)
    if "grad_norm" in names or "snip" in names:
        graded = loss_gradients(copy.deepcopy(model), x, y)
        out.update({n: f(graded) for n, f in (("grad_norm", grad_norm), ("snip", snip)) if n in names})
    return {n: out[n] for n in names}


class ZeroCostProxies(MetricSource):
    """The proxies of each candidate at initialisation, on one minibatch of ``batch_size`` images
    drawn with ``seed`` from the training split of ``dataset`` (``split_seed``: the search's split).
    Cheap: one forward and backward pass per proxy. Values are cached by architecture."""

    cheap = True

    def __init__(self, space: SearchSpace, *, dataset: str, names: Sequence[str] = PROXIES, batch_size: int = 32,
                 seed: int = 0, split_seed: int = 0, threads: int | None = 1) -> None:
        check_names(names)
        self.space, self.provides, self.seed, self.threads = space, tuple(names), seed, threads
        ds = load_for_space(dataset, space, who="zero-cost proxies")
        splits = make_splits(ds, split_seed)
        mean, std = standardize(ds, splits.train)
        x_all, y_all = normalised(ds, mean, std)
        rng = np.random.default_rng(seed)
        idx = rng.choice(splits.train, size=min(batch_size, len(splits.train)), replace=False)
        self.x, self.y = x_all[idx], y_all[idx]
        self._cache: dict[str, dict[str, float]] = {}

    def scores(self, arch: Architecture) -> dict[str, float]:
        if arch.id not in self._cache:
            with torch_threads(self.threads):
                model = self.space.build(arch, seed=self.seed, calibrate_bn=False)
                self._cache[arch.id] = scores(model, self.x, self.y, self.provides)
        return self._cache[arch.id]

    def evaluate(self, archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
        rows = [self.scores(a) for a in archs]
        return {n: np.array([r[n] for r in rows], dtype=float) for n in self.provides}

    def describe(self) -> dict[str, Any]:
        return {"source": "zero-cost proxies", "provides": list(self.provides), "batch": len(self.x), "seed": self.seed}
