"""Regularised (aging) evolution's proposer (Real et al., 2019, "Regularized Evolution for Image Classifier
Architecture Search"): after a random first round, each child is a one-decision mutation of the best of a
random tournament drawn from the population, the most recently evaluated candidates. Ageing out the old
rather than the worst keeps a lucky proxy score from ruling the search: an arch survives only as long as its
children keep scoring well. numpy only: `search/methods/evolution.py` reads its defaults without torch."""

from __future__ import annotations

import numpy as np

from ..constraints import valid_mask
from .loop import Proposer

POPULATION, TOURNAMENT = 10, 3
MUTATION_TRIES = 50  # draws per child before the round is left to the random fill


class EvolutionProposer(Proposer):
    def __init__(self, population: int = POPULATION, tournament: int = TOURNAMENT):
        self.population, self.tournament = population, tournament

    def propose(self, search, n: int, done: list, exclude: set, rng: np.random.Generator) -> list:
        space = search.space
        alive = sorted(done, key=lambda t: t.number)[-self.population :]  # the youngest survive
        sizes = np.array([d.size for d in space.decisions])
        mutable = np.flatnonzero(sizes > 1)
        out = []
        if not len(mutable):
            return out
        for _ in range(n):
            contestants = rng.choice(len(alive), size=min(self.tournament, len(alive)), replace=False)
            parent = min((alive[i] for i in contestants), key=lambda t: (t.value, t.number))
            for _ in range(MUTATION_TRIES):
                child = np.array(parent.user_attrs["vector"])
                i = int(rng.choice(mutable))
                child[i] = (child[i] + 1 + int(rng.integers(sizes[i] - 1))) % sizes[i]  # another option of i
                if not valid_mask(space, child[None])[0]:
                    continue
                arch = space.decode(child.tolist())
                key = space.subnet_key(arch)
                if key in exclude or not search.objective.allowed(np.array([space.flops(arch)]))[0]:
                    continue
                exclude.add(key)
                out.append(arch)
                break
        return out
