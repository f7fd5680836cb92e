"""The trained model: embedding tables outside the searched part in front of a subnet or the supernet."""

from __future__ import annotations

import hashlib
import math
from typing import Optional

import numpy as np
import torch
from torch import nn

from ..data.dataset import Dataset


class CTRModel(nn.Module):
    """Per-feature embedding tables (one table, offset per feature) in front of a subnet or supernet.

    With `seed`, the tables are drawn from their own generator, so every arch built with that seed starts
    from the same tables (common random numbers): on short proxy budgets the tables' draw moves NE more
    than the architecture does, and sharing it keeps that out of the comparison between archs.

    Each table's out-of-vocabulary row (bucket 0) starts at zero: an id the training part never saw carries
    no information, and when training never reaches that row (ml-100k's users all occur often, yet 85% of
    its tail's rows are new users) a random draw would make every new id's prediction depend on the seed.

    `bags` gives (max_len, pooling) for each multi-valued feature, whose tables are the last of
    `vocab_sizes`: its ids fill the trailing max_len columns of `cats` (PAD past the last id), and their rows
    are pooled (mean or sum, over the ids present; an empty bag is a zero row) into one row of the
    embeddings, after the categoricals', as `nn.EmbeddingBag` pools."""

    def __init__(self, body: nn.Module, vocab_sizes, dim: int, seed: Optional[int] = None, bags=()):
        super().__init__()
        self.bags = tuple((int(n), str(pooling)) for n, pooling in bags)
        self.n_plain = len(vocab_sizes) - len(self.bags)
        self.embedding = nn.Embedding(int(sum(vocab_sizes)), dim)
        self.register_buffer("offsets", torch.tensor(np.cumsum([0] + list(vocab_sizes[:-1])), dtype=torch.int64))
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 1.0 / math.sqrt(dim), generator=generator)
            self.embedding.weight[self.offsets] = 0.0
        self.body = body

    def embed(self, cats: torch.Tensor) -> torch.Tensor:
        if not self.bags:
            return self.embedding(cats + self.offsets)
        rows = [self.embedding(cats[:, : self.n_plain] + self.offsets[: self.n_plain])]
        column = self.n_plain
        for k, (max_len, pooling) in enumerate(self.bags):
            ids = cats[:, column : column + max_len]
            column += max_len
            present = (ids >= 0).unsqueeze(-1)
            pooled = (self.embedding(ids.clamp(min=0) + self.offsets[self.n_plain + k]) * present).sum(1)
            if pooling == "mean":
                pooled = pooled / present.sum(1).clamp(min=1)
            rows.append(pooled.unsqueeze(1))
        return torch.cat(rows, 1)

    def forward(self, dense: torch.Tensor, cats: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.body(dense, self.embed(cats), **kwargs)


def build_model(space, arch, data: Dataset, seed: int = 0) -> CTRModel:
    body = space.subnet(arch)
    seed_modules(body, seed)
    torch.manual_seed(seed)
    return CTRModel(body, data.vocab_sizes, space.spec.embed.dim, seed=seed, bags=data.bag_layout)


def seed_modules(body: nn.Module, seed: int) -> None:
    """Draw each of the subnet's modules (one per block, adaptor, pair FC and the head, each named after
    what it computes) from a generator seeded by `seed` and the module's name, not from one stream in
    declaration order. The same arch then starts from the same weights in every space that holds it: the
    production model trained from its own space and as the baseline of the space grown from it, whose
    choices come in another order, are one model with one set of numbers."""
    for name, module in body.named_children():
        digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
        torch.manual_seed(int.from_bytes(digest[:8], "little") >> 1)
        for part in module.modules():
            if hasattr(part, "reset_parameters"):
                part.reset_parameters()
