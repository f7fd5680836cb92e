"""DNAS on rankitect_blocks.rks (paper 3.2.3, 4.2.4):

- Memory: one soft step (per-example Gumbel-softmax masks, backward through W and θ) at batch 512, with and
  without activation checkpointing; peak RSS of a fresh process and seconds per step.
- FLOPs control: with the CE and λ = 1, targets 0.5x and 2x the baseline's FLOPs; where γ(θ) lands.
- Convergence (the paper reports ~26x fewer SGD steps for DNAS): both searchers on FLOPs alone (no NE
  term), target 0.5x and 2x. One-shot runs once for `--oneshot-steps`; its count is the step from which
  γ(θ) stays within 5% of the target to the end. DNAS anneals its temperature over the run, so a run's
  length is part of its schedule: its count is the shortest of runs of 25, 50, 100, … steps whose γ(θ)
  ends within 5% and stays there for every longer run. Same batch (256), same data; the median over
  seeds, and their ratio.

    python benchmarks/bench_dnas.py [--parts memory,control,convergence] [--data synthetic]
        [--examples 200000] [--oneshot-steps 800] [--lengths 25,50,100,200] [--seeds 0,1,2]
"""

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.inplace.dnas import DNASConfig, DNASSearch
from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

SPACE = Path(__file__).resolve().parent.parent / "spaces" / "rankitect_blocks.rks"
WITHIN = 0.05
RL_BATCH, REPLAY_K = OneShotConfig.rl_batch, OneShotConfig.replay_k


def memory_probe(checkpointing: bool, batch: int) -> dict:
    """Run in a fresh process: RSS before the first step and at its peak over three steps."""
    space = load_space(SPACE)
    data = load_data("synthetic", space, 4 * batch)
    cfg = DNASConfig(
        3 * batch, float(space.flops(space.baseline)), checkpoint_activations=checkpointing, batch_size=batch
    )
    folder = Path(tempfile.mkdtemp(prefix="bench-dnas-mem-"))
    search = DNASSearch(space, data, space.baseline, cfg, folder / "s.pt", folder / "s.jsonl")
    search.resume()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds = []
    for step in range(3):
        t0 = time.perf_counter()
        search.train_step(step)
        search.step += 1
        seconds.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"before_mb": before / 1024, "peak_mb": peak / 1024, "step_s": min(seconds[1:])}


def run_dnas(space, data, steps, target, folder, seed, **kw) -> tuple:
    cfg = DNASConfig(steps * 256, target, batch_size=256, checkpoint_every=10**9, seed=seed, **kw)
    search = DNASSearch(space, data, space.baseline, cfg, folder / "d.pt", folder / "d.jsonl")
    (folder / "d.pt").unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = search.run()
    return result, time.perf_counter() - t0


def oneshot_gammas(space, data, steps, target, folder, seed) -> tuple:
    """γ(θ)'s FLOPs after every step of a FLOPs-only one-shot search (α = 1, no warm-up)."""
    cfg = OneShotConfig(
        steps * 256, target, alpha=1.0, ne_weight=0.0, warmup=0.0, batch_size=256, checkpoint_every=10**9, seed=seed
    )
    search = OneShotSearch(space, data, space.baseline, cfg, folder / "o.pt", folder / "o.jsonl")
    (folder / "o.pt").unlink(missing_ok=True)
    flops = []
    t0 = time.perf_counter()
    search.run(lambda step, total, record: flops.append(space.cost.evaluate(search.policy.most_likely().tolist())[0]))
    return flops, time.perf_counter() - t0


