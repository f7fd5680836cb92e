"""The one training engine: every model the project trains — `rks train`, both proxies, the weight-sharing
pretraining, the final retrains, the one-shot and DNAS supernets — trains here. The engine owns the device
(every tensor it makes lives there), the model's placement, the optimisers (Adam for the body, row-wise
Adagrad for the embedding tables), the batch schedules (contiguous passes, and the row-indexed steps of a
resumable run), RNG state, atomic checkpoints with resume, the per-step log and progress.

A pass is BCE with logits over an ordered stream, scored as NE / window NE / eval NE / AUC. Nothing on the
hot path reads a value back to the host: the pass's predictions stay on the device until it ends.

Under torchrun the engine is data parallel (`distributed.py`) and the trainers above it do not change: each
rank reads its own slice of every global batch, the model trains under DDP, the predictions are gathered
over the global batch, and only rank 0 writes the log and the checkpoint."""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import RksError
from ..core.files import atomic_write
from ..data.dataset import Dataset
from . import DEVICES, distributed
from .checkpoints import load_checkpoint, save_checkpoint
from .metrics import auc, normalized_entropy, window_ne
from .model import CTRModel
from .optim import body_lr_schedule, make_optimizers
from .progress import Progress


def resolve_device(name: str = "auto") -> torch.device:
    """`auto`: CUDA when this machine has it, else the CPU. Asking for CUDA where there is none is one clear
    error, not a traceback from the first tensor moved."""
    if name not in DEVICES:
        raise RksError(f"unknown device `{name}`; choose {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise RksError(
            f"--device cuda: no CUDA device is available here (torch {torch.__version__} is {built}); "
            "use --device cpu, or auto to take CUDA only where it is"
        )
    return torch.device(name)


def start(device: str = "auto") -> distributed.World:
    """What a command that trains does first: refuse a device this machine lacks before any work, and join
    torchrun's process group when torchrun started this process (a world of one otherwise)."""
    return distributed.init(resolve_device(device))


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
    device: str = "auto"


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


def logloss_step(optimizers, logits: torch.Tensor, labels: torch.Tensor, weight: Optional[float] = None) -> None:
    """One optimiser step on the batch's log loss: what every model the project trains takes per batch. The
    loss is the batch's mean, or with `weight` its sum times `weight` (a rank's share of a global batch)."""
    if weight is None:
        loss = F.binary_cross_entropy_with_logits(logits, labels)
    else:
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") * weight
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in optimizers:
        opt.step()


