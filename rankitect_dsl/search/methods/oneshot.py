"""One-shot search (paper 3.2.2): an RL policy trained in place with the supernet (`search/inplace/oneshot.py`)."""

from __future__ import annotations

from ...core.errors import RksError
from ..flags import number_or_auto, positive
from .inplace import InPlaceSearcher


class OneShotSearcher(InPlaceSearcher):
    name = "oneshot"
    label = "one-shot search"
    help = "one-shot RL: a policy over archs trained in place with the supernet (docs/oneshot.md)"
    warmup_default = 0.25

    @classmethod
    def add_arguments(cls, g) -> None:
        super().add_arguments(g)
        g.add_argument(
            "--alpha",
            type=number_or_auto,
            help="weight of the FLOPs cost in the reward, held fixed (default auto: adapted so γ(θ) holds the target)",
        )
        g.add_argument(
            "--penalty", choices=["l1", "relu"], default="l1", help="Cost: |F - c| or max(F - c, 0) (default l1)"
        )
        g.add_argument(
            "--policy",
            choices=["on", "on-off"],
            default="on-off",
            help="policy gradient: on-policy REINFORCE, or with off-policy replay (default on-off)",
        )
        g.add_argument(
            "--replay-k", type=positive(int), default=50, help="off-policy updates per on-policy (default 50)"
        )
        g.add_argument("--rl-batch", type=positive(int), default=16, help="sampled archs per policy update (16)")
        g.add_argument("--policy-lr", type=positive(float), default=0.05, help="the policy's Adam rate (0.05)")

    def config(self, target: float, warmup: float, common: dict):
        from ..inplace.oneshot import OneShotConfig

        a = self.args
        if a.alpha is not None and a.alpha < 0:
            raise RksError(f"--alpha must be >= 0, got {a.alpha}")
        return OneShotConfig(
            a.examples,
            target,
            a.alpha,
            a.penalty,
            a.policy,
            a.rl_batch,
            a.replay_k,
            policy_lr=a.policy_lr,
            warmup=warmup,
            **common,
        )

    def make_search(self, space, fit, baseline, cfg, checkpoint, log):
        from ..inplace.oneshot import OneShotSearch

        return OneShotSearch(space, fit, baseline, cfg, checkpoint, log)

    def gap_word(self) -> str:
        return "above" if self.args.penalty == "relu" else "from"

    def gap_fix(self, summary: dict) -> str:
        if self.args.alpha is None:
            return f"raise --examples (α adapted up to {summary['alpha_end']:.3g})"
        return "raise --alpha or --examples"

    def work_line(self, summary: dict) -> str:
        return f"one-shot search: {summary['steps']:,} supernet steps, {summary['policy_updates']:,} policy updates"
