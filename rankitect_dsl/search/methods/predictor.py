"""The neural-predictor search (paper 3.2.1): after a random first round, each round fits the predictor
ensemble to every candidate's window NE and proposes with the RL sampler, centred on the best archs so far."""

from __future__ import annotations

import numpy as np

from ..loop import Proposer
from .sampling import SamplingSearcher


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
        from ..predictor import Predictor
        from ..sampler import rl_propose

        vectors = np.array([t.user_attrs["vector"] for t in done])
        values = np.array([t.value for t in done])  # window NE + FLOPs penalty: what ranks the incumbents
        # The predictor learns window NE alone; the sampler adds the exact penalty from the cost model once.
        window_ne = np.array([t.user_attrs["window_ne"] for t in done])
        predictor = Predictor(search.space, seed=int(rng.integers(1 << 30))).fit(vectors, window_ne)
        out = []
        for incumbent, share in zip(vectors[np.argsort(values, kind="stable")], centre_shares(n, len(values))):
            out += rl_propose(search.space, predictor, search.objective, exclude, share, rng, incumbent=incumbent)
        return out


class PredictorSearcher(SamplingSearcher):
    name = "predictor"
    help = "neural-predictor search: a random first round, then the predictor's RL sampler proposes"

    def proposer(self):
        return PredictorProposer()