class Engine:
    """Training on one device, or on this rank's device of a torchrun world. `fit` is one ordered pass (every
    trainer's); `run_resumable` is the step loop of a run that checkpoints and resumes (the in-place
    searches'); the rest are the pieces both use."""

    def __init__(self, device: str | torch.device = "auto"):
        self.world = distributed.current()
        self.device = self.world.device(device if isinstance(device, torch.device) else resolve_device(device))

    def place(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(self.device)

    def wrap(self, module: torch.nn.Module, find_unused: bool) -> torch.nn.Module:
        """The placed `module` as it trains here: under DDP in a world of several ranks (`distributed.wrap`)."""
        return distributed.wrap(self.place(module), self.world, find_unused)

    def logloss_step(self, optimizers, logits: torch.Tensor, labels: torch.Tensor, n: int) -> None:
        """`logloss_step` on this rank's slice of an n-row global batch: in several ranks the slice's loss sum
        times ranks / n, so that DDP's average of the ranks' gradients is the gradient of the global mean
        even when the slices differ in size (a rank whose slice is empty read one row, weighted 0)."""
        if not self.world.distributed:
            return logloss_step(optimizers, logits, labels)
        lo, hi = self.world.bounds(n)
        logloss_step(optimizers, logits, labels, self.world.size / n if hi > lo else 0.0)

    def gather(self, n: int, *tensors: torch.Tensor) -> tuple:
        """Per-row tensors of this rank's slice as the n rows of the global batch (themselves in one process);
        the rows a rank read for an empty slice are left out."""
        if not self.world.distributed:
            return tensors
        lo, hi = self.world.bounds(n)
        rows = torch.stack([t.detach().float()[: hi - lo] for t in tensors], 1)
        return tuple(self.world.gather_rows(rows, n).unbind(1))

    def tensor(self, array) -> torch.Tensor:
        return torch.from_numpy(np.asarray(array)).to(self.device, non_blocking=True)

    def synchronize(self) -> None:
        """Wait for the device's queued work (timings on CUDA measure work done, not work queued)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- batch schedules ------------------------------------------------------------------------
    def batches(self, data: Dataset, start: int, stop: int, batch_size: int):
        """Contiguous global batches over rows [start, stop) of the training part, wrapping: (dense, cats,
        labels) of this rank's slice of each, and the global batch's row count n. A rank whose slice of a
        short last batch is empty reads one row, which `logloss_step` weights 0."""
        pos = start
        while pos < stop:
            a = pos % data.n_train
            b = min(a + batch_size, data.n_train, a + (stop - pos))
            lo, hi = self.world.bounds(b - a)
            rows = slice(a + lo, a + max(hi, lo + 1))
            yield (
                self.tensor(np.array(data.dense[rows])),
                self.tensor(data.categorical(rows)),
                self.tensor(np.array(data.labels[rows])),
                b - a,
            )
            pos += b - a

    def row_batch(self, data: Dataset, step: int, batch_size: int):
        """This rank's slice of step k's mini-batch of a resumable run, training rows k·B … (k+1)·B − 1,
        wrapping, so a resumed run reads exactly the rows an uninterrupted one would."""
        lo, hi = self.world.bounds(batch_size)
        rows = np.arange(step * batch_size + lo, step * batch_size + hi) % data.n_train
        return self.tensor(data.dense[rows]), self.tensor(data.categorical(rows)), self.tensor(data.labels[rows])

    # -- one pass ---------------------------------------------------------------------------------
    def fit(
        self,
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
        to sample a subnet per batch, and it gets the model as it trains (under DDP in several ranks). Window
        NE is computed from the predictions made before each update, kept on the device until the pass ends."""
        if cfg.examples < 1:
            raise ValueError("examples must be at least 1")
        net = self.wrap(model, find_unused=forward is not None)
        forward = forward or (lambda m, d, c, step: m(d, c))
        optimizers = make_optimizers(model, cfg.lr, cfg.embed_optimizer, cfg.embed_lr)
        batch_size = cfg.batch_size or default_batch_size(data.n_train)
        schedule = body_lr_schedule(optimizers, math.ceil(cfg.examples / batch_size), cfg.lr_schedule)
        seen_logits = torch.empty(cfg.examples, device=self.device)
        seen_labels = torch.empty(cfg.examples, device=self.device)
        model.train()
        t0 = time.perf_counter()
        done = 0
        with Progress(cfg.examples, cfg.description, "ex", cfg.progress) as bar:
            for step, (dense, cats, labels, n) in enumerate(
                self.batches(data, cfg.start, cfg.start + cfg.examples, batch_size)
            ):
                logits = forward(net, dense, cats, step)
                self.logloss_step(optimizers, logits, labels, n)
                schedule.step()
                logits, labels = self.gather(n, logits, labels)
                seen_logits[done : done + n] = logits.detach()
                seen_labels[done : done + n] = labels
                done += n
                bar.update(n)
        self.synchronize()
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
            seen=(seen_logits.cpu(), seen_labels.cpu()),
        )
        if evaluate:
            result.eval_ne, result.auc, result.eval_examples = self.evaluate_tail(model, data, eval_forward)
        return result

    @torch.no_grad()
    def evaluate_tail(self, model: CTRModel, data: Dataset, forward: Optional[Callable] = None, batch_size: int = 4096):
        """NE and AUC on the held-out evaluation tail."""
        self.place(model)
        forward = forward or (lambda m, d, c: m(d, c))
        model.eval()
        logits, labels = [], []
        for a in range(data.n_train, data.n, batch_size):
            b = min(a + batch_size, data.n)
            dense, cats = self.tensor(np.array(data.dense[a:b])), self.tensor(data.categorical(slice(a, b)))
            logits.append(forward(model, dense, cats))
            labels.append(self.tensor(np.array(data.labels[a:b])))
        model.train()
        logits, labels = torch.cat(logits).cpu(), torch.cat(labels).cpu()
        return normalized_entropy(logits, labels), auc(logits.numpy(), labels.numpy()), len(labels)

    # -- random state and checkpoints ---------------------------------------------------------------
    def rng_state(self) -> dict:
        state = {"torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def run_resumable(
        self, job, checkpoint: Path, log: Path, every: int, progress: Progress, on_checkpoint=None, on_step=None
    ):
        """Run `job` from where its checkpoint left it to `job.steps`: one `job.train_step(step)` per step (a
        JSON-able record, appended to the JSON-lines `log` and passed to `on_step(step, steps, record)`); an
        atomic checkpoint every `every` steps and at the end, each followed by `on_checkpoint(job)`. `job`
        gives `step`, `steps`, `seconds`, `train_step`, `state_dict` and `load_state_dict`; checkpoints load
        with `weights_only=True`, so a file placed at the checkpoint's path can give wrong numbers at worst,
        never run code."""
        run = ResumableRun(job, Path(checkpoint), Path(log), self.world.main)
        run.resume()
        progress.update(job.step)
        started = time.perf_counter()
        with open(run.log, "a") if self.world.main else contextlib.nullcontext() as out:
            while job.step < job.steps:
                record = job.train_step(job.step)
                if out is not None:
                    out.write(json.dumps(record) + "\n")
                job.step += 1
                progress.update(1)
                if on_step is not None:
                    on_step(job.step, job.steps, record)
                if job.step % every == 0 or job.step == job.steps:
                    self.synchronize()
                    job.seconds += time.perf_counter() - started
                    started = time.perf_counter()
                    if out is not None:
                        out.flush()
                        save_checkpoint(run.checkpoint, job.state_dict())
                        if on_checkpoint is not None:
                            on_checkpoint(job)
        job.seconds += time.perf_counter() - started


