"""Train and score an architecture on CTR data: embeddings outside the searched part, Adam for the body
and row-wise Adagrad for the tables, BCE with logits, one ordered pass over the stream, NE / window NE /
eval NE / AUC."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data.dataset import Dataset
from .metrics import auc, normalized_entropy, window_ne
from .model import CTRModel
from .optim import body_lr_schedule, make_optimizers


def default_batch_size(n_train: int) -> int:
    """64, doubled for each doubling of the training part beyond 20,000 rows (at most 4,096): with the body's
    rate decaying over the pass, the sweep in docs/data.md finds 64 best on the three sets of up to 20,000
    rows and 256 best on ml-100k's 80,000, about 100–300 steps per pass."""
    doublings = max(0, int(math.floor(math.log2(max(n_train, 1) / 20_000))))
    return min(4096, 64 * 2**doublings)


@dataclass
class TrainConfig:
    examples: int
    batch_size: Optional[int] = None  # None: default_batch_size of the data's training part
    lr: float = 1e-3
    seed: int = 0
    progress: bool = True
    description: str = "train"
    start: int = 0  # first training row of the pass (rows wrap around the training part)
    embed_optimizer: str = "rowwise-adagrad"
    embed_lr: float = 0.1
    lr_schedule: str = "linear"  # the body rate: "linear" to zero over the pass, or "constant"


@dataclass
class TrainResult:
    window_ne: float
    train_ne: float
    eval_ne: float
    auc: float
    examples: int
    eval_examples: int
    passes: float
    seconds: float
    extra: dict = field(default_factory=dict)
    seen: Optional[tuple] = field(default=None, repr=False)  # (logits, labels) before each update, in order

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("seen")
        out.update(out.pop("extra"))
        return out


def logloss_step(optimizers, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """One optimiser step on the batch's log loss: what every model the project trains takes per batch."""
    loss = F.binary_cross_entropy_with_logits(logits, labels)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()


def batches(data: Dataset, start: int, stop: int, batch_size: int):
    """Contiguous (dense, cats, labels) tensors over rows [start, stop) of the training part, wrapping."""
    pos = start
    while pos < stop:
        a = pos % data.n_train
        b = min(a + batch_size, data.n_train, a + (stop - pos))
        yield (
            torch.from_numpy(np.array(data.dense[a:b])),
            torch.from_numpy(np.array(data.cats[a:b])),
            torch.from_numpy(np.array(data.labels[a:b])),
        )
        pos += b - a


def train(
    model: CTRModel,
    data: Dataset,
    cfg: TrainConfig,
    forward: Optional[Callable] = None,
    evaluate: bool = True,
    eval_forward: Optional[Callable] = None,
) -> TrainResult:
    """One ordered pass over `cfg.examples` training rows (wrapping if the data has fewer), the body's
    rate following `cfg.lr_schedule`.

    `forward(model, dense, cats, step)` returns logits (default: `model(dense, cats)`); searchers use it
    to sample a subnet per batch. Window NE is computed from the predictions made before each update.
    """
    from tqdm import tqdm

    if cfg.examples < 1:
        raise ValueError("examples must be at least 1")
    forward = forward or (lambda m, d, c, step: m(d, c))
    optimizers = make_optimizers(model, cfg.lr, cfg.embed_optimizer, cfg.embed_lr)
    batch_size = cfg.batch_size or default_batch_size(data.n_train)
    schedule = body_lr_schedule(optimizers, math.ceil(cfg.examples / batch_size), cfg.lr_schedule)
    seen_logits = torch.empty(cfg.examples)
    seen_labels = torch.empty(cfg.examples)
    model.train()
    t0 = time.perf_counter()
    done = 0
    with tqdm(
        total=cfg.examples,
        desc=cfg.description,
        unit="ex",
        disable=None if cfg.progress else True,
        leave=False,
        mininterval=0.5,
    ) as bar:
        for step, (dense, cats, labels) in enumerate(batches(data, cfg.start, cfg.start + cfg.examples, batch_size)):
            logits = forward(model, dense, cats, step)
            logloss_step(optimizers, logits, labels)
            schedule.step()
            n = len(labels)
            seen_logits[done : done + n] = logits.detach()
            seen_labels[done : done + n] = labels
            done += n
            bar.update(n)
    seconds = time.perf_counter() - t0
    result = TrainResult(
        window_ne(seen_logits, seen_labels),
        normalized_entropy(seen_logits, seen_labels),
        float("nan"),
        float("nan"),
        cfg.examples,
        0,
        cfg.examples / data.n_train,
        seconds,
        seen=(seen_logits, seen_labels),
    )
    if evaluate:
        result.eval_ne, result.auc, result.eval_examples = evaluate_tail(model, data, eval_forward)
    return result


def train_final(model: CTRModel, data: Dataset, fit: Dataset, cfg: TrainConfig) -> TrainResult:
    """The final trainer, shared by `rks train` and a search's final retrains: train on `fit` (the data, or
    its view less the validation slice: `Dataset.validation_view`), score the validation slice as `val_ne`
    when there is one, and the evaluation tail as `eval_ne` and `auc`."""
    result = train(model, fit, cfg)
    if fit is not data:
        result.extra.update(val_ne=result.eval_ne, val_auc=result.auc, val_examples=result.eval_examples)
        result.eval_ne, result.auc, result.eval_examples = evaluate_tail(model, data)
    return result


@torch.no_grad()
def evaluate_tail(model: CTRModel, data: Dataset, forward: Optional[Callable] = None, batch_size: int = 4096):
    """NE and AUC on the held-out evaluation tail."""
    forward = forward or (lambda m, d, c: m(d, c))
    model.eval()
    logits, labels = [], []
    for a in range(data.n_train, data.n, batch_size):
        b = min(a + batch_size, data.n)
        logits.append(
            forward(model, torch.from_numpy(np.array(data.dense[a:b])), torch.from_numpy(np.array(data.cats[a:b])))
        )
        labels.append(torch.from_numpy(np.array(data.labels[a:b])))
    model.train()
    logits, labels = torch.cat(logits), torch.cat(labels)
    return normalized_entropy(logits, labels), auc(logits.numpy(), labels.numpy()), len(labels)
