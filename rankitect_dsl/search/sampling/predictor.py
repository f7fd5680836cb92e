"""The neural predictor (paper 3.2.1): an ensemble of MLPs from the flat arch encoding, plus size
features from the cost model, to proxy NE."""

from __future__ import annotations

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


class Predictor:
    """An ensemble of small MLPs from arch encodings to proxy NE, refitted from scratch on every evaluated
    arch. Inputs: the one-hot decisions that shape the subnet plus log FLOPs and log params from the cost
    model (NE tracks model size). `predict` is optimistic by `explore` ensemble standard deviations, so
    uncertain regions get tried."""

    def __init__(
        self, space, hidden: int = 64, epochs: int = 300, seed: int = 0, members: int = 5, explore: float = 0.5
    ):
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
            net = nn.Sequential(
                nn.Linear(x.shape[1], self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, self.hidden),
                nn.ReLU(),
                nn.Linear(self.hidden, 1),
            )
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
