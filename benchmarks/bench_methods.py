"""The paper's Figure 6 on our data: random, predictor, one-shot RL and DNAS on the same space, data and
FLOPs target, beside the production (DLRM) baseline. Each search runs as `rks search` with the flags the
docs give; its wall time is the command's and its examples are what it trained on (candidates' proxy
runs; the supernet's steps, and one-shot's co-trained baseline). Every winner and the baseline are then
retrained the same way (one pass of the training part, default batch, seeds 0–2) and scored on the
evaluation tail, which no search reads. Needs ../shared/data.

    python benchmarks/bench_methods.py [--sets criteo-8k,ml-100k] [--methods random,predictor,oneshot,dnas]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rankitect_dsl import Arch, load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.final import retrain
from rankitect_dsl.search.study_store import open_study

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TARGET = "0.95x"  # every method aims just under the baseline's FLOPs (docs/oneshot.md's recipe)
SETS = {
    "criteo-8k": {
        "space": "spaces/rankitect_blocks.rks",
        "data": ["--data", f"criteo:{DATA}/criteo-8k/train.txt"],
        "inplace": ["--batch-size", "64", "--examples", "32000"],
    },
    "ml-100k": {
        "space": "spaces/ml100k_blocks.rks",
        "data": ["--data", f"table:{DATA}/ml-100k/ml-100k.inter", "--schema", "schemas/ml-100k.json"],
        "inplace": ["--batch-size", "128", "--examples", "160000"],
    },
}
METHODS = {
    "random": ["--budget", "16"],
    "predictor": ["--budget", "16"],
    "oneshot": ["--penalty", "l1", "--alpha", "0.1", "--policy-lr", "0.005"],
    "dnas": [],
}


def search(name: str, method: str, folder: Path) -> dict:
    spec = SETS[name]
    storage = f"sqlite:///{folder}/{name}-{method}.db"
    extra = METHODS[method] + (spec["inplace"] if method in ("oneshot", "dnas") else [])
    cmd = [
        sys.executable, "-m", "rankitect_dsl.cli", "search", spec["space"], "--method", method,
        "--flops-target", TARGET, *spec["data"], *extra, "--retrain-seeds", "0", "--storage", storage, "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{name} {method}: {proc.stderr.strip()}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if method in ("oneshot", "dnas"):
        examples = summary["examples_processed"]
    else:
        store = open_study(storage)
        examples = sum(t.user_attrs.get("examples_processed", 0) for t in store.trials())
    return {"arch": Arch.from_dict(summary["best"]["arch"]), "seconds": seconds, "examples": examples}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="criteo-8k,ml-100k")
    ap.add_argument("--methods", default="random,predictor,oneshot,dnas")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="bench-methods-"))
    for name in args.sets.split(","):
        spec = SETS[name]
        space = load_space(ROOT / spec["space"])
        schema = spec["data"][3] if len(spec["data"]) > 2 else None
        data = load_data(spec["data"][1], space, 10**9, str(ROOT / schema) if schema else None)
        rows = [("DLRM baseline", space.baseline, None, None)]
        for method in args.methods.split(","):
            found = search(name, method, folder)
            rows.append((method, found["arch"], found["seconds"], found["examples"]))
            print(f"{name} {method}: searched in {found['seconds']:.0f} s", file=sys.stderr, flush=True)
        base_flops = space.flops(space.baseline)
        print(f"\n{name}, {space.name}.rks, FLOPs target {TARGET} of {base_flops:,}; eval NE over seeds {seeds}")
        print(f"{'method':14s} {'eval NE':>16s} {'FLOPs':>16s} {'search s':>9s} {'examples':>11s}")
        for label, arch, seconds, examples in rows:
            scores = retrain(space, arch, data, seeds)
            spread = statistics.stdev(scores["eval_ne_seeds"]) if len(seeds) > 1 else 0.0
            flops = space.flops(arch)
            print(
                f"{label:14s} {scores['eval_ne']:.4f} ± {spread:.4f} {flops:>9,} ({flops / base_flops:.2f}x) "
                f"{'' if seconds is None else f'{seconds:.0f}':>9s} {'' if examples is None else f'{examples:,}':>11s}",
                flush=True,
            )


if __name__ == "__main__":
    main()
