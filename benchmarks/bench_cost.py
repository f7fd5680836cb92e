"""The cost model's speed and the expected-FLOPs approximation, measured in one run.

    python benchmarks/bench_cost.py [--space spaces/rankitect_hand.rks] [--archs 10000]

Prints: `flops_many` on N archs against N calls of `space.flops` (ratio), and `expected_flops` under the
sampler's distribution against the Monte Carlo mean of exact FLOPs over 20,000 sampled archs.
"""

import argparse
import time

import numpy as np

from rankitect_dsl import load_space


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/rankitect_hand.rks")
    ap.add_argument("--archs", type=int, default=10000)
    args = ap.parse_args()
    space = load_space(args.space)
    t0 = time.perf_counter()
    space.flops_many([space.sample(0)])  # compiles the cost functions before timing
    print(f"build + compile cost model: {time.perf_counter() - t0:.2f} s")
    archs = space.sample_many(args.archs, seed=0)
    vectors = np.array([space.encode(a) for a in archs])
    space.flops_many(vectors[:10])
    t0 = time.perf_counter()
    batch = space.flops_many(vectors)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [space.cost.evaluate(v)[0] for v in vectors]
    t_single = time.perf_counter() - t0
    assert batch.tolist() == single
    print(
        f"flops_many on {args.archs} archs: {t_batch:.3f} s; {args.archs} calls of flops: {t_single:.3f} s; "
        f"speed-up {t_single / t_batch:.1f}x"
    )
    probs = space.sampler_probs()
    expected = float(space.expected_flops(probs))
    mean = float(space.flops_many(space.sample_many(20000, seed=1)).astype(np.float64).mean())
    print(
        f"expected_flops {expected:,.0f} vs mean of 20,000 sampled archs {mean:,.0f}: "
        f"error {100 * (expected - mean) / mean:+.2f}%"
    )


if __name__ == "__main__":
    main()
