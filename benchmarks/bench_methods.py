"""The paper's Figure 6 on our data, as a user runs it: random, predictor, one-shot RL and DNAS, each one
`rks search` with default flags (a budget, an example count and the FLOPs target the method needs), on the
grown space (4.2.1) and the blocks space (4.2.4) of each shared set. Each search ends as every search does:
its finalists and the production baseline retrained by the final trainer (seeds 0-2), the winner chosen
on the validation slice, both quoted on the evaluation tail, which no search reads. The table gives each
winner's eval NE (mean ± standard deviation over the seeds) beside the baseline's, the paired gain
(winner − baseline per seed, mean and standard error), the FLOPs ratio, `beats_baseline` (on the
validation slice), the search's wall time and the examples it trained on. Needs ../shared/data.

    python benchmarks/bench_methods.py [--sets criteo-8k,avazu-9k,ml-100k] [--spaces grown,blocks]
        [--methods random,predictor,oneshot,dnas] [--jobs 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
TARGET = "0.95x"  # every method aims just under the baseline's FLOPs; the loop methods are also capped at 1x
SETS = {
    "criteo-8k": {
        "spaces": {"grown": "spaces/rankitect.rks", "blocks": "spaces/rankitect_blocks.rks"},
        "data": ["--data", f"criteo:{DATA}/criteo-8k/train.txt"],
        "examples": 32000,
    },
    "avazu-9k": {
        "spaces": {"grown": "spaces/avazu_rankitect.rks", "blocks": "spaces/avazu_blocks.rks"},
        "data": ["--data", f"table:{DATA}/avazu-9k", "--schema", "schemas/avazu-9k.json"],
        "examples": 32000,
    },
    "ml-100k": {
        "spaces": {"grown": "spaces/ml100k_rankitect.rks", "blocks": "spaces/ml100k_blocks.rks"},
        "data": ["--data", f"table:{DATA}/ml-100k/ml-100k.inter", "--schema", "schemas/ml-100k.json"],
        "examples": 160000,
    },
}
METHODS = {  # a row: the method's name, then `rks search` flags; a variant's name is METHOD-SOMETHING
    "local": ["--budget", "30"],
    "random": ["--budget", "16"],
    "predictor": ["--budget", "16"],
    "evolution": ["--budget", "16"],
    "oneshot": [],
    "dnas": [],
    "predictor-random": ["--budget", "16", "--first-round", "random"],
    "evolution-random": ["--budget", "16", "--first-round", "random"],
    "oneshot-incumbent": ["--start", "incumbent"],
    "dnas-incumbent": ["--start", "incumbent"],
    "local-slice25": ["--budget", "60", "--val-fraction", "0.25"],
    "local-z3": ["--budget", "60", "--val-fraction", "0.25", "--accept-z", "3"],
}


def search(name: str, kind: str, row_name: str, folder: Path) -> dict:
    spec = SETS[name]
    method = row_name.split("-")[0]
    extra = METHODS[row_name] + (["--examples", str(spec["examples"])] if method in ("oneshot", "dnas") else [])
    if method != "local":  # local moves under the cap (the baseline's FLOPs) and has no target
        extra += ["--flops-target", TARGET]
    cmd = [
        sys.executable, "-m", "rankitect_dsl.cli", "search", spec["spaces"][kind], "--method", method,
        *spec["data"], *extra,
        "--storage", f"sqlite:///{folder}/{name}-{kind}-{row_name}.db", "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    if method in ("oneshot", "dnas"):
        examples = summary["examples_processed"]
    else:
        from rankitect_dsl.search.store.study import open_study

        store = open_study(summary["storage"])
        examples = sum(t.user_attrs.get("examples_processed", t.user_attrs.get("examples", 0)) for t in store.trials())
    final = summary["final"]
    examples += sum(r["examples"] * len(r["seeds"]) for r in [final["baseline"], *final["finalists"]])
    return {"summary": summary, "seconds": seconds, "examples": examples}


def row(label: str, r: dict, base: dict, extra: str = "") -> str:
    spread = statistics.stdev(r["eval_ne_seeds"]) if len(r["eval_ne_seeds"]) > 1 else 0.0
    gains = [a - b for a, b in zip(r["eval_ne_seeds"], base["eval_ne_seeds"])]
    gain = statistics.mean(gains)
    se = statistics.stdev(gains) / len(gains) ** 0.5 if len(gains) > 1 and r is not base else 0.0
    ratio = r["flops"] / base["flops"]
    paired = "" if r is base else f"{gain:+.4f} ± {se:.4f}"
    return f"{label:16s} {r['eval_ne']:.4f} ± {spread:.4f} {paired:>17s} {ratio:>6.2f}x {extra}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--spaces", default="grown,blocks")
    ap.add_argument("--methods", default="local,random,predictor,evolution,oneshot,dnas")
    ap.add_argument("--jobs", type=int, default=2, help="searches at a time, one thread each")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-methods-"))
    jobs = [(n, k, m) for n in args.sets.split(",") for k in args.spaces.split(",") for m in args.methods.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        found = dict(zip(jobs, pool.map(lambda j: search(*j, folder), jobs)))
    for name in args.sets.split(","):
        for kind in args.spaces.split(","):
            space = SETS[name]["spaces"][kind]
            print(
                f"\n{name}, {space} ({kind}), FLOPs target {TARGET}; eval NE over 3 seeds, paired gain vs the baseline"
            )
            print(f"{'method':16s} {'eval NE':>15s} {'gain ± s.e.':>17s} {'FLOPs':>7s} beats  search s   examples")
            printed = set()  # the baselines' seeds printed: local judges its finalists on fresh seeds
            for method in args.methods.split(","):
                out = found[(name, kind, method)]
                if "error" in out:
                    print(f"{method:16s} failed: {out['error']}")
                    continue
                final = out["summary"]["final"]
                seeds = tuple(final["baseline"]["seeds"])
                if seeds not in printed:
                    label = f"baseline {seeds[0]}-{seeds[-1]}"
                    print(row(label, final["baseline"], final["baseline"]))
                    printed.add(seeds)
                beats = str(out["summary"]["beats_baseline"]).lower()
                extra = f"{beats:>5s} {out['seconds']:>9.0f} {out['examples']:>10,}  ({final['winner']['origin']})"
                print(row(method, final["winner"], final["baseline"], extra), flush=True)


if __name__ == "__main__":
    main()
