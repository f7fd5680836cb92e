"""The neural-predictor search (paper 3.2.1): after a random first round, each round fits the predictor
ensemble to every candidate's window NE and proposes with the RL sampler, centred on the best archs so far
(`search/sampling/rl_sampler.py`)."""

from __future__ import annotations

from .sampling import SamplingSearcher


class PredictorSearcher(SamplingSearcher):
    name = "predictor"
    help = "neural-predictor search: a random first round, then the predictor's RL sampler proposes"

    def proposer(self):
        from ..sampling.rl_sampler import PredictorProposer

        return PredictorProposer()
