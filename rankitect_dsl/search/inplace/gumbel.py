"""Gumbel draws over the space's decisions, shared by every method that samples archs from logits: the
predictor's RL sampler and one-shot's policy (Gumbel-max), DNAS (Gumbel-softmax), and the logits centred on
an incumbent that they all start from."""

from __future__ import annotations

import math

import numpy as np
import torch


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
