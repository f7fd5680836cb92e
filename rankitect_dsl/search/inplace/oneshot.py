"""One-shot search (paper 3.2.2, Appendix A): an RL policy trained in place with the supernet.

Each step draws an arch from the policy, trains the supernet through it on the mini-batch (the hard path:
only what the arch uses runs) and co-trains the baseline arch, as its own model, on the same mini-batch.
The arch's reward comes from both models' pre-update predictions on that batch (Eqs. 4 and 7):

    NE%(a) = (NE_batch(a) − NE_batch(baseline)) / NE_batch(baseline)
    R(a)   = NE%(a) + α · Cost(a),  Cost = |F(a) − c| (L1) or max(F(a) − c, 0) (ReLU)

with FLOPs F and target c in multiples of the baseline's FLOPs, from the compiler's cost model. Lower is
better. By default α is not fixed but adapted, in two parts: α = λ · σ(NE%) / σ(Cost). σ(NE%) is the
spread of the last `NOISE_WINDOW` sampled NE% values and σ(Cost) the spread of Cost over the space's
uniform draws, so the FLOPs term starts as loud as the NE% noise on any data (batch NE% is far noisier on
a small real set than on synthetic data, and a fixed α that holds the target on one set leaves it 25–90%
off on another). λ is the Lagrange multiplier of the target: after each policy update it grows while γ(θ)
misses the target by more than `ALPHA_TOLERANCE` and shrinks while it holds it. A number given as α holds
it fixed.

Warm-up as TuNAS does it (not in the paper): for the first `warmup` fraction of steps the policy does not
learn and the supernet trains all-on with a probability that decays linearly from 1 to 0.

Under torchrun both models train under DDP; the NE% and the reward are computed on the gathered global
batch, so every rank holds the same rewards and takes the same policy update from them: the policy's
gradient depends on the batch only through the rewards, so gathering two numbers per row keeps the ranks'
policies identical without reducing its gradient or broadcasting it (`RKS_DDP_CHECK` verifies).

The checkpoint (`inplace.InPlaceSearch`) adds the baseline model, its optimiser, the policy, its
optimiser and the replay buffer to the supernet's state; the per-step log is JSON lines.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...data.dataset import Dataset
from ...runtime.metrics import ne_from, ne_terms
from ...runtime.model import build_model
from ...runtime.optim import make_optimizers
from ..constraints import FlopsObjective
from .curves import finite_mean
from .policy import Policy, ReplayBuffer
from .trainer import InPlaceSearch, read_back

LAMBDA_START = 3.0  # the FLOPs term's spread as large as the NE% noise's at first
ALPHA_TOLERANCE = 0.05  # the relative gap of γ(θ) to the target below which λ shrinks
ALPHA_RATE = 1.0  # log λ moves by this times (gap − tolerance) per policy update
LAMBDA_RANGE = (1e-3, 1e3)
NOISE_WINDOW = 256  # sampled NE% values σ(NE%) is taken over
COST_DRAWS = 2048  # uniform draws σ(Cost) is taken over
POLICIES = ("on", "on-off")


@dataclass
class OneShotConfig:
    """The search's settings. α, the penalty and the policy kind are the paper's; the rest (policy
    learning rate, replay size, K, warm-up) the paper does not give: ours, documented in docs/oneshot.md."""

    examples: int
    target: float  # FLOPs per example, absolute
    alpha: Optional[float] = None  # None: adapted (the default); a number: held fixed
    penalty: str = "l1"
    policy: str = "on-off"
    rl_batch: int = 16
    replay_k: int = 50
    replay_size: int = 1024
    policy_lr: float = 0.05
    warmup: float = 0.25
    ne_weight: float = 1.0  # 0 searches FLOPs alone (the DNAS comparison's convergence test)
    batch_size: Optional[int] = None
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 200
    start: str = "uniform"  # or "incumbent": the arch distribution starts centred on the baseline
    device: str = "auto"


class OneShotSearch(InPlaceSearch):
    def __init__(self, space, data: Dataset, baseline, cfg: OneShotConfig, checkpoint: Path, log: Path):
        super().__init__(space, data, baseline, cfg, checkpoint, log)
        self.warmup_steps = int(cfg.warmup * self.steps)
        self.objective = FlopsObjective(cfg.target, kind=cfg.penalty, scale=self.baseline_flops)
        self.reference = self.engine.place(build_model(space, baseline, data, cfg.seed))
        self.reference_net = self.engine.wrap(self.reference, find_unused=False)
        self.reference_opts = make_optimizers(self.reference, cfg.lr)
        self.policy = Policy(space, cfg.policy_lr, centre=self.centre())
        self.replay = ReplayBuffer(cfg.replay_size, len(space.decisions), n_terms=2)
        self.lam = LAMBDA_START
        self.noise: deque = deque(maxlen=NOISE_WINDOW)  # the last sampled NE% values
        draws = self.policy.sample(COST_DRAWS, torch.Generator().manual_seed(cfg.seed + 2))
        flops = np.asarray(space.cost.evaluate_many(draws)[0], dtype=float)
        self.cost_spread = float(np.std(self.objective.cost(flops))) or 1.0
        self.pending: list = []  # (vector, reward, log-prob) since the last on-policy update
        self.rng = random.Random(cfg.seed)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.updates = 0

    def warm_started(self, trained) -> None:
        """The co-trained baseline starts from the trained baseline too, so NE% compares like with like."""
        self.reference.load_state_dict(trained.state_dict())

    def extra_state(self) -> dict:
        return {
            "updates": self.updates,
            "lam": self.lam,
            "noise": list(self.noise),
            "reference": self.reference.state_dict(),
            "reference_opts": [o.state_dict() for o in self.reference_opts],
            "policy": self.policy.state_dict(),
            "replay": self.replay.state_dict(),
            "pending": [(torch.from_numpy(np.asarray(v)), list(r), lp) for v, r, lp in self.pending],
            "rng": self.rng.getstate(),
            "np_rng": self.np_rng.bit_generator.state,
        }

    def load_extra_state(self, state: dict) -> None:
        self.updates, self.lam = state["updates"], float(state["lam"])
        self.noise = deque(state["noise"], maxlen=NOISE_WINDOW)
        self.reference.load_state_dict(state["reference"])
        for opt, s in zip(self.reference_opts, state["reference_opts"]):
            opt.load_state_dict(s)
        self.policy.load_state_dict(state["policy"])
        self.replay.load_state_dict(state["replay"])
        self.pending = [(v.numpy(), r, lp) for v, r, lp in state["pending"]]
        self.rng.setstate(state["rng"])
        self.np_rng.bit_generator.state = state["np_rng"]

    def learn(self, dense, cats, labels) -> dict:
        cfg = self.cfg
        warm = self.step < self.warmup_steps
        all_on = warm and self.rng.random() < 1.0 - self.step / max(1, self.warmup_steps)
        record = {"step": self.step, "examples": (self.step + 1) * self.batch_size, "all_on": all_on}
        if all_on:
            self.drawn = "all on"
            logits = self.net(dense, cats)
        else:
            vector = self.policy.sample(1, self.generator)[0]
            self.drawn = vector.tolist()
            arch = self.space.decode(vector.tolist())
            logits = self.net(dense, cats, arch=arch)
        ref_logits = self.reference_net(dense, cats)
        n = self.batch_size
        self.engine.logloss_step(self.supernet_opts, logits, labels, n)
        self.engine.logloss_step(self.reference_opts, ref_logits, labels, n)
        logits, ref_logits, labels = self.engine.gather(n, logits, ref_logits, labels)  # the global batch's
        # what the step needs on the host — both NEs, the draw's log-probability, the entropy — in one transfer
        learns = not all_on and not warm  # only a draw after the warm-up feeds the policy
        log_prob = self.policy.log_prob(vector[None])[0] if learns else ref_logits.new_zeros(())
        entropies = self.policy.entropy_tensor()
        ref_terms, terms_now, log_p, entropies = read_back(
            [ne_terms(ref_logits.detach(), labels), ne_terms(logits.detach(), labels), log_prob, entropies]
        )
        ne_ref = ne_from(*ref_terms)
        record["ne_batch_baseline"] = ne_ref
        if all_on:
            record["ne_batch"] = ne_from(*terms_now)
        else:
            ne = ne_from(*terms_now)
            flops = float(self.space.cost.evaluate_many(vector[None])[0][0])
            ratio = flops / self.baseline_flops
            ne_pct = (ne - ne_ref) / ne_ref
            cost = float(self.objective.cost(flops))
            terms = (cfg.ne_weight * (0.0 if math.isnan(ne_pct) else ne_pct), cost)
            if not math.isnan(ne_pct):
                self.noise.append(ne_pct)
            reward = terms[0] + self.alpha * terms[1]
            record.update(arch=vector.tolist(), ne_batch=ne, ne_pct=ne_pct, flops_ratio=ratio, reward=reward)
            if learns and not (cfg.ne_weight and math.isnan(ne_pct)):  # a one-class batch has no NE
                self.pending.append((vector, terms, log_p))
                if len(self.pending) >= cfg.rl_batch:
                    self.update_policy()
                    entropies = None  # the policy moved: its entropy is read again
        record["entropy"] = self.policy.entropy() if entropies is None else float(sum(entropies))
        record["policy_updates"] = self.updates
        record["alpha"] = self.alpha
        return record

    def update_policy(self) -> None:
        vectors = np.stack([p[0] for p in self.pending])
        terms = np.array([p[1] for p in self.pending])
        log_probs = np.array([p[2] for p in self.pending])
        self.pending = []
        self.policy.on_policy_step(vectors, self.rewards(terms))
        self.updates += 1
        if self.cfg.policy == "on-off":
            self.replay.add(vectors, terms, log_probs)
            for _ in range(self.cfg.replay_k):
                replayed, replayed_terms, old_log_probs = self.replay.draw(self.cfg.rl_batch, self.np_rng)
                self.policy.off_policy_step(replayed, self.rewards(replayed_terms), old_log_probs)
                self.updates += 1
        if self.cfg.alpha is None:
            self.adapt_lambda()

    def rewards(self, terms: np.ndarray) -> np.ndarray:
        """Eq. 7 from its terms (NE%, Cost) with the α of now."""
        return terms[:, 0] + self.alpha * terms[:, 1]

    def gamma_gap(self) -> float:
        """γ(θ)'s penalty relative to the target: |F − c| / c (L1) or max(F − c, 0) / c (ReLU)."""
        vector = self.policy.most_likely()
        return float(self.objective.relative_gap(float(self.space.cost.evaluate_many(vector[None])[0][0])))

    @property
    def alpha(self) -> float:
        """Eq. 7's α: the given one, or λ · σ(NE%) / σ(Cost)."""
        if self.cfg.alpha is not None:
            return self.cfg.alpha
        noise = float(np.std(self.noise)) if len(self.noise) > 1 else 1.0
        return self.lam * noise / self.cost_spread

    def adapt_lambda(self) -> None:
        """Dual ascent on the target: log λ grows with γ(θ)'s gap beyond the tolerance, falls within it."""
        step = ALPHA_RATE * (self.gamma_gap() - ALPHA_TOLERANCE)
        self.lam = float(np.clip(self.lam * math.exp(step), *LAMBDA_RANGE))

    def learned(self):
        return self.policy

    def curve_means(self, records: list) -> dict:
        sampled = [r for r in records if "reward" in r]
        return {
            "reward": finite_mean(r["reward"] for r in sampled),
            "sample_flops_ratio": finite_mean(r["flops_ratio"] for r in sampled),
            "alpha": records[-1]["alpha"],
        }

    def result(self) -> dict:
        out = self.winner_summary(self.policy)
        out.update(
            target_gap=float(self.objective.relative_gap(out["flops"])),
            policy_updates=self.updates,
            alpha_end=self.alpha,
            lambda_end=self.lam if self.cfg.alpha is None else None,
            examples_processed=2 * self.steps * self.batch_size,
        )
        return out
