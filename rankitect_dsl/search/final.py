"""The search's final word: after selection is over, retrain the winner and the baseline from scratch on
the whole training part with several seeds and score them on the evaluation tail. The tail is read here
and nowhere before, so the quoted NE is a held-out measurement of a choice made without it."""

from __future__ import annotations

import statistics
from typing import Optional

from ..data.dataset import Dataset
from ..runtime.model import build_model
from ..runtime.trainer import TrainConfig, train


def retrain(space, arch, data: Dataset, seeds, batch_size: Optional[int] = None, lr: float = 1e-3) -> dict:
    """Eval NE and AUC of `arch` trained one pass over the training part, per seed and their mean: `rks
    train`'s training (the body's rate decaying over the pass), not the proxies' constant rate."""
    runs = [
        train(
            build_model(space, arch, data, seed),
            data,
            TrainConfig(data.n_train, batch_size, lr, seed, False, "retrain"),
        )
        for seed in seeds
    ]
    nes = [r.eval_ne for r in runs]
    return {
        "eval_ne": statistics.mean(nes),
        "eval_ne_seeds": nes,
        "auc": statistics.mean(r.auc for r in runs),
        "examples": data.n_train,
        "seeds": list(seeds),
    }


def final_scores(
    space, winner, data: Dataset, seeds, batch_size: Optional[int] = None, lr: float = 1e-3, baseline=None
) -> dict:
    """The winner's and the baseline's retrained scores; the baseline is the space's unless one is given."""
    baseline = baseline or space.baseline
    out = {"winner": retrain(space, winner, data, seeds, batch_size, lr)}
    if baseline is not None:
        out["baseline"] = retrain(space, baseline, data, seeds, batch_size, lr)
    return out
