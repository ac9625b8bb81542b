"""``rl``: a MONAS-style controller (Hsu et al., 2018) trained with REINFORCE.

An LSTM emits one token per gene (its choice among the gene's options); the architecture is
the decoded gene vector. After each batch the policy takes a REINFORCE step with a moving-average
baseline. The reward combines accuracy and a cost (latency, or the first cheap objective):

* ``monas``: ``alpha * acc - (1 - alpha) * cost / T`` (MONAS's weighted mix);
* ``mnas-soft``: ``acc * (cost / T) ** w``, ``w = -0.07`` on both sides of T (MnasNet, soft);
* ``mnas-hard``: ``w = 0`` below T, ``w = -1`` above (MnasNet, hard).

How it works, and why: ``docs/design.md`` (hwnas.optimize.strategies.rl).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hwnas.evaluation.sources import Evaluation
from hwnas.optimize.objectives import ObjectiveSet, is_feasible
from hwnas.optimize.strategies.base import Strategy
from hwnas.spaces.base import Architecture, SearchSpace

REWARDS = ("monas", "mnas-soft", "mnas-hard")


class _Policy(nn.Module):
    def __init__(self, cardinalities: Sequence[int], hidden: int) -> None:
        super().__init__()
        self.card = list(cardinalities)
        self.embed = nn.Embedding(sum(self.card) + 1, hidden)  # tokens of every gene + a start token
        self.offsets = np.concatenate([[0], np.cumsum(self.card)[:-1]]) + 1
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in self.card)
        self.hidden = hidden

    def forward(self, batch: int, generator: torch.Generator, actions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score given ``actions``): returns actions, log-probabilities, entropies."""
        h = torch.zeros(batch, self.hidden)
        c = torch.zeros(batch, self.hidden)
        token = torch.zeros(batch, dtype=torch.long)
        out, logps, ents = [], [], []
        for i, head in enumerate(self.heads):
            h, c = self.cell(self.embed(token), (h, c))
            logits = head(h)
            probs = torch.softmax(logits, -1)
            a = torch.multinomial(probs, 1, generator=generator).squeeze(1) if actions is None else actions[:, i]
            logp = torch.log_softmax(logits, -1)
            logps.append(logp.gather(1, a[:, None]).squeeze(1))
            ents.append(-(probs * logp).sum(-1))
            out.append(a)
            token = a + int(self.offsets[i])
        return torch.stack(out, 1), torch.stack(logps, 1).sum(1), torch.stack(ents, 1).sum(1)


@dataclass(frozen=True)
class RLOptions:
    reward: str = "mnas-soft"
    batch: int = 8  # architectures per policy update
    hidden: int = 64  # LSTM width
    lr: float = 0.01
    alpha: float = 0.8  # MONAS: weight of accuracy against cost
    baseline_decay: float = 0.9
    entropy: float = 1e-2  # entropy bonus
    cost_metric: str | None = None  # default: the cheap objective with an upper budget


