"""One-shot's defaults against the FLOPs target (issue: hold it within 10% at 0.5x, 1x and 2x on real and
synthetic data without drifting on NE noise). Each run is `rks search SPACE --method oneshot` with the
flags of one configuration and `--retrain-seeds 0`; the table gives γ(θ)'s FLOPs ratio to the target and
how often γ(θ) changed over the last half of the policy's updates (a policy that drifts on NE noise keeps
changing its mind). Runs two searches at a time. Needs ../shared/data for the real sets.

    python benchmarks/bench_oneshot_defaults.py [--sets synthetic,criteo-8k,ml-100k] [--targets 0.5,1,2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {
    "synthetic": ("spaces/rankitect_blocks.rks", ["--data", "synthetic:0"], 32000),
    "criteo-8k": ("spaces/rankitect_blocks.rks", ["--data", f"criteo:{DATA}/criteo-8k/train.txt"], 32000),
    "ml-100k": (
        "spaces/ml100k_blocks.rks",
        ["--data", f"table:{DATA}/ml-100k/ml-100k.inter", "--schema", "schemas/ml-100k.json"],
        160000,
    ),
}
CONFIGS = {
    "fixed-0.01": ["--alpha", "0.01", "--policy-lr", "0.05"],  # the old defaults
    "fixed-0.1-slow": ["--alpha", "0.1", "--policy-lr", "0.005"],  # the old real-data recipe
    "default": [],
}


def one(name, target, config, folder):
    space, data, examples = SETS[name]
    tag = f"{name}-{target}-{abs(hash(config)) % 10**6}"
    cmd = [
        sys.executable, "-m", "rankitect_dsl.cli", "search", space, "--method", "oneshot", "--flops-target",
        f"{target}x", "--examples", str(examples), *data, *CONFIGS[config], "--retrain-seeds", "0",
        "--storage", f"sqlite:///{folder}/{tag}.db", "--json",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        return name, target, config, None, proc.stderr.strip()[-300:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return name, target, config, summary, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="synthetic,criteo-8k,ml-100k")
    ap.add_argument("--targets", default="0.5,1,2")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-oneshot-defaults-"))
    jobs = [
        (n, float(t), c) for n in args.sets.split(",") for t in args.targets.split(",") for c in args.configs.split(",")
    ]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: one(*j, folder), jobs))
    print(f"{'set':10s} {'target':>6s} {'configuration':16s} {'γ(θ)/target':>11s} {'off':>6s} {'alpha end':>9s}")
    for name, target, config, summary, error in results:
        if summary is None:
            print(f"{name:10s} {target:>5g}x {config:16s} failed: {error}")
            continue
        ratio = summary["gamma"]["flops"] / summary["flops_target"]
        alpha = summary.get("alpha_end")
        print(
            f"{name:10s} {target:>5g}x {config:16s} {ratio:>11.3f} {100 * abs(ratio - 1):>5.1f}% "
            f"{'' if alpha is None else f'{alpha:.3g}':>9s}",
            flush=True,
        )


if __name__ == "__main__":
    main()
