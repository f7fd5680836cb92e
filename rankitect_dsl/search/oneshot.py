"""One-shot search (paper 3.2.2, Appendix A): an RL policy trained in place with the supernet.

Each step draws an arch from the policy, trains the supernet through it on the mini-batch (the hard path:
only what the arch uses runs) and co-trains the baseline arch, as its own model, on the same mini-batch.
The arch's reward comes from both models' pre-update predictions on that batch (Eqs. 4 and 7):

    NE%(a) = (NE_batch(a) − NE_batch(baseline)) / NE_batch(baseline)
    R(a)   = NE%(a) + α · Cost(a),  Cost = |F(a) − c| (L1) or max(F(a) − c, 0) (ReLU)

with FLOPs F and target c in multiples of the baseline's FLOPs, from the compiler's cost model. Lower is
better. Warm-up as TuNAS does it (not in the paper): for the first `warmup` fraction of steps the policy
does not learn and the supernet trains all-on with a probability that decays linearly from 1 to 0.

A checkpoint (supernet, baseline, their optimisers, policy, its optimiser, replay buffer, random states)
is written every `checkpoint_every` steps; the per-step log is JSON lines. A run whose checkpoint exists
resumes from it and cuts the log back to it.
"""

from __future__ import annotations

import io
import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core.files import atomic_write
from ..data.dataset import Dataset
from ..runtime.metrics import normalized_entropy
from ..runtime.model import CTRModel, build_model
from ..runtime.optim import make_optimizers
from ..runtime.trainer import default_batch_size, logloss_step
from .policy import Policy, ReplayBuffer

PENALTIES = ("l1", "relu")
POLICIES = ("on", "on-off")


@dataclass
class OneShotConfig:
    """The search's settings. α, the penalty and the policy kind are the paper's; the rest (policy
    learning rate, replay size, K, warm-up) the paper does not give: ours, documented in docs/search.md."""

    examples: int
    target: float  # FLOPs per example, absolute
    alpha: float = 0.01
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


def penalty_cost(kind: str, ratio: np.ndarray, target_ratio: float) -> np.ndarray:
    """Cost(a) of Eq. 7 in multiples of the baseline's FLOPs."""
    gap = ratio - target_ratio
    return np.abs(gap) if kind == "l1" else np.maximum(gap, 0.0)


