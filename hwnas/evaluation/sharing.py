"""The weight-sharing supernet itself: max-shaped shared tensors, and the subnets that are views
of them (the training and scoring around it are ``hwnas.evaluation.supernet``'s)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.core.errors import HwnasError
from hwnas.evaluation.training import settings_key
from hwnas.spaces.base import Architecture, SearchSpace, init_weights
from hwnas.spaces.hooks import supernet_group, supernet_splits, supernet_templates


# Bump when the spaces' sharing slots change (dppnet's became per cell length in 2; mobilenet's
# kernel and expansion choices share one tensor per block position since 3; since 4 an MBConv's
# parameters are shared by role, expand/depthwise/project, where e=1 blocks used to put their
# depthwise kernel in the e>1 blocks' expansion tensor): a saved supernet from another scheme is
# refused instead of loading misassigned weights. Since 5 dppnet shares its layers across cell
# lengths (one sub-supernet per length is now ``split="layers"``).
SHARING_VERSION = 5
SAMPLINGS = ("uniform", "sandwich", "fair")
UNIFORM_OVER = ("genes", "architectures")
SUPERNET_DEFAULTS = 1  # bump when a default of SupernetSettings changes (see settings_key)
SCORES = ("expected", "top1")
EVAL_ONLY = ("calib_batches", "score")  # settings that change how subnets are evaluated, not the trained weights


def _window(big: tuple[int, ...], small: tuple[int, ...], start: tuple[int, ...] | None = None) -> tuple[slice, ...]:
    """Where a smaller parameter sits in its shared tensor: leading channels from ``start`` (0 unless
    the block says its input channels sit further in), and for conv kernels the centre (a 3x3 kernel
    is the middle of the 7x7 one, as in Once-for-All)."""
    out = []
    for dim, (b, s) in enumerate(zip(big, small)):
        first = (b - s) // 2 if len(big) == 4 and dim >= 2 else (start[dim] if start else 0)
        out.append(slice(first, first + s))
    return tuple(out)


def _start(module: nn.Module, pname: str, ndim: int, shift: int) -> tuple[int, ...]:
    """Per-dimension start of a parameter in its shared tensor when the block's input channels
    begin ``shift`` channels in (``config["share_shift"]``): the input-channel dimension of a
    BatchNorm's affine parameters and of a dense conv's or linear layer's weight."""
    start = [0] * ndim
    # a split supernet applies the shift too: its shorter groups then carry unused (zero, never
    # trained) leading columns, which keeps one placement rule for split and unsplit alike
    if shift:
        if isinstance(module, nn.BatchNorm2d):
            start[0] = shift
        elif isinstance(module, (nn.Conv2d, nn.Linear)) and pname == "weight" and getattr(module, "groups", 1) == 1:
            start[1] = shift
        elif not (isinstance(module, (nn.Conv2d, nn.Linear)) and pname == "bias"):
            raise HwnasError(f"supernet: cannot shift the input channels of {type(module).__name__}.{pname}")
    return tuple(start)


def _flag(name: str, value: Any) -> bool:
    """A yes/no option as a bool (so that 1 and true name the same saved supernet)."""
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise HwnasError(f"supernet: {name} must be true or false (1 or 0), not {value!r}")


@dataclass(frozen=True)
class SupernetSettings:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 4e-5
    seed: int = 0
    split_seed: int = 0
    calib_batches: int = 4  # training batches used to recalibrate a subnet's BatchNorm (evaluation only)
    sampling: str = "uniform"  # "uniform" (SPOS), "sandwich" (largest + smallest + random, distilled), "fair" (FairNAS)
    paths: int = 1  # random paths per step (gradients accumulated); with "fair", groups of fair paths
    split: str = "none"  # a decision with one sub-supernet per choice (few-shot NAS), e.g. "width"
    uniform_over: str = "genes"  # random paths uniform per gene (SPOS) or over "architectures"
    share_convs: bool = False  # dppnet: a layer's conv weights serve all its norm choices (one tensor per conv)
    score: str = "expected"  # a subnet's score: mean true-class probability (%), or "top1" accuracy (evaluation only)

    def __post_init__(self) -> None:
        # from the command line a flag comes as 1/0 or true/false: one bool, so that both name one saved supernet
        object.__setattr__(self, "share_convs", _flag("share_convs", self.share_convs))

    def key(self) -> str:
        """Identifies the trained supernet: evaluation-only settings are left out, so changing
        them reuses the saved weights instead of training again."""
        return settings_key(self, SUPERNET_DEFAULTS, EVAL_ONLY)

    def training(self) -> dict[str, Any]:
        """The settings a saved supernet was trained with (what must match to reuse it)."""
        return {k: v for k, v in asdict(self).items() if k not in EVAL_ONLY}



Slot = tuple[nn.Module, str, str, str, tuple[int, ...]]


def _conv_apart(cfg: dict[str, Any], local: str) -> tuple[str, str]:
    """``share_convs``: a dense layer's parameter in the slot of its conv or of its BatchNorm alone,
    renumbered from the start of that part (``body.2.weight`` of a bnrelu-conv is the conv's
    ``body.0.weight``), so that every norm choice of a layer uses the same conv weights."""
    head, index, rest = local.split(".", 2)
    i, k = int(index), int(cfg["norm_modules"])
    return (cfg["share_norm"], local) if i < k else (cfg["share_conv"], f"{head}.{i - k}.{rest}")


