"""What the searches trained in place with the supernet share (one-shot RL, DNAS): a supernet trained on the
engine (`runtime/engine.py`: device, row-indexed steps, checkpoints that a rerun of the same command resumes,
the per-step JSON-lines log) while a distribution over archs learns beside it.

Step k reads training rows k·B … (k+1)·B − 1 (wrapping), so a resumed run sees exactly the rows an
uninterrupted one would; every random state is in the checkpoint, so it also draws the same archs. A
checkpoint is written atomically every `checkpoint_every` steps and at the end; on resume the log is cut
back to the steps the checkpoint holds.

Under torchrun (`runtime/distributed.py`) every rank runs the same search on the same global batches: the
supernet (and one-shot's baseline model) train under DDP on each rank's slice; what decides a draw or an
update of the distribution over archs is computed on the gathered global batch, so every rank draws the
same arch from the same generator and updates the distribution alike.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...core.errors import RksError
from ...data.dataset import Dataset
from ...runtime.engine import Engine, ResumableRun, default_batch_size, start_over
from ...runtime.model import CTRModel
from ...runtime.optim import make_optimizers
from ...runtime.progress import Progress
from .curves import finite_mean


class InPlaceSearch:
    """A supernet trained for `cfg.examples` examples while a distribution over archs learns beside it.
    Subclasses give `learn(dense, cats, labels) -> record` (one step on its mini-batch), `result()`,
    `learned()`, their curves `curve_means(records)` for the checkpoint's record, and their own state
    through `extra_state` / `load_extra_state`. `cfg` needs `examples`, `target`, `batch_size`, `lr`,
    `seed`, `checkpoint_every` and `device`."""

    samples_subnets = True  # a step runs a sampled subnet's parameters only: DDP must find the unused ones

    def __init__(self, space, data: Dataset, baseline, cfg, checkpoint: Path, log: Path, checkpoint_activations=False):
        self.space, self.data, self.baseline, self.cfg = space, data, baseline, cfg
        self.checkpoint, self.log = Path(checkpoint), Path(log)
        self.engine = Engine(cfg.device)
        self.batch_size = cfg.batch_size or default_batch_size(data.n_train)
        self.steps = math.ceil(cfg.examples / self.batch_size)
        self.baseline_flops = float(space.flops(baseline))
        torch.manual_seed(cfg.seed)
        body = space.supernet(checkpoint_activations=checkpoint_activations)
        self.engine.world.require_even(self.batch_size)
        model = CTRModel(body, data.vocab_sizes, space.spec.embed.dim, seed=cfg.seed, bags=data.bag_layout)
        self.supernet = self.engine.place(model)
        self.net = self.engine.wrap(self.supernet, find_unused=self.samples_subnets)  # the supernet as it trains
        self.check_every = self.engine.world.check_every()
        self.drawn = None  # what the last step drew (an arch vector, DNAS's realisations): the agreement check's
        self.supernet_opts = make_optimizers(self.supernet, cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.seconds = 0.0
        self.resumed_from: Optional[int] = None
        self.since_checkpoint: list = []  # the step records since the last checkpoint

    @torch.no_grad()
    def _write_back(self, trained: CTRModel) -> None:
        """`trained`'s weights (the baseline's model) into the supernet: its body into the slices the
        baseline's subnet uses, its embedding tables as they are."""
        from ...runtime.transfer import transfer_back

        transfer_back(self.supernet.body, trained.body, self.baseline)
        supernet = dict(self.supernet.named_parameters())
        for name, value in trained.named_parameters():
            if not name.startswith("body."):
                supernet[name].copy_(value)

    def warm_start(self) -> int:
        """The paper's transfer learning (Section 1): before the first step, the baseline is trained by the final
        trainer (one pass over the rows the search trains on; data parallel under torchrun, as `rks train`) and
        its weights written into the supernet, so the search starts from the production model rather than from
        noise. Returns the examples it trained."""
        from ...runtime.engine import TrainConfig, train_final
        from ...runtime.model import build_model

        cfg = self.cfg
        model = build_model(self.space, self.baseline, self.data, cfg.seed)
        config = TrainConfig(
            self.data.n_train, cfg.batch_size, cfg.lr, cfg.seed, False, "warm start", device=cfg.device
        )
        train_final(self.engine.place(model), self.data, self.data, config)
        self._write_back(model)
        self.warm_started(model)
        return self.data.n_train

    def warm_started(self, trained: CTRModel) -> None:
        """What else starts from the trained baseline (one-shot's co-trained baseline)."""

    def centre(self):
        """The arch distribution's starting point: the baseline's vector under `start = incumbent`, else None
        (uniform)."""
        if getattr(self.cfg, "start", "uniform") != "incumbent" or not self.space.has_encoding(self.baseline):
            return None
        return self.space.encode(self.baseline)

    # -- state --------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {
            "config": asdict(self.cfg),
            "step": self.step,
            "seconds": self.seconds,
            "supernet": self.supernet.state_dict(),
            "supernet_opts": [o.state_dict() for o in self.supernet_opts],
            "generator": self.generator.get_state(),
            **self.engine.rng_state(),
            **self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Load a checkpoint's state; one that misses an entry or holds another model's shapes is refused."""
        try:
            self._load_state_dict(state)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as err:
            what = f"missing entry {err}" if isinstance(err, KeyError) else str(err).strip().splitlines()[0][:160]
            raise RksError(
                f"checkpoint {self.checkpoint} does not fit this search ({what}); {self.start_over}"
            ) from None

    def _load_state_dict(self, state: dict) -> None:
        self.step, self.seconds = state["step"], state["seconds"]
        self.supernet.load_state_dict(state["supernet"])
        for opt, s in zip(self.supernet_opts, state["supernet_opts"]):
            opt.load_state_dict(s)
        self.generator.set_state(state["generator"])
        self.engine.set_rng_state(state)
        self.load_extra_state(state)

    @property
    def start_over(self) -> str:
        return start_over(self.checkpoint, self.log)

    def resume(self) -> None:
        """Load the checkpoint when there is one and cut the log back to the steps it holds."""
        ResumableRun(self, self.checkpoint, self.log).resume()

    # -- the loop -------------------------------------------------------------------------------
    def run(self, on_step=None, progress: Optional[Progress] = None, on_checkpoint=None) -> dict:
        """Train to the end (resuming from the checkpoint when there is one) and return `result()`.
        `on_step(step, steps, record)` is called after each step; `on_checkpoint(search, record)` after each
        checkpoint with `gamma_record` of the steps since the one before: where the search stood then (the
        study store keeps it as a trial)."""

        def checkpointed(_):
            if on_checkpoint is not None and self.since_checkpoint:
                on_checkpoint(self, self.gamma_record(self.since_checkpoint))
            self.since_checkpoint = []

        progress = progress or Progress(self.steps, type(self).__name__, "step", enabled=False)
        self.engine.run_resumable(
            self, self.checkpoint, self.log, self.cfg.checkpoint_every, progress, checkpointed, on_step
        )
        return self.result()

    def train_step(self, step: int) -> dict:
        record = self.learn(*self.engine.row_batch(self.data, step, self.batch_size))
        self.since_checkpoint.append(record)
        if self.check_every and step % self.check_every == 0:
            self.engine.world.check_agreement(step, self.agreement())
        return record

    def agreement(self) -> dict:
        """What every rank must hold alike after a step (`RKS_DDP_CHECK`)."""
        return {
            "drawn arch": self.drawn,
            "supernet weights": list(self.supernet.parameters()),
            "arch distribution": self.learned().logits,
        }

    def learn(self, dense, cats, labels) -> dict:
        raise NotImplementedError

    def gamma_record(self, records: list) -> dict:
        """γ(θ) now, and the means of the steps since the last checkpoint, as the study store records them."""
        vector = self.learned().most_likely()
        flops = int(self.space.cost.evaluate(vector.tolist())[0])
        return {
            "step": self.step,
            "examples": self.step * self.batch_size,
            "arch": self.space.decode(vector.tolist()).to_json(),
            "flops": flops,
            "flops_ratio": flops / self.baseline_flops,
            "ne_batch": finite_mean(r["ne_batch"] for r in records if r.get("ne_batch") is not None),
            "entropy": float(self.learned().entropy()),
            **self.curve_means(records),
        }

    def curve_means(self, records: list) -> dict:
        """The method's own curves (reward or loss, sample FLOPs, temperature …) averaged over `records`."""
        return {}

    def result(self) -> dict:
        raise NotImplementedError

    def learned(self):
        """The distribution over archs the search learns (a `policy.Policy`)."""
        raise NotImplementedError

    def finalists(self, k: int, draws: int = 1024) -> list:
        """γ(θ) and the k − 1 most likely other subnets among `draws` samples of the learned distribution, none
        above γ(θ)'s FLOPs or the target, whichever is higher: what the final trainer retrains beside the
        baseline. A distribution that has settled on one model gives fewer."""
        from ..final import Finalist

        distribution = self.learned()
        gamma = distribution.most_likely()
        best = self.space.decode(gamma.tolist())
        out = [Finalist(best, "γ(θ)", {"probability": self._probability(distribution, gamma)})]
        vectors = distribution.sample(draws, torch.Generator().manual_seed(self.cfg.seed + 1))
        log_probs = distribution.log_prob(vectors).detach().numpy()
        flops = self.space.cost.evaluate_many(vectors)[0]
        limit = max(float(self.cfg.target), float(self.space.flops(best)))
        seen = {self.space.subnet_key(best)}
        for i in np.argsort(-log_probs, kind="stable"):
            if len(out) >= k:
                break
            arch = self.space.decode(vectors[i].tolist())
            key = self.space.subnet_key(arch)
            if key in seen or flops[i] > limit:
                continue
            seen.add(key)
            out.append(Finalist(arch, f"runner-up {len(out)}", {"probability": float(np.exp(log_probs[i]))}))
        return out

    @staticmethod
    def _probability(distribution, vector) -> float:
        return math.exp(float(distribution.log_prob(vector[None]).detach()[0]))

    def winner_summary(self, distribution) -> dict:
        """γ(θ) of the learned distribution (a `policy.Policy`) as every in-place search reports it: the arch,
        its cost and its probability."""
        vector = distribution.most_likely()
        probability = self._probability(distribution, vector)
        flops, params = (int(v) for v in self.space.cost.evaluate(vector.tolist())[:2])
        return {
            "arch": self.space.decode(vector.tolist()),
            "flops": flops,
            "params": params,
            "flops_ratio": flops / self.baseline_flops,
            "probability": probability,
            "steps": self.steps,
            "seconds": self.seconds,
            "resumed_from": self.resumed_from,
        }


def read_back(tensors: list) -> list:
    """Tensors as host values in one transfer — on an accelerator one sync, not one per value: a
    0-dimensional tensor as a float, any other as a flat list. They are gathered on the first one's device
    (put the engine's first)."""
    device = tensors[0].device
    flat = torch.cat([t.detach().reshape(-1).to(device=device, dtype=torch.float64) for t in tensors]).tolist()
    out, at = [], 0
    for t in tensors:
        out.append(flat[at] if t.dim() == 0 else flat[at : at + t.numel()])
        at += t.numel()
    return out
