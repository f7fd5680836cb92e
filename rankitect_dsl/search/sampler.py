"""The RL sampler that proposes the next round's candidates: REINFORCE over the space's categorical
decisions, scored by the predictor and the FLOPs constraint (in place of the paper's random sampler)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .constraints import FlopsObjective, valid_mask
from .predictor import Predictor


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


def gumbel_noise(k: int, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """k draws of standard Gumbel noise shaped like `logits`: what Gumbel-max (the samplers, the RL policy)
    and Gumbel-softmax (DNAS) add to the logits."""
    return -torch.log(-torch.log(torch.rand((k, *logits.shape), generator=generator).clamp_min(1e-12)))


def draw(logits: torch.Tensor, k: int, generator: torch.Generator, temperature: float = 1.0) -> np.ndarray:
    """k flat vectors from independent categoricals, all decisions at once (Gumbel-max)."""
    return (logits / temperature + gumbel_noise(k, logits, generator)).argmax(-1).numpy()


def rl_propose(
    space,
    predictor: Predictor,
    objective: FlopsObjective,
    exclude: set,
    n: int,
    rng: np.random.Generator,
    steps: int = 60,
    batch: int = 64,
    lr: float = 0.05,
    pool: int = 20,
    incumbent=None,
    mutations: float = 2.0,
) -> list:
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
        s = predictor.predict(vectors, cost=cost) + objective.penalty(flops)
        bad = ~valid_mask(space, vectors) | ~objective.allowed(flops)
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
