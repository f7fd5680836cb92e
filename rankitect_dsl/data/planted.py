"""`planted[:SEED]`: synthetic data whose labels come from a planted teacher — the space's own subnet for
an arch a seeded walk of `WALK` one-decision moves away from the production model, each within the
baseline's FLOPs — so a model of the space other than the production one made the labels (a benchmark of
search power: `benchmarks/bench_planted.py`). The features are `synthetic`'s; the teacher's weights are its
seeded initialisation (its embeddings drawn like the model's), its logits scaled to a spread of `SPREAD`
around a 25% click rate. Whether the teacher's arch, trained on the rows, beats the baseline trained on them
is what the benchmark measures, not assumed."""

from __future__ import annotations

import numpy as np

from ..core.errors import ArchError
from .dataset import Dataset
from .synthetic import VOCAB, SyntheticSource

WALK = 4  # moves from the baseline to the teacher
SPREAD = 2.0  # standard deviation of the teacher's logits
BIAS = -1.1  # their mean: about a 25% click rate


class PlantedSource(SyntheticSource):
    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.name = f"planted:{seed}"

    def teacher(self, space):
        """The planted arch: `WALK` seeded moves from the baseline — one decision each, to a valid arch with
        another subnet within the baseline's FLOPs (a sample of the space when it names no baseline)."""
        if space.baseline is None or not space.has_encoding(space.baseline):
            return space.sample(self.seed)
        rng = np.random.default_rng([self.seed, 7])
        cap = space.flops(space.baseline)
        vector, seen = space.encode(space.baseline), {space.subnet_key(space.baseline)}
        sizes = [d.size for d in space.decisions]
        moves = 0
        for _ in range(1000):
            if moves == WALK:
                break
            i = int(rng.integers(len(sizes)))
            if sizes[i] < 2:
                continue
            step = list(vector)
            step[i] = (step[i] + 1 + int(rng.integers(sizes[i] - 1))) % sizes[i]
            try:
                arch = space.decode(step)
            except ArchError:  # every input of a choice off
                continue
            key = space.subnet_key(arch)
            if key not in seen and space.flops(arch) <= cap:
                vector, moves = step, moves + 1
                seen.add(key)
        return space.decode(vector)

    def make(self, space, n_train: int, n_eval: int) -> Dataset:
        import torch

        n_dense, (n_cat, dim) = space.spec.dense.width, (space.spec.embed.count, space.spec.embed.dim)
        n = n_train + n_eval
        rng = np.random.default_rng([self.seed, n_dense, n_cat, 2])
        dense, cats = self.features(n_dense, n_cat, n, rng)
        table = rng.normal(0.0, 1.0 / np.sqrt(dim), (n_cat, VOCAB, dim)).astype(np.float32)
        torch.manual_seed(10_000 + self.seed)
        body = space.subnet(self.teacher(space)).eval()
        with torch.no_grad():
            logits = np.concatenate(
                [
                    body(
                        torch.from_numpy(dense[i : i + 4096]),
                        torch.from_numpy(table[np.arange(n_cat)[None, :], cats[i : i + 4096]]),
                    )
                    .reshape(-1)
                    .double()
                    .numpy()
                    for i in range(0, n, 4096)
                ]
            )
        logits = BIAS + SPREAD * (logits - logits.mean()) / max(logits.std(), 1e-12)
        self.truth = 1 / (1 + np.exp(-logits))  # the click probabilities: their NE is the floor of any model
        labels = (rng.random(n) < self.truth).astype(np.float32)
        return Dataset(self.name, dense, cats.astype(np.int64) + 1, labels, [VOCAB + 1] * n_cat, n_train)
