"""DNAS (paper 3.2.3, Eqs. 8–9): architecture logits θ trained jointly with the supernet weights W.

Every decision of `space.decisions` is a categorical over its options with logits θ. Each step draws, for
every example of the mini-batch, its own Gumbel-softmax realisation of every decision (Eq. 8: "each
minibatch element using a separate realization") and runs the batch through the supernet's mask path with
those per-example weights; dim decisions become soft leading-ones masks there. The loss is

    CE(W, a, d) + λ · mean_i |F(a_i) − c| / c                                     (Eq. 9)

with F(a_i) the compiler's FLOPs formula evaluated at example i's relaxed sample, so the regulariser is
the Monte-Carlo estimate of E_a|F(a) − c| on the same samples the loss sees, and differentiable in θ.
W and θ take separate Adam optimisers (rates `lr` and `arch_lr`) on the one backward pass.

The temperature anneals exponentially from `tau_start` to `tau_end` over the run, as FBNet does (its
τ0 = 5, ×e^−0.045 per epoch over 90 epochs, ending near 0.09): the paper gives no schedule. FBNet also
trains W alone first (10 of 90 epochs); `warmup` is that fraction here. `ne_weight` scales the CE's
gradient into θ only (the forward pass is unchanged): 0 searches FLOPs alone, the convergence test the
paper runs against RL. The result is γ(θ), each decision's most likely option.

Under torchrun every rank draws the global batch's realisations from the same generator and runs its slice
of them; W trains under DDP and θ's gradient is all-reduced (averaged) like W's before its step. θ's
gradient depends on every example's loss, so it has to be reduced; the regulariser is taken over all the
global batch's realisations on every rank, so its part is the same everywhere and the average keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ...data.dataset import Dataset
from ...runtime.metrics import ne_from, ne_terms
from ..constraints import FlopsObjective
from .curves import finite_mean
from .gumbel import gumbel_noise
from .policy import Policy, decision_entropies
from .trainer import InPlaceSearch, read_back


@dataclass
class DNASConfig:
    """λ and Eq. 9 are the paper's; the temperature schedule and warm-up are FBNet's; the rates are ours
    (docs/dnas.md)."""

    examples: int
    target: float  # FLOPs per example, absolute
    lam: float = 1.0
    tau_start: float = 5.0
    tau_end: float = 0.1
    arch_lr: float = 0.1
    warmup: float = 0.1
    ne_weight: float = 1.0
    checkpoint_activations: bool = False
    batch_size: Optional[int] = None
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200
    start: str = "uniform"  # or "incumbent": the arch distribution starts centred on the baseline
    device: str = "auto"


def temperature(step: int, steps: int, tau_start: float, tau_end: float) -> float:
    """τ at `step` of `steps`: exponential decay from tau_start at the first step to tau_end at the last."""
    return tau_start * (tau_end / tau_start) ** (step / max(1, steps - 1))


def gumbel_softmax(logits: torch.Tensor, n: int, tau: float, generator: torch.Generator) -> torch.Tensor:
    """n relaxed samples of every decision at once: softmax((θ + g) / τ) over each row of `logits`
    (decisions × most options, padding at -inf, which gets weight 0)."""
    return torch.softmax((logits + gumbel_noise(n, logits, generator)) / tau, -1)


class DNASSearch(InPlaceSearch):
    samples_subnets = False  # the mask path runs every parameter at every step

    def __init__(self, space, data: Dataset, baseline, cfg: DNASConfig, checkpoint: Path, log: Path):
        super().__init__(space, data, baseline, cfg, checkpoint, log, cfg.checkpoint_activations)
        self.warmup_steps = int(cfg.warmup * self.steps)
        self.theta = Policy(space, cfg.arch_lr, betas=(0.9, 0.999), centre=self.centre())
        self.sizes = [d.size for d in space.decisions]
        self.objective = FlopsObjective(cfg.target, weight=cfg.lam)

    def extra_state(self) -> dict:
        return {"theta": self.theta.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.theta.load_state_dict(state["theta"])

    def split(self, weights: torch.Tensor) -> list:
        """(..., decisions, options) weights as one (..., size) tensor per decision."""
        return [weights[..., i, :size] for i, size in enumerate(self.sizes)]

    def learn(self, dense, cats, labels) -> dict:
        cfg = self.cfg
        tau = temperature(self.step, self.steps, cfg.tau_start, cfg.tau_end)
        world, n = self.engine.world, self.batch_size
        samples = gumbel_softmax(self.theta.logits, n, tau, self.generator)  # the global batch's, on every rank
        self.drawn = samples.detach()
        lo, hi = world.bounds(n)
        mine = samples[lo:hi]
        seen = mine if cfg.ne_weight == 1 else cfg.ne_weight * mine + (1 - cfg.ne_weight) * mine.detach()
        masks = {d.name: m for d, m in zip(self.space.decisions, self.split(seen))}
        logits = self.net(dense, cats, masks=masks)
        ce = F.binary_cross_entropy_with_logits(logits, labels)
        flops = self.space.cost.expected(self.split(samples))[0]
        reg = self.objective.cost(flops).mean()
        loss = ce + self.objective.weight * reg
        learns = self.step >= self.warmup_steps
        for opt in self.supernet_opts + [self.theta.optimizer]:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        world.mean_(self.theta.logits.grad)
        ce_global = world.mean(ce) if world.distributed else None
        logits, labels = self.engine.gather(n, logits, labels)
        for opt in self.supernet_opts:
            opt.step()
        if learns:
            self.theta.optimizer.step()
        logp = self.theta.log_softmax().detach()
        expected = self.space.cost.expected(self.split(logp.exp()))[0]
        # everything the step reports, read back in one transfer (a sync on an accelerator)
        host = read_back(
            [ce, loss, reg, flops.mean(), expected, ne_terms(logits.detach(), labels)]
            + [self.theta.logits.detach().argmax(-1), decision_entropies(logp)],
        )
        ce_value, loss_value, reg_value, sample_flops, expected, ne_parts, argmax, entropies = host
        if world.distributed:  # the ranks' mean batch loss, as the engine reports it
            ce_value, loss_value = ce_global, ce_global + self.objective.weight * reg_value
        gamma = self.theta.repair(np.asarray(argmax, dtype=np.int64)[None])[0]
        return {
            "step": self.step,
            "examples": (self.step + 1) * self.batch_size,
            "temperature": tau,
            "arch_learns": learns,
            "loss": loss_value,
            "ce": ce_value,
            "ne_batch": ne_from(*ne_parts),
            "flops_reg": reg_value,
            "sample_flops_ratio": sample_flops / self.baseline_flops,
            "expected_flops_ratio": expected / self.baseline_flops,
            "gamma": gamma.tolist(),
            "gamma_flops_ratio": self.space.cost.evaluate(gamma.tolist())[0] / self.baseline_flops,
            "entropy": sum(entropies),
            "entropies": entropies,
        }

    def learned(self):
        return self.theta

    def curve_means(self, records: list) -> dict:
        return {
            "loss": finite_mean(r["loss"] for r in records),
            "sample_flops_ratio": finite_mean(r["sample_flops_ratio"] for r in records),
            "temperature": records[-1]["temperature"],
        }

    def result(self) -> dict:
        out = self.winner_summary(self.theta)
        out.update(
            target_gap=float(self.objective.relative_gap(out["flops"])),
            examples_processed=self.steps * self.batch_size,
        )
        return out