def _slots(space: SearchSpace, arch: Architecture, model: nn.Module, share_convs: bool = False) -> list[Slot]:
    """(module, parameter name, sharing slot, parameter path inside the block, start in the shared
    tensor) for every parameter."""
    blocks = sorted(space.blocks(arch), key=lambda b: -len(b.path))  # deepest paths first
    out = []
    for full, p in list(model.named_parameters()):
        block = next((b for b in blocks if full.startswith(b.path + ".")), None)
        if block is None or "share" not in block.config:
            raise HwnasError(f"{space.name}: parameter {full} belongs to no shareable block")
        owner_path, _, pname = full.rpartition(".")
        module = model.get_submodule(owner_path)
        start = _start(module, pname, p.ndim, int(block.config.get("share_shift", 0)))
        slot, local = block.config["share"], full[len(block.path) + 1:]
        if share_convs and "share_conv" in block.config:
            slot, local = _conv_apart(block.config, local)
        out.append((module, pname, slot, local, start))
    return out


def fair_paths(space: SearchSpace, rng: np.random.Generator) -> list[Architecture]:
    """FairNAS's strict fairness: max(cardinalities) paths in which every choice of every decision
    appears (each gene runs through a random permutation of its choices, repeated to length)."""
    card = space.cardinalities()
    width = max(card)
    columns = [np.concatenate([rng.permutation(n) for _ in range(-(-width // n))])[:width] for n in card]
    return [space.decode([int(c[k]) for c in columns]) for k in range(width)]


def check_share_convs(space: SearchSpace, share_convs: bool) -> None:
    if share_convs and not space.norm_choices:
        raise HwnasError(f"supernet: share_convs shares a dppnet layer's conv across its norm choices; "
                         f"{space.name} has no norm choices")


def checked_split(space: SearchSpace, split: str) -> str | None:
    """The decision to split the supernet on, None for "none"; a one-line error for what the space lacks."""
    if split == "none":
        return None
    if split not in supernet_splits(space):
        raise HwnasError(f"supernet: space {space.name} cannot be split on {split!r} "
                         f"(splits: {', '.join(('none',) + supernet_splits(space))})")
    return split


class Supernet(nn.Module):
    """Max-shaped shared tensors, keyed by (sharing slot, parameter path in the block).

    ``split`` (few-shot NAS, Zhao et al. 2021) names a decision of the space, such as mobilenet's
    width: each of its choices then gets a sub-supernet of its own, sharing nothing with the
    others, so the choices no longer compete for the same leading channels.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, split: str | None = None, share_convs: bool = False) -> None:
        super().__init__()
        if not space.weight_sharing:
            raise HwnasError(f"the supernet covers spaces that declare sharing slots (mobilenet and dppnet), "
                             f"not {space.name!r}")
        check_share_convs(space, share_convs)
        self.space, self.split, self.share_convs = space, checked_split(space, split or "none"), share_convs
        self.names: dict[tuple[str, str], str] = {}
        self.weights = nn.ParameterDict()
        roles: dict[tuple[str, str], tuple[str, str, bool]] = {}
        for i, arch in enumerate(supernet_templates(space)):
            model = init_weights(space.build_module(arch), seed + i)
            for module, pname, slot, local, start in self._slots(arch, model):
                p = getattr(module, pname).detach()
                key = (slot, local)
                # one tensor, one job: a depthwise kernel must not share with a dense one
                role = (type(module).__name__, pname, getattr(module, "groups", 1) > 1)
                if roles.setdefault(key, role) != role:
                    raise HwnasError(f"{space.name}: sharing slot {slot}/{local} holds both {roles[key]} and {role}")
                name = self.names.setdefault(key, f"w{len(self.names)}")
                need = tuple(a + b for a, b in zip(p.shape, start))
                have = tuple(self.weights[name].shape) if name in self.weights else None
                if have is None or any(a > b for a, b in zip(need, have)):
                    # grow to the elementwise max shape, keeping what is there
                    shape = tuple(max(a, b) for a, b in zip(need, have or need))
                    grown = torch.zeros(shape)
                    grown[_window(shape, tuple(p.shape), start)] = p
                    if have is not None:
                        grown[_window(shape, have)] = self.weights[name].detach()
                    self.weights[name] = nn.Parameter(grown)

    def _slots(self, arch: Architecture, model: nn.Module) -> list[Slot]:
        out = _slots(self.space, arch, model, self.share_convs)
        if self.split is None:
            return out
        group = supernet_group(self.space, arch, self.split)
        return [(module, pname, f"{group}/{slot}", local, start) for module, pname, slot, local, start in out]

    def subnet(self, arch: Architecture) -> nn.Module:
        """The space's model of ``arch`` whose parameters are views of the supernet's tensors."""
        model = self.space.build_module(arch)
        for module, pname, slot, local, start in self._slots(arch, model):
            name = self.names.get((slot, local))
            if name is None:
                raise HwnasError(f"supernet has no weights for {slot}/{local} (made for another space config?)")
            shared = self.weights[name]
            p = module._parameters[pname]
            if p.ndim != shared.ndim or any(a + b > c for a, b, c in zip(p.shape, start, shared.shape)):
                raise HwnasError(f"supernet slot {slot}/{local} is {tuple(shared.shape)}, the subnet needs {tuple(p.shape)}")
            del module._parameters[pname]
            # a view: gradients reach the supernet
            setattr(module, pname, shared[_window(tuple(shared.shape), tuple(p.shape), start)])
        return model

    def standalone(self, arch: Architecture) -> nn.Module:
        """A stand-alone copy of the subnet, with the supernet's current weights in parameters of
        its own (for evaluation and export: such a model can run channels-last)."""
        model = self.space.build_module(arch)
        with torch.no_grad():
            for module, pname, slot, local, start in self._slots(arch, model):
                p = getattr(module, pname)
                shared = self.weights[self.names[(slot, local)]]
                p.copy_(shared[_window(tuple(shared.shape), tuple(p.shape), start)])
        return model


