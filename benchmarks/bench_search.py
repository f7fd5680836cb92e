"""Predictor against random search at the same budget on the bundled synthetic data: the best proxy
(window) NE each finds, per seed and the median over seeds, side by side in one run.

    python benchmarks/bench_search.py [--space spaces/rankitect.rks] [--budget 30] [--seeds 3] [--first-seed 0]
"""
import argparse
import statistics
import tempfile
import time

from rankitect_dsl import load_space
from rankitect_dsl.proxies import EarlyStopProxy
from rankitect_dsl.search import Search, SearchConfig
from rankitect_dsl.study_store import StudyStore
from rankitect_dsl.trainer import load_data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/rankitect.rks")
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--round-size", type=int, default=6)
    ap.add_argument("--proxy-examples", type=int, default=8000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--data", default="synthetic:0")
    args = ap.parse_args()
    space = load_space(args.space)
    data = load_data(args.data, space, args.proxy_examples)
    folder = tempfile.mkdtemp()
    best = {"random": [], "predictor": []}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for method in ("random", "predictor"):
            t0 = time.perf_counter()
            store = StudyStore(f"sqlite:///{folder}/{method}-{seed}.db", "bench")
            cfg = SearchConfig(method, args.budget, proxy_examples=args.proxy_examples, round_size=args.round_size,
                               seed=seed, progress=False)
            search = Search(space, EarlyStopProxy(space, data, seed=0), store, cfg)
            search.run()
            value = min(t.user_attrs["window_ne"] for t in store.completed())
            best[method].append(value)
            print(f"seed {seed} {method:>9}: best window NE {value:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    r, p = statistics.median(best["random"]), statistics.median(best["predictor"])
    print(f"median best window NE over {args.seeds} seeds, budget {args.budget}: random {r:.4f}, predictor {p:.4f} "
          f"({'predictor better' if p < r else 'random better'} by {abs(r - p):.4f})")


if __name__ == "__main__":
    main()
