"""Predictor against random search at the same budget on the bundled synthetic data: the best proxy
(window) NE each finds, per seed and the median over seeds, side by side in one run. Each seed runs
both methods from the same first (random) round; `--jobs` runs seeds in parallel processes, one
thread each. `--recheck K` retrains each method's best arch with K more initialisation seeds and prints
its mean window NE over them and the search's own seed: whether the winner holds up or was a lucky draw.

    python benchmarks/bench_search.py [--budget 40] [--round-size 8] [--proxy-examples 24000] [--seeds 3]
        [--jobs 3] [--recheck 2]
"""

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import torch

from rankitect_dsl import Arch, load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.registry import searcher_class
from rankitect_dsl.search.sampling.loop import Search, SearchConfig
from rankitect_dsl.search.sampling.proxies import EarlyStopProxy
from rankitect_dsl.search.store.study import StudyStore

METHODS = ("random", "predictor")


def run_seed(args, seed: int, folder: str, threads: int) -> dict:
    torch.set_num_threads(threads)
    space = load_space(args.space)
    data = load_data(args.data, space, args.proxy_examples)
    out = {}
    for method in METHODS:
        t0 = time.perf_counter()
        store = StudyStore(f"sqlite:///{folder}/{method}-{seed}.db", "bench")
        cfg = SearchConfig(
            method,
            args.budget,
            proxy_examples=args.proxy_examples,
            round_size=args.round_size,
            seed=seed,
            progress=False,
        )
        proposer = searcher_class(method)(None).proposer()
        Search(space, EarlyStopProxy(space, data, seed=0), store, cfg, proposer).run()
        done = store.completed()
        best = min(done, key=lambda t: t.user_attrs["window_ne"])
        value = best.user_attrs["window_ne"]
        later = statistics.median(t.user_attrs["window_ne"] for t in done if t.user_attrs["round"] > 0)
        seconds = time.perf_counter() - t0
        arch = Arch.from_json(best.user_attrs["arch"])
        rechecked = statistics.mean(
            [value]
            + [
                EarlyStopProxy(space, data, seed=s)(arch, args.proxy_examples).window_ne
                for s in range(1, args.recheck + 1)
            ]
        )
        out[method] = (value, later, rechecked, seconds)
        print(
            f"seed {seed} {method:>9}: best window NE {value:.4f}, median after the first round {later:.4f}, "
            f"best arch over {args.recheck + 1} init seeds {rechecked:.4f} ({seconds:.0f} s)",
            flush=True,
        )
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/rankitect_hand.rks")
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--round-size", type=int, default=8)
    ap.add_argument("--proxy-examples", type=int, default=24000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--recheck", type=int, default=2)
    ap.add_argument("--data", default="synthetic:0")
    args = ap.parse_args()
    folder = tempfile.mkdtemp()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run_seed, [args] * len(seeds), seeds, [folder] * len(seeds), [1] * len(seeds)))
    else:
        results = [run_seed(args, seed, folder, torch.get_num_threads()) for seed in seeds]
    print(
        f"\nbudget {args.budget}, round size {args.round_size}, {args.proxy_examples} proxy examples; "
        f"studies in {folder}"
    )
    print(
        f"seed   best: random  predictor   median after round 1: random  predictor   "
        f"best arch over {args.recheck + 1} init seeds: random  predictor"
    )
    for seed, r in zip(seeds, results):
        print(
            f"{seed:>4}         {r['random'][0]:.4f}     {r['predictor'][0]:.4f}                         "
            f"{r['random'][1]:.4f}     {r['predictor'][1]:.4f}                                 "
            f"{r['random'][2]:.4f}     {r['predictor'][2]:.4f}"
        )
    med = {m: statistics.median(r[m][0] for r in results) for m in METHODS}
    typical = {m: statistics.median(r[m][1] for r in results) for m in METHODS}
    held = {m: statistics.median(r[m][2] for r in results) for m in METHODS}
    wins = sum(r["predictor"][0] < r["random"][0] for r in results)
    print(
        f"median  {med['random']:.4f}  {med['predictor']:.4f}   predictor better on {wins} of {len(seeds)} seeds; "
        f"{'predictor' if med['predictor'] < med['random'] else 'random'} better on the median by "
        f"{abs(med['random'] - med['predictor']):.4f}"
    )
    print(
        f"typical candidate after round 1 (median of the seeds' medians): random {typical['random']:.4f}, "
        f"predictor {typical['predictor']:.4f}"
    )
    print(
        f"best arch over {args.recheck + 1} init seeds (median of the seeds): random {held['random']:.4f}, "
        f"predictor {held['predictor']:.4f}"
    )


if __name__ == "__main__":
    main()
