"""Data parallelism on PyTorch's own engine: a process started by `torchrun` joins the process group torchrun
set up (gloo on the CPU, NCCL on CUDA with one device per local rank) and every model the engine trains is
wrapped in `DistributedDataParallel`. Nothing here launches processes: torchrun does, on one machine
(`--standalone --nproc-per-node K`) or several (`--nnodes N --rdzv-endpoint HOST:PORT`).

Every rank runs the same command on the same global batches and reads its own contiguous slice of each;
DDP averages the gradients, so K ranks take the step one process would take on the global batch. What the
searches compute from a batch beyond the gradient (NE, rewards) is gathered over the global batch first,
so every rank holds the same numbers and makes the same draws. Rank 0 alone writes files and the study.

`RKS_DDP_CHECK=N` all-gathers, every N steps, checksums of the drawn arch and of the parameters, and stops
with one error naming the ranks and values when they differ: ranks that drew their own archs otherwise
train on silently, and end off (the DARTS-under-DDP failure reported as microsoft/nni#5013)."""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

from ..core.errors import RksError

CHECK_ENV = "RKS_DDP_CHECK"
TIMEOUT_ENV = "RKS_DDP_TIMEOUT"  # seconds a collective waits for the other ranks before failing
TIMEOUT_SECONDS = 1800
CLOSE_SECONDS = 60  # how long a rank that is done waits for the others at exit


@dataclass(frozen=True)
class World:
    """This process's place among the ranks: one process is rank 0 of a world of size 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: its local GPU (`cuda:LOCAL_RANK`) for CUDA, else `device`."""
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    # -- the batch's slices ------------------------------------------------------------------------
    def bounds(self, n: int, rank: Optional[int] = None) -> tuple[int, int]:
        """Rows [lo, hi) of an n-row global batch that `rank` (default: this one) reads: contiguous, in rank
        order, sizes differing by at most one."""
        rank = self.rank if rank is None else rank
        return n * rank // self.size, n * (rank + 1) // self.size

    def require_even(self, batch_size: int) -> None:
        """The in-place searches average per-rank means, which is the global mean only for equal slices."""
        if batch_size % self.size:
            raise RksError(
                f"--batch-size {batch_size} does not split evenly over {self.size} ranks: give a multiple of "
                f"{self.size}, so every rank reads the same number of rows of each global batch"
            )

    # -- collectives ---------------------------------------------------------------------------------
    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Average `tensor` over the ranks, in place (a gradient, before the optimiser steps on it)."""
        if self.distributed:
            dist.all_reduce(tensor)
            tensor /= self.size
        return tensor

    def mean(self, value: torch.Tensor) -> float:
        """A scalar's mean over the ranks, on the host."""
        return float(self.mean_(value.detach().clone().reshape(1))[0])

    def gather_rows(self, local: torch.Tensor, n: int) -> torch.Tensor:
        """The global batch's rows of a per-row tensor from every rank's slice (`bounds(n)`), in order."""
        if not self.distributed:
            return local
        width = -(-n // self.size)
        padded = local.new_zeros((width, *local.shape[1:]))
        padded[: len(local)] = local
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        sizes = [hi - lo for lo, hi in (self.bounds(n, rank) for rank in range(self.size))]
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    # -- the agreement check ---------------------------------------------------------------------------
    def check_every(self) -> int:
        """The steps between agreement checks (`RKS_DDP_CHECK`), 0 when off or in one process."""
        raw = os.environ.get(CHECK_ENV, "")
        if not self.distributed or raw in ("", "0"):
            return 0
        try:
            every = int(raw)
        except ValueError:
            every = 0
        if every < 1:
            raise RksError(f"{CHECK_ENV}={raw!r}: give the steps between checks, a whole number from 1 (every step)")
        return every

    def check_agreement(self, step: int, values: dict) -> None:
        """Stop with one error when the ranks hold different `values` (name → checksum) at `step`."""
        mine = {k: _digest(v) for k, v in values.items()}
        everyone = [None] * self.size
        dist.all_gather_object(everyone, mine)
        differ = [k for k in mine if len({str(theirs[k]) for theirs in everyone}) > 1]
        if differ:
            detail = "; ".join(
                f"{k}: " + ", ".join(f"rank {r} {theirs[k]}" for r, theirs in enumerate(everyone)) for k in differ
            )
            raise RksError(
                f"{CHECK_ENV}: the ranks disagree at step {step} on {', '.join(differ)} ({detail}); every rank must "
                "draw the same arch and hold the same weights: a rank that draws from its own seed trains another model"
            )


def _digest(value) -> str:
    """A short checksum of a tensor, a list of tensors or a JSON-able value."""
    if isinstance(value, torch.Tensor):
        value = [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
        h = hashlib.sha256()
        for v in value:
            h.update(v.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
        return h.hexdigest()[:12]
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


_WORLD = World()
_ABANDONED = False


def current() -> World:
    """The world the engine trains in now."""
    return _WORLD


def launched() -> bool:
    """Whether torchrun (or another launcher setting its variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> World:
    """Join torchrun's process group once (NCCL for CUDA, gloo on the CPU); one process stays a world of one."""
    global _WORLD
    if not launched() or _WORLD.distributed:
        return _WORLD
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RksError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set: start the ranks with "
            "torchrun (docs/scale-out.md)"
        )
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    timeout = timedelta(seconds=int(os.environ.get(TIMEOUT_ENV, TIMEOUT_SECONDS)))
    dist.init_process_group(backend, rank=world.rank, world_size=world.size, timeout=timeout)
    atexit.register(_close)
    _WORLD = world
    return world


def _close() -> None:
    """Wait for every rank, then leave the process group, before the interpreter ends: a gloo group still open
    when a rank exits can abort it ("terminate called without an active exception") after its work is done.
    After a failure (`abandon`) there is nothing to wait for: torchrun ends the other ranks."""
    if not dist.is_initialized() or _ABANDONED:
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timedelta(seconds=CLOSE_SECONDS))
        else:
            dist.barrier()
        dist.destroy_process_group()
    except RuntimeError:  # a rank that failed or hangs: exit anyway, torchrun reports it
        pass


def abandon() -> None:
    """This rank failed: exit without waiting for the others."""
    global _ABANDONED
    _ABANDONED = True


def part() -> None:
    """Every rank, together: end the process group now and go on as a world of one. Rank 0 runs what
    follows alone and the others end at once — none waits in a barrier at exit for work of unknown length
    (NCCL's watchdog would abort one that outlasts its timeout)."""
    global _WORLD
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    _WORLD = World()


def wrap(module: torch.nn.Module, world: World, find_unused: bool) -> torch.nn.Module:
    """`module` under DDP in a world of several ranks, itself in a world of one. A supernet that runs only its
    sampled arch's parameters needs `find_unused=True` (without it DDP fails at step 1 waiting for the
    gradients of the others); `static_graph` is never set, because the graph changes with the arch."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [world.local_rank] if next(module.parameters()).device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused)


def exec_torchrun(argv: list, nproc: int) -> None:
    """`--nproc K`: replace this process by torchrun running the same `rks` command line in K ranks on this
    machine, each with a share of the cores. A rank started so is already launched and goes on. For several
    machines, run torchrun yourself (docs/scale-out.md)."""
    if launched():
        return
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *torchrun, "-m", "rankitect_dsl.cli", *rest])