def settled_at(values, target) -> int | None:
    """The number of steps after which every later value (values[k]: after step k + 1) is within 5%."""
    bad = [k for k, v in enumerate(values) if abs(v / target - 1) > WITHIN]
    if not bad:
        return 1
    return None if bad[-1] == len(values) - 1 else bad[-1] + 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema")
    ap.add_argument("--oneshot-steps", type=int, default=800)
    ap.add_argument("--lengths", default="25,50,100,200", help="DNAS run lengths in steps")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the convergence comparison")
    ap.add_argument("--parts", default="memory,control,convergence")
    ap.add_argument("--examples", type=int, default=200_000, help="examples of each FLOPs-control run")
    ap.add_argument("--probe", choices=["on", "off"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    if args.probe:
        print(json.dumps(memory_probe(args.probe == "on", args.batch)))
        return

    parts = args.parts.split(",")
    space = load_space(SPACE)
    lengths = [int(x) for x in args.lengths.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="bench-dnas-"))
    if "memory" in parts:
        memory(args)
    if "control" in parts:
        control(args, space, folder)
    if "convergence" in parts:
        convergence(args, space, lengths, folder)


def memory(args) -> None:
    print(f"== memory: one soft DNAS step at batch {args.batch} (fresh process each) ==")
    for mode in ("off", "on"):
        out = subprocess.run(
            [sys.executable, __file__, "--probe", mode, "--batch", str(args.batch)],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"activation checkpointing {mode:3s}: peak RSS {m['peak_mb']:,.0f} MB "
            f"({m['peak_mb'] - m['before_mb']:,.0f} MB above the built model), {m['step_s']:.2f} s/step"
        )


def control(args, space, folder) -> None:
    base = float(space.flops(space.baseline))
    print(f"\n== FLOPs control: CE + λ·E|F(a) - c|/c, λ = 1, {args.examples:,} examples, default flags ==")
    data = load_data(args.data, space, args.examples, args.schema)  # the data `rks search --examples` loads
    for multiple in (0.5, 2.0):
        cfg = DNASConfig(args.examples, multiple * base, checkpoint_every=10**9)
        search = DNASSearch(space, data, space.baseline, cfg, folder / "c.pt", folder / "c.jsonl")
        (folder / "c.pt").unlink(missing_ok=True)
        t0 = time.perf_counter()
        r = search.run()
        print(
            f"target {multiple}x: γ(θ) at {r['flops_ratio']:.3f}x ({100 * r['target_gap']:.1f}% off), "
            f"{r['steps']} steps of {search.batch_size}, {time.perf_counter() - t0:.0f} s"
        )


def convergence(args, space, lengths, folder) -> None:
    base = float(space.flops(space.baseline))
    seeds = [int(x) for x in args.seeds.split(",")]
    data = load_data(args.data, space, 256 * max(args.oneshot_steps, *lengths), args.schema)
    print(f"\n== convergence on FLOPs alone: steps until γ(θ) is within {100 * WITHIN:.0f}% of the target ==")
    for multiple in (0.5, 2.0):
        target = multiple * base
        counts = {"DNAS": [], "RL": []}
        for seed in seeds:
            ends = []
            for steps in lengths:
                r, _ = run_dnas(space, data, steps, target, folder, seed, ne_weight=0.0)
                ends.append(r["flops_ratio"] / multiple)
            ok = [abs(e - 1) <= WITHIN for e in ends]
            dnas_steps = next((lengths[k] for k in range(len(lengths)) if all(ok[k:])), None)
            flops, _ = oneshot_gammas(space, data, args.oneshot_steps, target, folder, seed)
            rl_steps = settled_at(flops, target)
            counts["DNAS"].append(dnas_steps or math.inf)
            counts["RL"].append(rl_steps or math.inf)
            print(
                f"  target {multiple}x seed {seed}: DNAS runs end at "
                f"{', '.join(f'{e * multiple:.3f}x' for e in ends)} -> {dnas_steps or 'never'} steps; "
                f"one-shot ends at {flops[-1] / base:.3f}x, within 5% from step {rl_steps or 'never'}"
            )
        dnas, rl = statistics.median(counts["DNAS"]), statistics.median(counts["RL"])
        print(
            f"target {multiple}x, median over seeds {seeds}: DNAS {dnas:g} steps, one-shot RL {rl:g} steps "
            f"({rl / RL_BATCH * (1 + REPLAY_K):g} policy updates); RL/DNAS = {rl / dnas:.1f}x"
        )


if __name__ == "__main__":
    main()
