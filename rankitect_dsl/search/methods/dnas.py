"""DNAS (paper 3.2.3): architecture logits trained jointly with the supernet (`search/inplace/dnas.py`)."""

from __future__ import annotations

from ...core.errors import RksError
from ..flags import positive
from .inplace import InPlaceSearcher


class DNASSearcher(InPlaceSearcher):
    name = "dnas"
    label = "DNAS"
    help = "DNAS: Gumbel-softmax arch logits trained jointly with the supernet (docs/dnas.md)"
    warmup_default = 0.1
    start_default = "incumbent"  # measured: better on the tail on all three shared sets' blocks spaces

    @classmethod
    def add_arguments(cls, g) -> None:
        super().add_arguments(g)
        g.add_argument(
            "--lambda",
            dest="lam",
            type=float,
            default=1.0,
            help="weight of E|FLOPs(a) - c| / c in the loss (default 1)",
        )
        g.add_argument(
            "--tau-start", type=positive(float), default=5.0, help="first Gumbel-softmax temperature (default 5)"
        )
        g.add_argument(
            "--tau-end", type=positive(float), default=0.1, help="last temperature, exponential decay (default 0.1)"
        )
        g.add_argument("--arch-lr", type=positive(float), default=0.1, help="Adam rate of the arch logits (0.1)")
        g.add_argument(
            "--checkpoint-activations", action="store_true", help="recompute each choice in backward: memory for time"
        )

    def config(self, target: float, warmup: float, common: dict):
        from ..inplace.dnas import DNASConfig

        a = self.args
        if a.lam < 0:
            raise RksError(f"--lambda must be >= 0, got {a.lam}")
        if a.tau_end > a.tau_start:
            raise RksError(
                f"the temperature must not increase: --tau-start {a.tau_start} is below --tau-end {a.tau_end}"
            )
        return DNASConfig(
            a.examples,
            target,
            lam=a.lam,
            tau_start=a.tau_start,
            tau_end=a.tau_end,
            arch_lr=a.arch_lr,
            warmup=warmup,
            checkpoint_activations=a.checkpoint_activations,
            **common,
        )

    def make_search(self, space, fit, baseline, cfg, checkpoint, log):
        from ..inplace.dnas import DNASSearch

        return DNASSearch(space, fit, baseline, cfg, checkpoint, log)

    def gap_fix(self, summary: dict) -> str:
        return "raise --lambda or --examples"

    def work_line(self, summary: dict) -> str:
        return f"DNAS: {summary['steps']:,} joint steps of the supernet and θ"
