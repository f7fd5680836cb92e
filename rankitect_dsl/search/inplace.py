"""What the searches trained in place with the supernet share (one-shot RL, DNAS): the step loop over the
training part, the per-step JSON-lines log, and checkpoints that a rerun of the same command resumes.

Step k reads training rows k·B … (k+1)·B − 1 (wrapping), so a resumed run sees exactly the rows an
uninterrupted one would; every random state is in the checkpoint, so it also draws the same archs. A
checkpoint is written atomically every `checkpoint_every` steps and at the end; on resume the log is cut
back to the steps the checkpoint holds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..core.errors import RksError
from ..core.files import atomic_write
from ..data.dataset import Dataset
from ..runtime.checkpoints import load_checkpoint, save_checkpoint
from ..runtime.model import CTRModel
from ..runtime.optim import make_optimizers
from ..runtime.trainer import default_batch_size


class InPlaceSearch:
    """A supernet trained for `cfg.examples` examples while a distribution over archs learns beside it.
    Subclasses give `train_step(dense, cats, labels) -> record`, `result()`, and their own state through
    `extra_state` / `load_extra_state`. `cfg` needs `examples`, `target`, `batch_size`, `lr`, `seed` and
    `checkpoint_every`."""

    def __init__(self, space, data: Dataset, baseline, cfg, checkpoint: Path, log: Path, checkpoint_activations=False):
        self.space, self.data, self.baseline, self.cfg = space, data, baseline, cfg
        self.checkpoint, self.log = Path(checkpoint), Path(log)
        self.batch_size = cfg.batch_size or default_batch_size(data.n_train)
        self.steps = math.ceil(cfg.examples / self.batch_size)
        self.baseline_flops = float(space.flops(baseline))
        torch.manual_seed(cfg.seed)
        body = space.supernet(checkpoint_activations=checkpoint_activations)
        self.supernet = CTRModel(body, data.vocab_sizes, space.spec.embed.dim, seed=cfg.seed)
        self.supernet_opts = make_optimizers(self.supernet, cfg.lr)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.seconds = 0.0
        self.resumed_from: Optional[int] = None

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
            "torch_rng": torch.get_rng_state(),
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
        torch.set_rng_state(state["torch_rng"])
        self.load_extra_state(state)

    def save(self) -> None:
        save_checkpoint(self.checkpoint, self.state_dict())

    @property
    def start_over(self) -> str:
        return f"delete {self.checkpoint} and {self.log} to start the search over"

    def resume(self) -> None:
        """Load the checkpoint when there is one and cut the log back to the steps it holds."""
        if not self.checkpoint.exists():
            self.log.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.log, "")
            return
        self.load_state_dict(load_checkpoint(self.checkpoint, self.start_over))
        self.resumed_from = self.step
        atomic_write(self.log, "".join(line + "\n" for line in self.logged_steps()))

    def logged_steps(self) -> list[str]:
        """The log's lines of the steps the checkpoint holds. A last line cut short (the process was killed
        while writing a step the checkpoint does not hold) is dropped; any other line that is not a step's
        record is refused with its line number."""
        if not self.log.exists():
            return []
        try:
            lines = self.log.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise RksError(f"cannot read the search log {self.log} ({err}); {self.start_over}") from None
        kept = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                step = json.loads(line)["step"]
                if not isinstance(step, int):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                if n == len(lines):
                    break
                raise RksError(f"{self.log}:{n}: not a step record of the search log; {self.start_over}") from None
            if step < self.step:
                kept.append(line)
        return kept

    # -- the loop -------------------------------------------------------------------------------
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
        """Step k's mini-batch: training rows k·B … (k+1)·B − 1, wrapping around the training part."""
        rows = np.arange(step * self.batch_size, (step + 1) * self.batch_size) % self.data.n_train
        return tuple(torch.from_numpy(np.asarray(a[rows])) for a in (self.data.dense, self.data.cats, self.data.labels))

    def train_step(self, dense, cats, labels) -> dict:
        raise NotImplementedError

    def result(self) -> dict:
        raise NotImplementedError

    def learned(self):
        """The distribution over archs the search learns (a `policy.Policy`)."""
        raise NotImplementedError

    def finalists(self, k: int, draws: int = 1024) -> list:
        """γ(θ) and the k − 1 most likely other subnets among `draws` samples of the learned distribution, none
        above γ(θ)'s FLOPs or the target, whichever is higher: what the final trainer retrains beside the
        baseline. A distribution that has settled on one model gives fewer."""
        from .final import Finalist

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
