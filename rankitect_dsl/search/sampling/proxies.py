"""Low-cost NE proxies (paper 3.2.1): early-stop (train the subnet from scratch on little data) and
weight-sharing (pretrain the supernet once, fine-tune each subnet from transferred weights). Both score
an arch by its window NE over the last 25% of its data, which is training data: no proxy reads the
evaluation tail (a search hands them its data less the validation slice, so they never read that either).
Each run decays the body rate over its own budget, as the final trainer does. With `repeats` R, a proxy
runs R times with seeds seed … seed+R−1 (the same seeds for every candidate, so the draws are common random
numbers) and scores the mean window NE."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import torch

from ...core.errors import RksError
from ...data.dataset import Dataset
from ...runtime import distributed
from ...runtime.checkpoints import load_checkpoint, save_checkpoint
from ...runtime.engine import TrainConfig, TrainResult, default_batch_size, train
from ...runtime.model import CTRModel, build_model
from ...runtime.transfer import transfer_weights

PROXY_SCHEDULE = "linear"


def proxy_config(
    examples, batch_size, lr, seed, progress, description, start=0, schedule=PROXY_SCHEDULE, device="auto"
) -> TrainConfig:
    """The trainer's settings for a proxy run: the final trainer's, the body rate decaying linearly to zero
    over the proxy's own budget. A constant rate let a run stop anywhere as the prefix of a longer one, but it
    ranked archs for a trainer nobody ships: the decay helps large models far more than small ones, and the
    constant-rate proxy chose models at a third of the baseline's FLOPs that the final retrain then ranked
    below it (docs/search.md has the Kendall taus of both against the final retrain)."""
    return TrainConfig(
        examples, batch_size, lr, seed, progress, description, start, lr_schedule=schedule, device=device
    )


def averaged(runs: list[TrainResult]) -> TrainResult:
    """One result for R proxy runs: mean window and train NE, total examples and seconds, each run's window NE.
    A single run is returned as it is (with its predictions, which the proxy study reads)."""
    first = runs[0]
    if len(runs) == 1:
        first.extra["window_ne_runs"] = [first.window_ne]
        return first
    return TrainResult(
        sum(r.window_ne for r in runs) / len(runs),
        sum(r.train_ne for r in runs) / len(runs),
        float("nan"),
        float("nan"),
        sum(r.examples for r in runs),
        0,
        sum(r.passes for r in runs),
        sum(r.seconds for r in runs),
        {**first.extra, "window_ne_runs": [r.window_ne for r in runs]},
    )


class EarlyStopProxy:
    name = "early-stop"

    def __init__(
        self,
        space,
        data: Dataset,
        seed: int = 0,
        batch_size: Optional[int] = None,
        lr: float = 1e-3,
        repeats: int = 1,
        schedule: str = PROXY_SCHEDULE,
        device: str = "auto",
    ):
        self.space, self.data, self.seed, self.batch_size, self.lr = space, data, seed, batch_size, lr
        self.repeats, self.schedule, self.device = repeats, schedule, device

    def __call__(self, arch, examples: int) -> TrainResult:
        return averaged(
            [
                early_stop_proxy(
                    self.space,
                    arch,
                    self.data,
                    examples,
                    self.seed + k,
                    self.batch_size,
                    self.lr,
                    schedule=self.schedule,
                    device=self.device,
                )
                for k in range(self.repeats)
            ]
        )


class WeightSharingProxy:
    """Pretrain: the first 10% of the pretraining data with every mask on, then each batch a uniformly
    sampled subnet with probability 0.75, else the whole supernet. Fine-tune each candidate on the data
    after the pretraining part, from the supernet's weights; nothing is written back."""

    name = "weight-sharing"

    def __init__(
        self,
        space,
        data: Dataset,
        pretrain_examples: int,
        seed: int = 0,
        batch_size: Optional[int] = None,
        lr: float = 1e-3,
        checkpoint: Optional[Path] = None,
        progress: bool = False,
        repeats: int = 1,
        schedule: str = PROXY_SCHEDULE,
        device: str = "auto",
    ):
        self.space, self.data, self.seed, self.lr, self.schedule = space, data, seed, lr, schedule
        self.device = device
        self.batch_size = batch_size or default_batch_size(data.n_train)
        self.pretrain_examples, self.repeats = pretrain_examples, repeats
        torch.manual_seed(seed)
        self.model = CTRModel(space.supernet(), data.vocab_sizes, space.spec.embed.dim, bags=data.bag_layout)
        if checkpoint is not None and Path(checkpoint).exists():
            start_over = f"delete {checkpoint} to pretrain the supernet again"
            try:
                self.model.load_state_dict(load_checkpoint(checkpoint, start_over))
            except RuntimeError as err:
                problem = str(err).strip().splitlines()[0][:160]
                raise RksError(f"checkpoint {checkpoint} is another supernet's ({problem}); {start_over}") from None
        else:
            self.pretrain(progress)
            if checkpoint is not None and distributed.current().main:
                save_checkpoint(checkpoint, self.model.state_dict())

    def pretrain(self, progress: bool) -> TrainResult:
        rng = random.Random(self.seed)
        warmup = max(1, int(0.1 * self.pretrain_examples) // self.batch_size)

        def forward(model, dense, cats, step):
            if step >= warmup and rng.random() < 0.75:
                return model(dense, cats, arch=self.space.sample(rng.randrange(1 << 30)))
            return model(dense, cats)

        label = "supernet pretraining"
        cfg = proxy_config(
            self.pretrain_examples,
            self.batch_size,
            self.lr,
            self.seed,
            progress,
            label,
            schedule=self.schedule,
            device=self.device,
        )
        return train(self.model, self.data, cfg, forward=forward, evaluate=False)

    def __call__(self, arch, examples: int) -> TrainResult:
        return averaged([self.fine_tune(arch, examples, self.seed + k) for k in range(self.repeats)])

    def fine_tune(self, arch, examples: int, seed: int) -> TrainResult:
        torch.manual_seed(seed)
        subnet = self.space.subnet(arch)
        transfer_weights(self.model.body, subnet, arch)
        model = CTRModel(subnet, self.data.vocab_sizes, self.space.spec.embed.dim, bags=self.data.bag_layout)
        with torch.no_grad():
            model.embedding.weight.copy_(self.model.embedding.weight)
        cfg = proxy_config(
            examples,
            self.batch_size,
            self.lr,
            seed,
            False,
            "fine-tune",
            self.pretrain_examples,
            self.schedule,
            self.device,
        )
        result = train(model, self.data, cfg, evaluate=False)
        result.extra.update(flops=self.space.flops(arch), params=self.space.params(arch))
        return result


def early_stop_proxy(
    space,
    arch,
    data: Dataset,
    examples: int,
    seed: int = 0,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    progress: bool = False,
    evaluate: bool = False,
    schedule: str = PROXY_SCHEDULE,
    device: str = "auto",
) -> TrainResult:
    """The paper's early-stop proxy (3.2.1): train the exported subnet from scratch on a small budget;
    its window NE over the last 25% of the data is the score."""
    model = build_model(space, arch, data, seed)
    cfg = proxy_config(examples, batch_size, lr, seed, progress, "early-stop", schedule=schedule, device=device)
    result = train(model, data, cfg, evaluate=evaluate)
    result.extra.update(flops=space.flops(arch), params=space.params(arch))
    return result