def start_over(checkpoint: Path, log: Path) -> str:
    return f"delete {checkpoint} and {log} to start the search over"


class ResumableRun:
    """A run's checkpoint and log: load the one, cut the other back to the steps the checkpoint holds. Every
    rank loads the checkpoint; only the writer (rank 0) touches the log."""

    def __init__(self, job, checkpoint: Path, log: Path, writer: bool = True):
        self.job, self.checkpoint, self.log, self.writer = job, checkpoint, log, writer
        self.start_over = start_over(checkpoint, log)

    def resume(self) -> None:
        if not self.checkpoint.exists():
            if self.writer:
                self.log.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(self.log, "")
            return
        self.job.load_state_dict(load_checkpoint(self.checkpoint, self.start_over))
        self.job.resumed_from = self.job.step
        if self.writer:
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
            if step < self.job.step:
                kept.append(line)
        return kept


def train(model: CTRModel, data: Dataset, cfg: TrainConfig, forward=None, evaluate=True, eval_forward=None):
    """One pass of `cfg` on the engine of `cfg.device` (`Engine.fit`)."""
    return Engine(cfg.device).fit(model, data, cfg, forward, evaluate, eval_forward)


def train_final(model: CTRModel, data: Dataset, fit: Dataset, cfg: TrainConfig) -> TrainResult:
    """The final trainer, shared by `rks train` and a search's final retrains: train on `fit` (the data, or
    its view less the validation slice: `Dataset.validation_view`), score the validation slice as `val_ne`
    when there is one, and the evaluation tail as `eval_ne` and `auc`."""
    engine = Engine(cfg.device)
    result = engine.fit(model, fit, cfg)
    if fit is not data:
        result.extra.update(val_ne=result.eval_ne, val_auc=result.auc, val_examples=result.eval_examples)
        result.eval_ne, result.auc, result.eval_examples = engine.evaluate_tail(model, data)
    return result


def evaluate_tail(model: CTRModel, data: Dataset, forward: Optional[Callable] = None, device: str = "auto"):
    """NE and AUC on the held-out evaluation tail (`Engine.evaluate_tail`)."""
    return Engine(device).evaluate_tail(model, data, forward)
