"""The built-in default data: seeded CTR examples whose labels come from a hidden model with planted
pairwise and higher-order feature interactions, so that architecture choices change NE."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import Dataset

VOCAB = 200
HIDDEN = 4


@dataclass
class HiddenModel:
    """The label model: first-order effects, planted pairwise dot products, triples and dense×categorical crosses."""

    bias: float
    first: np.ndarray  # N × V
    emb: np.ndarray  # N × V × H
    w_dense: np.ndarray  # S
    pairs: list
    triples: list
    cross: list

    def logit(self, dense: np.ndarray, cats: np.ndarray) -> np.ndarray:
        n_cat = cats.shape[1]
        centred = dense - 1.5
        e = self.emb[np.arange(n_cat)[None, :], cats]
        out = self.bias + centred @ self.w_dense + self.first[np.arange(n_cat)[None, :], cats].sum(1)
        out = out + sum((e[:, f] * e[:, g]).sum(1) for f, g in self.pairs) * (2.0 / np.sqrt(len(self.pairs)))
        for f, g, h in self.triples:
            out = out + (e[:, f] * e[:, g] * e[:, h]).sum(1) * 0.5
        for k, f in self.cross:
            out = out + centred[:, k] * e[:, f, 0]
        return out


class SyntheticSource:
    def __init__(self, seed: int = 0):
        self.seed = seed
        self.name = f"synthetic:{seed}"

    def hidden_model(self, n_dense: int, n_cat: int) -> HiddenModel:
        world = np.random.default_rng([self.seed, n_dense, n_cat])
        n_pairs = max(1, min(n_cat, n_cat * (n_cat - 1) // 2))
        pairs = [tuple(world.choice(n_cat, 2, replace=False)) for _ in range(n_pairs)] if n_cat > 1 else [(0, 0)]
        triples = [tuple(world.choice(n_cat, 3, replace=False)) for _ in range(max(1, n_cat // 6))] if n_cat > 2 else []
        cross = [(int(world.integers(n_dense)), int(world.integers(n_cat))) for _ in range(max(1, n_dense // 3))]
        return HiddenModel(
            -1.2,
            world.normal(0, 0.8, (n_cat, VOCAB)),
            world.normal(0, 1, (n_cat, VOCAB, HIDDEN)),
            world.normal(0, 0.3, n_dense),
            pairs,
            triples,
            cross,
        )

    @staticmethod
    def bytes_needed(n_dense: int, n_cat: int, n: int) -> int:
        """Peak memory of `dataset` for n examples: the int64 ids and their gathered float64 embeddings
        dominate."""
        return n * (8 * n_cat * (HIDDEN + 4) + 20 * n_dense + 32)

    def make(self, space, n_train: int, n_eval: int) -> Dataset:
        """The data for `space`'s input shapes."""
        return self.dataset(space.spec.dense.width, space.spec.embed.count, n_train, n_eval)

    def features(self, n_dense: int, n_cat: int, n: int, rng: np.random.Generator):
        """(dense, cats): Zipf-distributed ids (0-based) and log-normal dense values."""
        zipf = 1.0 / np.arange(1, VOCAB + 1) ** 1.05
        zipf /= zipf.sum()
        cats = np.stack([rng.choice(VOCAB, n, p=zipf) for _ in range(n_cat)], 1)
        dense = np.log1p(rng.lognormal(1.0, 1.0, (n, n_dense))).astype(np.float32)
        return dense, cats

    def dataset(self, n_dense: int, n_cat: int, n_train: int, n_eval: int) -> Dataset:
        """n_train + n_eval examples; the hidden model depends only on the seed and the shapes."""
        model = self.hidden_model(n_dense, n_cat)
        n = n_train + n_eval
        rng = np.random.default_rng([self.seed, n_dense, n_cat, 1])
        dense, cats = self.features(n_dense, n_cat, n, rng)
        labels = (rng.random(n) < 1 / (1 + np.exp(-model.logit(dense, cats)))).astype(np.float32)
        return Dataset(self.name, dense, cats.astype(np.int64) + 1, labels, [VOCAB + 1] * n_cat, n_train)
