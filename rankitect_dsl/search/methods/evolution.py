"""`rks search --method evolution`: regularised (aging) evolution, its proposer in
`search/sampling/evolution.py` (mutations of tournament winners among the `--population` most recent
candidates).

It is the worked example of adding a searcher (docs/architecture.md): the proposer, this plug-in and one
line in `registry.SEARCHERS`; the loop, proxies, study store, final selection and report are the sampling
searches' own."""

from __future__ import annotations

from ...core.errors import RksError
from ..flags import positive
from ..sampling.evolution import POPULATION, TOURNAMENT
from .sampling import SamplingSearcher


class EvolutionSearcher(SamplingSearcher):
    name = "evolution"
    help = "regularised evolution: mutations of tournament winners among the most recent candidates"

    @staticmethod
    def add_arguments(g) -> None:
        SamplingSearcher.add_arguments(g)
        g.add_argument(
            "--population",
            type=positive(int),
            default=POPULATION,
            help=f"the most recent candidates that parents are drawn from (default {POPULATION})",
        )
        g.add_argument(
            "--tournament",
            type=positive(int),
            default=TOURNAMENT,
            help=f"candidates drawn from the population per child; the best is the parent (default {TOURNAMENT})",
        )

    def validate(self, space) -> None:
        super().validate(space)
        if self.args.tournament > self.args.population:
            raise RksError(
                f"--tournament {self.args.tournament} draws more candidates than --population "
                f"{self.args.population} holds"
            )

    def proposer(self):
        from ..sampling.evolution import EvolutionProposer

        return EvolutionProposer(self.args.population, self.args.tournament)
