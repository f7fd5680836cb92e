"""Data parallelism's cost, side by side in one run: examples/s of the one-shot and DNAS supernet steps in 1 and
in K torchrun processes on the same global batch, and the share of a K-process step spent in collectives.

Each configuration runs in its own `torchrun --standalone` launch (gloo on the CPU, NCCL with --device cuda),
warms up, then times `--steps` steps between barriers. The share is measured in a second timed pass in which
DDP's gradient all-reduce goes through a comm hook that runs it synchronously (so it is timed, not
overlapped with the backward pass) and the searches' own gathers are timed around their calls; it is an
upper bound on what the overlapped all-reduce costs.

On a machine with 2 shared cores no speed-up is expected: the two ranks split the same two cores. The figure
to watch there is the collective share; the speed-up is for a machine with a core set or a GPU per rank.

    python benchmarks/bench_ddp.py [--space spaces/rankitect_blocks.rks] [--nproc 2] [--batch-size 512]
        [--steps 40] [--device cpu] [--out docs/results/bench_ddp.txt]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("oneshot", "dnas")


def worker(args) -> None:
    """One rank of one configuration: print rank 0's timings as one JSON line."""
    import torch
    import torch.distributed as dist

    from rankitect_dsl import load_space
    from rankitect_dsl.data.loading import load_data
    from rankitect_dsl.runtime import distributed
    from rankitect_dsl.runtime.engine import start
    from rankitect_dsl.search.inplace.dnas import DNASConfig, DNASSearch
    from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

    world = start(args.device)
    space = load_space(args.space)
    examples = (args.warmup + 2 * args.steps) * args.batch_size
    data = load_data(args.data, space, examples)
    target = float(space.flops(space.baseline))
    common = dict(batch_size=args.batch_size, warmup=0.0, checkpoint_every=10**9, device=args.device)
    folder = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    if args.worker == "oneshot":
        search = OneShotSearch(
            space, data, space.baseline, OneShotConfig(examples, target, **common), folder / "c", folder / "l"
        )
    else:
        search = DNASSearch(
            space, data, space.baseline, DNASConfig(examples, target, **common), folder / "c", folder / "l"
        )

    def steps(n: int) -> float:
        search.engine.synchronize()
        world.barrier()
        t0 = time.perf_counter()
        for _ in range(n):
            search.train_step(search.step)
            search.step += 1
        search.engine.synchronize()
        world.barrier()
        return time.perf_counter() - t0

    steps(args.warmup)
    seconds = steps(args.steps)
    comm = [0.0]
    if world.distributed:

        def timed(fn):
            def call(*a, **k):
                search.engine.synchronize()
                t0 = time.perf_counter()
                out = fn(*a, **k)
                search.engine.synchronize()
                comm[0] += time.perf_counter() - t0
                return out

            return call

        def allreduce_hook(_, bucket):
            buffer = bucket.buffer()
            timed(dist.all_reduce)(buffer)
            buffer /= world.size
            future = torch.futures.Future()
            future.set_result(buffer)
            return future

        for net in {id(m): m for m in (search.net, getattr(search, "reference_net", search.net))}.values():
            net.register_comm_hook(None, allreduce_hook)
        distributed.World.gather_rows = timed(distributed.World.gather_rows)
        distributed.World.mean_ = timed(distributed.World.mean_)
        hooked = steps(args.steps)
    else:
        hooked = seconds
    if world.main:
        print(json.dumps({
            "method": args.worker, "nproc": world.size, "seconds_per_step": seconds / args.steps,
            "examples_per_s": args.steps * args.batch_size / seconds, "collective_share": comm[0] / hooked,
        }))  # fmt: skip


def launch(args, method: str, nproc: int) -> dict:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), __file__,
           "--worker", method, *forwarded(args)]  # fmt: skip
    threads = max(1, (os.cpu_count() or 1) // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=1800)
    if proc.returncode != 0:
        sys.exit(f"{method} on {nproc} processes failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def forwarded(args) -> list:
    return ["--space", args.space, "--data", args.data, "--batch-size", str(args.batch_size), "--steps",
            str(args.steps), "--warmup", str(args.warmup), "--device", args.device]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(ROOT / "spaces/rankitect_blocks.rks"))
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", help="also write the table here")
    ap.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    lines = [
        f"bench_ddp: {Path(args.space).name}, {args.data}, global batch {args.batch_size}, {args.steps} timed steps "
        f"after {args.warmup}, device {args.device}, {os.cpu_count()} cores",
        f"{'method':<8} {'procs':>5} {'s/step':>8} {'examples/s':>11} {'vs 1 proc':>9} {'collective share':>17}",
    ]
    for method in METHODS:
        one = launch(args, method, 1)
        for r in (one, launch(args, method, args.nproc)):
            lines.append(
                f"{method:<8} {r['nproc']:>5} {r['seconds_per_step']:>8.4f} {r['examples_per_s']:>11,.0f} "
                f"{r['examples_per_s'] / one['examples_per_s']:>8.2f}x {100 * r['collective_share']:>16.1f}%"
            )
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