class RLController(Strategy):
    name = "rl"
    description = "MONAS-style LSTM controller with REINFORCE (monas, mnas-soft, mnas-hard rewards)"
    Options = RLOptions
    option_bounds = {"alpha": (0.0, 1.0), "baseline_decay": (0.0, 1.0), "entropy": (0.0, 10.0), "batch": (1, 100_000),
                     "hidden": (1, 4096)}
    option_choices = {"reward": REWARDS}

    def __init__(self, space: SearchSpace, objectives: ObjectiveSet, rng: np.random.Generator,
                 options: RLOptions | None = None) -> None:
        super().__init__(space, objectives, rng, options)
        o = self.options
        reward, batch, hidden, lr, cost_metric = o.reward, o.batch, o.hidden, o.lr, o.cost_metric
        self.reward, self.batch, self.alpha = reward, batch, o.alpha
        self.decay, self.entropy = o.baseline_decay, o.entropy
        cheap = [o.name for o in objectives.objectives if o.cheap]
        self.acc_metric = next((o.name for o in objectives.objectives if not o.cheap and o.direction == "max"),
                               objectives.objectives[0].name)
        # the cost the reward trades accuracy against: the cheap objective with an upper budget
        # (MnasNet's target T), else the first cheap objective
        bounded = [c.name for c in objectives.constraints if c.name in cheap and c.op in ("<=", "<")]
        self.cost_metric = cost_metric or (bounded[0] if bounded else cheap[0] if cheap else None)
        budget = next((c for c in objectives.constraints if c.name == self.cost_metric and c.op in ("<=", "<")), None)
        self.target = budget.bound if budget else None
        self.torch_gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        with torch.random.fork_rng(devices=[]):  # parameter init without touching global state
            torch.manual_seed(int(rng.integers(2**63 - 1)))
            self.policy = _Policy(space.cardinalities(), hidden)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.baseline: float | None = None
        self.reward_var = 1.0
        self._actions: torch.Tensor | None = None
        self.steps = 0
        self.seen: set[str] = set()

    def ask(self) -> list[Architecture]:
        # Sample the batch from the policy, redrawing architectures it already proposed (up to a
        # bound): a collapsing policy would otherwise spend the run re-proposing what is known.
        keep: list[torch.Tensor] = []
        archs: list[Architecture] = []
        with torch.no_grad():
            for _ in range(20):
                actions, _, _ = self.policy(self.batch, self.torch_gen)
                for a in actions:
                    arch = self.space.decode(a.numpy())
                    if arch.id not in self.seen and len(keep) < self.batch:
                        self.seen.add(arch.id)
                        keep.append(a)
                        archs.append(arch)
                if len(keep) == self.batch:
                    break
            if not keep:
                keep, archs = list(actions), [self.space.decode(a.numpy()) for a in actions]
        self._actions = torch.stack(keep)
        return archs

    def rewards(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        acc = np.array([e.metrics.get(self.acc_metric, np.nan) if e.ok else np.nan for e in evaluations], dtype=float)
        acc = np.where(np.nanmax(np.append(acc, 0)) > 1.0, acc / 100.0, acc)  # percent -> fraction
        if self.cost_metric is None:
            r = acc
        else:
            cost = np.array([e.metrics.get(self.cost_metric, np.nan) for e in evaluations], dtype=float)
            if self.target is None:
                finite = cost[np.isfinite(cost)]
                self.target = float(np.median(finite)) if len(finite) else 1.0
            ratio = cost / self.target
            if self.reward == "monas":
                r = self.alpha * acc - (1 - self.alpha) * ratio
            elif self.reward == "mnas-soft":
                r = acc * ratio ** -0.07
            else:
                r = acc * np.where(ratio <= 1, 1.0, ratio ** -1.0)
        ok = np.array([is_feasible(e) for e in evaluations])
        return np.where(ok & np.isfinite(r), r, 0.0)

    def tell(self, evaluations: Sequence[Evaluation]) -> None:
        assert self._actions is not None
        r = self.rewards(evaluations)
        mean = float(r.mean())
        if self.baseline is None:
            self.baseline, self.reward_var = mean, float(r.var()) + 1e-8
        else:
            self.baseline = self.decay * self.baseline + (1 - self.decay) * mean
            self.reward_var = self.decay * self.reward_var + (1 - self.decay) * float(((r - self.baseline) ** 2).mean())
        # the moving-average baseline, scaled by a moving std: accuracies differ by fractions of a point
        advantage = torch.as_tensor((r - self.baseline) / np.sqrt(self.reward_var + 1e-8), dtype=torch.float32)
        _, logp, ent = self.policy(len(r), self.torch_gen, actions=self._actions)
        loss = -(advantage * logp).mean() - self.entropy * ent.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        self._actions = None

    def state(self) -> dict[str, Any]:
        return {"policy_steps": self.steps, "baseline": self.baseline}
