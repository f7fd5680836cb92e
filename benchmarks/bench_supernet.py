"""The supernet's cost against the exported subnet, side by side in one run (batch 512, fwd+bwd):

1. hard path: the supernet under sampled archs (`arch=`) against each arch's exported subnet (target <= 1.5);
2. all-on: every mask on, seconds per step and effective GFLOP/s (FlopCounterMode forward FLOPs x 3 for
   fwd+bwd) beside the exported baseline subnet's, without and with activation checkpointing (target: the
   all-on rate >= 0.6x the subnet's);
3. memory: peak RSS of a fresh process running two all-on steps, without and with activation checkpointing
   (target: under 4 GB with it).

    python benchmarks/bench_supernet.py [--space spaces/rankitect_hand.rks] [--archs 4] [--repeats 3]
        [--device cuda]   (on an accelerator: parts 1 and 2, and examples/s; benchmarks/gpu_check.sh runs it)
"""

import argparse
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rankitect_dsl import load_space, transfer_weights


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_time(fn, labels, repeats):
    """Median seconds of a fwd+bwd step, after one warm-up step (the first step allocates); on an accelerator
    the step's queued work is waited for."""
    times = []
    for k in range(repeats + 1):
        synchronize(labels.device)
        t0 = time.perf_counter()
        F.binary_cross_entropy_with_logits(fn(), labels).backward()
        synchronize(labels.device)
        if k:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def forward_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def peak_rss_gb(space_path: str, batch: int, checkpoint: bool) -> float:
    """Peak RSS of a fresh process that builds the supernet and runs two all-on fwd+bwd steps."""
    probe = [sys.executable, __file__, "--space", space_path, "--batch", str(batch), "--probe", str(int(checkpoint))]
    return float(subprocess.run(probe, check=True, capture_output=True, text=True).stdout.strip())


def probe(space_path: str, batch: int, checkpoint: bool) -> None:
    space = load_space(space_path)
    net = space.supernet(checkpoint_activations=checkpoint)
    dense, sparse = space.example_inputs(batch, seed=0)
    for _ in range(2):
        net(dense, sparse).sum().backward()
    print(high_water_rss_kb() / 1e6)


def high_water_rss_kb() -> int:
    """This process's peak RSS. Linux keeps ru_maxrss across fork and exec (a probe started from a big
    parent would report the parent's peak), so read the memory map's own high-water mark."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/rankitect_hand.rks")
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--probe", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe is not None:
        return probe(args.space, args.batch, bool(args.probe))
    device = torch.device(args.device)
    torch.manual_seed(0)
    space = load_space(args.space)
    net = space.supernet().to(device)
    dense, sparse = (t.to(device) for t in space.example_inputs(args.batch, seed=0))
    labels = (torch.rand(args.batch) < 0.25).float().to(device)

    print(f"1. hard path against the exported subnet ({args.space}, batch {args.batch}, {device})")
    print(f"{'arch':>4} {'supernet(arch) ms':>18} {'subnet ms':>10} {'ratio':>6}")
    ratios = []
    for seed in range(args.archs):
        arch = space.sample(seed)
        sub = space.subnet(arch).to(device)
        transfer_weights(net, sub, arch)
        a = step_time(lambda arch=arch: net(dense, sparse, arch=arch), labels, args.repeats)
        b = step_time(lambda sub=sub: sub(dense, sparse), labels, args.repeats)
        ratios.append(a / b)
        print(f"{seed:>4} {1000 * a:>18.2f} {1000 * b:>10.2f} {a / b:>6.2f}")
        net.zero_grad(set_to_none=True)
    print(f"hard/subnet median {statistics.median(ratios):.2f}, max {max(ratios):.2f}")

    print("\n2. all masks on against the exported baseline subnet")
    base = space.baseline or space.sample(0)
    sub = space.subnet(base).to(device)
    sub_flops = 3 * forward_flops(lambda: sub(dense, sparse))
    t_sub = step_time(lambda: sub(dense, sparse), labels, 3 * args.repeats)
    rate_sub = sub_flops / t_sub / 1e9
    all_flops = 3 * forward_flops(lambda: net(dense, sparse))
    print(f"{'model':>26} {'s/step':>8} {'GFLOP/step':>11} {'GFLOP/s':>8} {'rate ratio':>10} {'examples/s':>11}")
    print(
        f"{'baseline subnet':>26} {t_sub:>8.3f} {sub_flops / 1e9:>11.2f} {rate_sub:>8.1f} {1.0:>10.2f} "
        f"{args.batch / t_sub:>11,.0f}"
    )
    for label, checkpoint in (("all-on", False), ("all-on, checkpointed", True)):
        net.checkpoint_activations = checkpoint
        t_all = step_time(lambda: net(dense, sparse), labels, args.repeats)
        rate = all_flops / t_all / 1e9
        print(
            f"{label:>26} {t_all:>8.3f} {all_flops / 1e9:>11.2f} {rate:>8.1f} {rate / rate_sub:>10.2f} "
            f"{args.batch / t_all:>11,.0f}"
        )
        net.zero_grad(set_to_none=True)
    net.checkpoint_activations = False

    if device.type != "cpu":
        return
    print("\n3. peak RSS of a fresh process, two all-on steps")
    for label, checkpoint in (("without checkpointing", False), ("with checkpointing", True)):
        print(f"{label:>26}: {peak_rss_gb(args.space, args.batch, checkpoint):.2f} GB")


if __name__ == "__main__":
    main()
