"""Search power on planted data: `planted:SEED` labels come from a teacher arch of the shipped space a seeded
walk away from the production model (`rankitect_dsl/data/planted.py`). The baseline and the teacher are
trained by the final trainer (seeds 0-2, every training row, as the refit) to measure the attainable gap on
the tail; then each method searches with default flags and its winner's refit is quoted. Per method: the
winner's eval NE, the share of the teacher-vs-baseline gap it recovers (when that gap is beyond two paired
standard errors), and that share per CPU-minute of its search (one thread each). The NE of the true click
probabilities on the tail is printed as the floor no model can beat. A benchmark of search power, not the
target: the goal is on real data (`bench_methods.py`).

    python benchmarks/bench_planted.py [--seeds 0,1] [--methods local,predictor,evolution,random] [--jobs 2]
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
SPACE = "spaces/rankitect.rks"
EXAMPLES = 20000
METHODS = {
    "local": ["--budget", "30"],
    "predictor": ["--budget", "16", "--flops-target", "0.95x"],
    "evolution": ["--budget", "16", "--flops-target", "0.95x"],
    "random": ["--budget", "16", "--flops-target", "0.95x"],
}


def gap(seed: int) -> dict:
    """The baseline's and the teacher's eval NE per seed, each trained on every training row."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from rankitect_dsl.data.planted import PlantedSource
    from rankitect_dsl.search.final import retrain
    from rankitect_dsl.space import load_space

    space = load_space(ROOT / SPACE)
    source = PlantedSource(seed)
    data = source.make(space, *_rows(space))
    teacher = source.teacher(space)
    tail, p = data.labels[data.n_train :], source.truth[data.n_train :]
    rate = tail.mean()
    loss = -np.mean(tail * np.log(p) + (1 - tail) * np.log(1 - p))
    floor = loss / -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))
    out = {"teacher_flops": space.flops(teacher) / space.flops(space.baseline), "floor": float(floor)}
    for label, arch in (("baseline", space.baseline), ("teacher", teacher)):
        out[label] = retrain(space, arch, data, range(3), val_fraction=0.0)["eval_ne_seeds"]
    return out


def _rows(space) -> tuple:
    """(training rows, tail rows) as `load_data` makes them for a search with the default slice."""
    from rankitect_dsl.data.loading import load_data

    data = load_data("synthetic", space, EXAMPLES, val_fraction=0.1)
    return data.n_train, data.n - data.n_train


def search(seed: int, method: str, folder: Path) -> dict:
    cmd = [
        sys.executable, "-m", "rankitect_dsl.cli", "search", SPACE, "--method", method, "--data", f"planted:{seed}",
        "--examples" if method == "local" else "--proxy-examples", str(EXAMPLES), *METHODS[method],
        "--storage", f"sqlite:///{folder}/{seed}-{method}.db", "--json",
    ]  # fmt: skip
    t0 = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip()[-300:]}
    return {"summary": json.loads(proc.stdout.strip().splitlines()[-1]), "seconds": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--jobs", type=int, default=2, help="searches at a time, one thread each")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    folder = Path(tempfile.mkdtemp(prefix="bench-planted-"))
    gaps = {seed: gap(seed) for seed in seeds}
    jobs = [(seed, m) for seed in seeds for m in methods]
    with ThreadPoolExecutor(args.jobs) as pool:
        found = dict(zip(jobs, pool.map(lambda j: search(*j, folder), jobs)))
    for seed in seeds:
        g = gaps[seed]
        base, teacher = statistics.mean(g["baseline"]), statistics.mean(g["teacher"])
        diffs = [b - t for b, t in zip(g["baseline"], g["teacher"])]
        se = statistics.stdev(diffs) / len(diffs) ** 0.5
        print(
            f"\nplanted:{seed} on {SPACE}, {EXAMPLES:,} rows: baseline eval NE {base:.4f}, "
            f"teacher ({g['teacher_flops']:.2f}x FLOPs) {teacher:.4f}; attainable gap {base - teacher:+.4f} "
            f"± {se:.4f} (baseline − teacher, paired); the true probabilities' NE, the floor, {g['floor']:.4f}"
        )
        print(f"{'method':10s} {'eval NE':>8s} {'gain':>8s} {'share':>7s} {'CPU min':>8s} {'share/min':>9s}  winner")
        for method in methods:
            out = found[(seed, method)]
            if "error" in out:
                print(f"{method:10s} failed: {out['error']}")
                continue
            won = out["summary"]["final"]["winner"]
            gain = base - won["eval_ne"]
            share = gain / (base - teacher) if base - teacher > 2 * se else float("nan")
            minutes = out["seconds"] / 60
            ratio = won["flops"] / out["summary"]["final"]["baseline"]["flops"]
            print(
                f"{method:10s} {won['eval_ne']:>8.4f} {gain:>+8.4f} {share:>7.2f} {minutes:>8.1f} "
                f"{share / minutes:>9.3f}  {won['origin']} ({ratio:.2f}x FLOPs)",
                flush=True,
            )


if __name__ == "__main__":
    main()
