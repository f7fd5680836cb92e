"""The predictor search's proposer (paper 3.2.1): each round fits the predictor ensemble to every window NE,
then REINFORCE over the space's decisions, scored by the predictor and the FLOPs constraint (in place of the
paper's random sampler), proposes the next candidates near the best archs so far."""

from __future__ import annotations

import numpy as np
import torch

from ..constraints import FlopsObjective, valid_mask
from ..inplace.gumbel import centred_logits, draw
from .loop import Proposer
from .predictor import Predictor


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


def centre_shares(n: int, evaluated: int, centres: int = 3) -> list[int]:
    """How many of a round's n proposals the RL sampler centres on the best, second, third … arch so far:
    half on the best, the rest spread over the runners-up. One centre's neighbourhood alone soon
    returns the same model with new initial weights; several keep the round's proposals diverse."""
    k = max(1, min(centres, n, evaluated))
    if k == 1:
        return [n]
    first = n - n // 2
    rest = [(n // 2) // (k - 1) + (i < (n // 2) % (k - 1)) for i in range(k - 1)]
    return [first] + [share for share in rest if share]


class PredictorProposer(Proposer):
    def propose(self, search, n: int, done: list, exclude: set, rng: np.random.Generator) -> list:
        vectors = np.array([t.user_attrs["vector"] for t in done])
        values = np.array([t.value for t in done])  # window NE + FLOPs penalty: what ranks the incumbents
        # The predictor learns window NE alone; the sampler adds the exact penalty from the cost model once.
        window_ne = np.array([t.user_attrs["window_ne"] for t in done])
        predictor = Predictor(search.space, seed=int(rng.integers(1 << 30))).fit(vectors, window_ne)
        out = []
        for incumbent, share in zip(vectors[np.argsort(values, kind="stable")], centre_shares(n, len(values))):
            out += rl_propose(search.space, predictor, search.objective, exclude, share, rng, incumbent=incumbent)
        return out