class OneShotSearch:
    def __init__(self, space, data: Dataset, baseline, cfg: OneShotConfig, checkpoint: Path, log: Path):
        self.space, self.data, self.baseline, self.cfg = space, data, baseline, cfg
        self.checkpoint, self.log = Path(checkpoint), Path(log)
        self.batch_size = cfg.batch_size or default_batch_size(data.n_train)
        self.steps = math.ceil(cfg.examples / self.batch_size)
        self.warmup_steps = int(cfg.warmup * self.steps)
        self.baseline_flops = float(space.flops(baseline))
        self.target_ratio = cfg.target / self.baseline_flops
        torch.manual_seed(cfg.seed)
        self.supernet = CTRModel(space.supernet(), data.vocab_sizes, space.spec.embed.dim, seed=cfg.seed)
        self.reference = build_model(space, baseline, data, cfg.seed)
        self.supernet_opts = make_optimizers(self.supernet, cfg.lr)
        self.reference_opts = make_optimizers(self.reference, cfg.lr)
        self.policy = Policy(space, cfg.policy_lr)
        self.replay = ReplayBuffer(cfg.replay_size, len(space.decisions))
        self.pending: list = []  # (vector, reward, log-prob) since the last on-policy update
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rng = random.Random(cfg.seed)
        self.np_rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.updates = 0
        self.seconds = 0.0
        self.resumed_from: Optional[int] = None

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "step": self.step,
            "updates": self.updates,
            "seconds": self.seconds,
            "supernet": self.supernet.state_dict(),
            "reference": self.reference.state_dict(),
            "supernet_opts": [o.state_dict() for o in self.supernet_opts],
            "reference_opts": [o.state_dict() for o in self.reference_opts],
            "policy": self.policy.state_dict(),
            "replay": self.replay.state_dict(),
            "pending": self.pending,
            "generator": self.generator.get_state(),
            "rng": self.rng.getstate(),
            "np_rng": self.np_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.step, self.updates, self.seconds = state["step"], state["updates"], state["seconds"]
        self.supernet.load_state_dict(state["supernet"])
        self.reference.load_state_dict(state["reference"])
        for opt, s in zip(self.supernet_opts + self.reference_opts, state["supernet_opts"] + state["reference_opts"]):
            opt.load_state_dict(s)
        self.policy.load_state_dict(state["policy"])
        self.replay.load_state_dict(state["replay"])
        self.pending = state["pending"]
        self.generator.set_state(state["generator"])
        self.rng.setstate(state["rng"])
        self.np_rng.bit_generator.state = state["np_rng"]
        torch.set_rng_state(state["torch_rng"])

    def save(self) -> None:
        buffer = io.BytesIO()
        torch.save(self.state_dict(), buffer)
        atomic_write(self.checkpoint, buffer.getvalue())

    def resume(self) -> None:
        """Load the checkpoint when there is one and cut the log back to the steps it holds."""
        if not self.checkpoint.exists():
            self.log.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.log, "")
            return
        self.load_state_dict(torch.load(self.checkpoint, weights_only=False))
        self.resumed_from = self.step
        kept = []
        if self.log.exists():
            for line in self.log.read_text().splitlines():
                if line.strip() and json.loads(line)["step"] < self.step:
                    kept.append(line + "\n")
        atomic_write(self.log, "".join(kept))

    # -- the search -----------------------------------------------------------------------------
    def run(self, progress=None) -> dict:
        self.resume()
        started = time.perf_counter()
        with open(self.log, "a") as log:
            while self.step < self.steps:
                record = self.train_step(*self.batch(self.step))
                log.write(json.dumps(record) + "\n")
                self.step += 1
                if progress is not None:
                    progress(self.step, self.steps, record)
                if self.step % self.cfg.checkpoint_every == 0 or self.step == self.steps:
                    log.flush()
                    self.seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    self.save()
        self.seconds += time.perf_counter() - started
        return self.result()

    def batch(self, step: int):
        """Step k's mini-batch: training rows k·B … (k+1)·B − 1, wrapping around the training part, so a
        resumed run reads exactly the rows an uninterrupted one would."""
        rows = np.arange(step * self.batch_size, (step + 1) * self.batch_size) % self.data.n_train
        return tuple(torch.from_numpy(np.asarray(a[rows])) for a in (self.data.dense, self.data.cats, self.data.labels))

    def train_step(self, dense, cats, labels) -> dict:
        cfg = self.cfg
        warm = self.step < self.warmup_steps
        all_on = warm and self.rng.random() < 1.0 - self.step / max(1, self.warmup_steps)
        record = {"step": self.step, "examples": (self.step + 1) * self.batch_size, "all_on": all_on}
        if all_on:
            logits = self.supernet(dense, cats)
        else:
            vector = self.policy.sample(1, self.generator)[0]
            arch = self.space.decode(vector.tolist())
            logits = self.supernet(dense, cats, arch=arch)
        ref_logits = self.reference(dense, cats)
        logloss_step(self.supernet_opts, logits, labels)
        logloss_step(self.reference_opts, ref_logits, labels)
        ne_ref = normalized_entropy(ref_logits.detach(), labels)
        record["ne_batch_baseline"] = ne_ref
        if all_on:
            record["ne_batch"] = normalized_entropy(logits.detach(), labels)
        else:
            ne = normalized_entropy(logits.detach(), labels)
            ratio = float(self.space.cost.evaluate_many(vector[None])[0][0]) / self.baseline_flops
            ne_pct = (ne - ne_ref) / ne_ref
            cost = float(penalty_cost(cfg.penalty, np.array([ratio]), self.target_ratio)[0])
            reward = cfg.ne_weight * (0.0 if math.isnan(ne_pct) else ne_pct) + cfg.alpha * cost
            record.update(arch=vector.tolist(), ne_batch=ne, ne_pct=ne_pct, flops_ratio=ratio, reward=reward)
            if not warm and not (cfg.ne_weight and math.isnan(ne_pct)):  # a one-class batch has no NE
                log_p = float(self.policy.log_prob(vector[None]).detach()[0])
                self.pending.append((vector, reward, log_p))
                if len(self.pending) >= cfg.rl_batch:
                    self.update_policy()
        record["entropy"] = self.policy.entropy()
        record["policy_updates"] = self.updates
        return record

    def update_policy(self) -> None:
        vectors = np.stack([p[0] for p in self.pending])
        rewards = np.array([p[1] for p in self.pending])
        log_probs = np.array([p[2] for p in self.pending])
        self.pending = []
        self.policy.on_policy_step(vectors, rewards)
        self.updates += 1
        if self.cfg.policy == "on-off":
            self.replay.add(vectors, rewards, log_probs)
            for _ in range(self.cfg.replay_k):
                self.policy.off_policy_step(*self.replay.draw(self.cfg.rl_batch, self.np_rng))
                self.updates += 1

    def result(self) -> dict:
        vector = self.policy.most_likely()
        arch = self.space.decode(vector.tolist())
        flops, params = (int(v) for v in self.space.cost.evaluate(vector.tolist())[:2])
        return {
            "arch": arch,
            "flops": flops,
            "params": params,
            "flops_ratio": flops / self.baseline_flops,
            "target_gap": float(penalty_cost(self.cfg.penalty, np.array([flops]), self.cfg.target)[0])
            / self.cfg.target,
            "probability": float(math.exp(float(self.policy.log_prob(vector[None]).detach()[0]))),
            "steps": self.steps,
            "policy_updates": self.updates,
            "examples_processed": 2 * self.steps * self.batch_size,
            "seconds": self.seconds,
            "resumed_from": self.resumed_from,
        }
