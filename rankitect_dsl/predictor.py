"""The neural predictor (an MLP on the flat arch encoding) and the RL sampler that proposes candidates
for the next round (REINFORCE over the space's categorical decisions, scored by the predictor and the
FLOPs constraint) — paper 3.2.1, with the RL sampler in place of the original random one."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import nn


def one_hot(space, vectors: np.ndarray, relevant: Optional[np.ndarray] = None) -> torch.Tensor:
    """One-hot per decision; with `relevant`, decisions that do not shape the subnet are all-zero, so
    archs with the same subnet get the same features."""
    vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, len(space.decisions))
    cols = [np.eye(d.size, dtype=np.float32)[vectors[:, i]] for i, d in enumerate(space.decisions)]
    if relevant is not None:
        cols = [col * relevant[:, i : i + 1] for i, col in enumerate(cols)]
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
    """An ensemble of small MLPs from arch encodings to proxy NE, refitted from scratch on every evaluated
    arch. Inputs: the one-hot decisions that shape the subnet plus log FLOPs and log params from the cost
    model (NE tracks model size). `predict` is optimistic by `explore` ensemble standard deviations, so
    uncertain regions get tried."""

    def __init__(self, space, hidden: int = 64, epochs: int = 300, seed: int = 0, members: int = 5, explore: float = 0.5):
        self.space, self.hidden, self.epochs, self.seed = space, hidden, epochs, seed
        self.members, self.explore = members, explore
        self.nets: list = []

    def features(self, vectors, cost=None) -> torch.Tensor:
        """`cost`: the (flops, params) arrays of `vectors` when the caller already has them."""
        vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, len(self.space.decisions))
        flops, params = cost if cost is not None else self.space.cost.evaluate_many(vectors)
        size = torch.tensor(np.stack([np.log1p(flops), np.log1p(params)], 1), dtype=torch.float32)
        codes = one_hot(self.space, vectors, self.space.relevance(vectors))
        return torch.cat([codes, (size - self.size_mean) / self.size_std], 1)

    def fit(self, vectors, values) -> "Predictor":
        vectors = np.asarray(vectors, dtype=np.int64).reshape(-1, len(self.space.decisions))
        flops, params = self.space.cost.evaluate_many(vectors)
        size = torch.tensor(np.stack([np.log1p(flops), np.log1p(params)], 1), dtype=torch.float32)
        self.size_mean, self.size_std = size.mean(0), size.std(0).clamp_min(1e-6) if len(size) > 1 else torch.ones(2)
        x = self.features(vectors, (flops, params))
        y = torch.tensor(values, dtype=torch.float32)
        self.mean = y.mean()
        self.std = y.std().clamp_min(1e-6) if len(y) > 1 else torch.tensor(1.0)
        y = (y - self.mean) / self.std
        gen = torch.Generator().manual_seed(self.seed)
        self.nets = []
        for m in range(self.members):
            torch.manual_seed(self.seed + m)
            rows = torch.randint(len(y), (len(y),), generator=gen) if self.members > 1 else torch.arange(len(y))
            net = nn.Sequential(nn.Linear(x.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden), nn.ReLU(),
                                nn.Linear(self.hidden, 1))
            opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
            for _ in range(self.epochs):
                loss = ((net(x[rows]).squeeze(-1) - y[rows]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            self.nets.append(net)
        return self

    @torch.no_grad()
    def predict(self, vectors, optimistic: bool = True, cost=None) -> np.ndarray:
        x = self.features(vectors, cost)
        preds = torch.stack([net(x).squeeze(-1) for net in self.nets])
        value = preds.mean(0) - (self.explore * preds.std(0) if optimistic and len(self.nets) > 1 else 0)
        return (value * self.std + self.mean).numpy()


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


def centred_logits(space, incumbent, mutations: float) -> torch.Tensor:
    """Policy logits (decisions × most options, padding at -inf) centred on the incumbent: each decision
    that shapes its subnet keeps the incumbent's value except with probability mutations / (number of
    such decisions), so a sample changes about `mutations` of them; the others (unused connections, dims
    of unchosen blocks, unreached choices) follow the space's sampler, which is what they are drawn from
    when a change brings them into play. Without an incumbent: uniform over each decision's options."""
    sizes = [d.size for d in space.decisions]
    out = torch.full((len(sizes), max(sizes, default=1)), -math.inf)
    relevant = space.relevance([incumbent])[0] if incumbent is not None else None
    q = min(0.5, mutations / max(1, int(relevant.sum()))) if relevant is not None else 0.0
    for i, (size, probs) in enumerate(zip(sizes, space.sampler_probs())):
        if relevant is None:
            out[i, :size] = 0.0
        elif relevant[i]:
            out[i, :size] = math.log(q / (size - 1))
            out[i, int(incumbent[i])] = math.log(1 - q)
        else:
            out[i, :size] = probs.float().clamp_min(1e-6).log()
    return out


def draw(logits: torch.Tensor, k: int, generator: torch.Generator, temperature: float = 1.0) -> np.ndarray:
    """k flat vectors from independent categoricals, all decisions at once (Gumbel-max)."""
    noise = -torch.log(-torch.log(torch.rand((k, *logits.shape), generator=generator).clamp_min(1e-12)))
    return (logits / temperature + noise).argmax(-1).numpy()


def rl_propose(space, predictor: Predictor, rule: FlopsRule, exclude: set, n: int, rng: np.random.Generator,
               steps: int = 60, batch: int = 64, lr: float = 0.05, pool: int = 20, incumbent=None,
               mutations: float = 2.0) -> list:
    """Train a policy (independent categoricals) with REINFORCE to minimise predicted NE + FLOPs penalty,
    then return the n best-predicted new subnets it samples (`exclude`: subnet keys already taken).
    The policy starts centred on the incumbent (the best arch so far, when given) and the few steps at a
    small rate keep it near: the predictor is fitted on few archs and trusted only close to them, so
    the sampler learns which changes to the incumbent look promising rather than chasing the
    predictor's extrapolation across the space."""
    if not space.decisions:
        return []
    generator = torch.Generator().manual_seed(int(rng.integers(1 << 62)))
    logits = centred_logits(space, incumbent, mutations).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=lr)
    rows = torch.arange(len(space.decisions))

    def score(vectors):
        cost = space.cost.evaluate_many(vectors)
        flops = cost[0].astype(np.float64)
        s = predictor.predict(vectors, cost=cost) + rule.penalty(flops)
        bad = ~valid_mask(space, vectors) | ~rule.allowed(flops)
        s[bad] = np.inf
        return s

    for _ in range(steps):
        vectors = draw(logits.detach(), batch, generator)
        s = score(vectors)
        finite = np.isfinite(s)
        worst = s[finite].max() + 1.0 if finite.any() else 1.0
        reward = -np.where(finite, s, worst)
        advantage = torch.tensor(reward - reward.mean(), dtype=torch.float32)
        logp = torch.log_softmax(logits, -1)[rows, torch.from_numpy(vectors)].sum(1)
        loss = -(advantage * logp).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = []
    for temperature in (1.0, 2.0, 4.0, 8.0):  # a converged policy repeats itself: soften it to find n new subnets
        vectors = np.unique(draw(logits.detach(), pool * n, generator, temperature), axis=0)
        s = score(vectors)
        for i in np.argsort(s, kind="stable"):
            if not np.isfinite(s[i]) or len(out) == n:
                break
            arch = space.decode(vectors[i].tolist())
            key = space.subnet_key(arch)
            if key not in exclude:
                exclude.add(key)
                out.append(arch)
        if len(out) == n:
            break
    return out
