"""The neural predictor (an MLP on the flat arch encoding) and the RL sampler that proposes candidates
for the next round (REINFORCE over the space's categorical decisions, scored by the predictor and the
FLOPs constraint) — paper 3.2.1, with the RL sampler in place of the original random one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn


def one_hot(space, vectors: np.ndarray) -> torch.Tensor:
    vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, len(space.decisions))
    cols = [np.eye(d.size, dtype=np.float32)[vectors[:, i]] for i, d in enumerate(space.decisions)]
    return torch.from_numpy(np.concatenate(cols, 1)) if cols else torch.zeros(len(vectors), 0)


def valid_mask(space, vectors: np.ndarray) -> np.ndarray:
    """Rows whose multi-hot connections leave at least one input on wherever a multi-hot block is chosen."""
    vectors = np.asarray(vectors).reshape(-1, len(space.decisions))
    ok = np.ones(len(vectors), dtype=bool)
    groups: dict = {}
    block_col = {}
    for i, d in enumerate(space.decisions):
        if d.kind == "input":
            groups.setdefault(d.choice, []).append(i)
        elif d.kind == "block":
            block_col[d.choice] = i
    for choice, cols in groups.items():
        c = space.spec.choice_by_name[choice]
        any_on = vectors[:, cols].sum(1) > 0
        if choice in block_col:
            multi = np.isin(vectors[:, block_col[choice]], [k for k, b in enumerate(c.blocks) if b in ("linear", "embed_fc", "dot_compressed")])
        else:
            multi = np.ones(len(vectors), dtype=bool)
        ok &= any_on | ~multi
    return ok


class Predictor:
    """MLP regressor from one-hot arch encodings to proxy NE, refitted from scratch on every evaluated arch."""

    def __init__(self, space, hidden: int = 64, epochs: int = 300, seed: int = 0):
        self.space, self.hidden, self.epochs, self.seed = space, hidden, epochs, seed
        self.net: Optional[nn.Module] = None

    def fit(self, vectors, values) -> "Predictor":
        torch.manual_seed(self.seed)
        x = one_hot(self.space, vectors)
        y = torch.tensor(values, dtype=torch.float32)
        self.mean, self.std = y.mean(), y.std().clamp_min(1e-6) if len(y) > 1 else torch.tensor(1.0)
        y = (y - self.mean) / self.std
        self.net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden), nn.ReLU(),
                                 nn.Linear(self.hidden, 1))
        opt = torch.optim.Adam(self.net.parameters(), lr=3e-3, weight_decay=1e-4)
        for _ in range(self.epochs):
            loss = ((self.net(x).squeeze(-1) - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return self

    @torch.no_grad()
    def predict(self, vectors) -> np.ndarray:
        return (self.net(one_hot(self.space, vectors)).squeeze(-1) * self.std + self.mean).numpy()


@dataclass
class FlopsRule:
    """The FLOPs constraint: a hard cap and/or an L1 penalty around a target (paper eq. 7)."""

    cap: Optional[float] = None
    target: Optional[float] = None
    weight: float = 0.05

    def penalty(self, flops: np.ndarray) -> np.ndarray:
        out = np.zeros(len(flops))
        if self.target:
            out += self.weight * np.abs(flops / self.target - 1.0)
        return out

    def allowed(self, flops: np.ndarray) -> np.ndarray:
        return flops <= self.cap if self.cap else np.ones(len(flops), dtype=bool)


def rl_propose(space, predictor: Predictor, rule: FlopsRule, exclude: set, n: int, rng: np.random.Generator,
               steps: int = 150, batch: int = 64, pool: int = 20) -> list:
    """Train a policy (independent categoricals) with REINFORCE to minimise predicted NE + FLOPs penalty,
    then return the n best-predicted distinct new candidates it samples."""
    torch.manual_seed(int(rng.integers(1 << 31)))
    logits = [torch.zeros(d.size, requires_grad=True) for d in space.decisions]
    opt = torch.optim.Adam(logits, lr=0.1)

    def draw(k):
        cols = [torch.distributions.Categorical(logits=l).sample((k,)) for l in logits]
        return torch.stack(cols, 1).numpy() if cols else np.zeros((k, 0), dtype=np.int64)

    def score(vectors):
        flops = space.flops_many(vectors).astype(np.float64)
        s = predictor.predict(vectors) + rule.penalty(flops)
        bad = ~valid_mask(space, vectors) | ~rule.allowed(flops)
        s[bad] = np.inf
        return s

    for _ in range(steps if space.decisions else 0):
        vectors = draw(batch)
        s = score(vectors)
        finite = np.isfinite(s)
        worst = s[finite].max() + 1.0 if finite.any() else 1.0
        reward = -np.where(finite, s, worst)
        advantage = torch.tensor(reward - reward.mean(), dtype=torch.float32)
        logp = sum(torch.log_softmax(l, 0)[torch.from_numpy(vectors[:, i])] for i, l in enumerate(logits))
        loss = -(advantage * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    vectors = np.unique(draw(pool * n), axis=0)
    s = score(vectors)
    out = []
    for i in np.argsort(s, kind="stable"):
        if not np.isfinite(s[i]):
            break
        arch = space.decode(vectors[i].tolist())
        key = arch.to_json()
        if key not in exclude:
            exclude.add(key)
            out.append(arch)
        if len(out) == n:
            break
    return out
