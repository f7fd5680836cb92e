"""Forward+backward step time at batch 512, measured side by side in one run:
(a) the supernet under a sampled arch's hard masks, (b) the exported subnet of that arch,
(c) the supernet with every mask on. Target: (a)/(b) <= 1.5 on rankitect.rks.

    python benchmarks/bench_supernet.py [--space spaces/rankitect.rks] [--archs 5] [--repeats 7]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from rankitect_dsl import load_space, transfer_weights


def step_time(fn, labels, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(fn(), labels)
        loss.backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/rankitect.rks")
    ap.add_argument("--archs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    torch.manual_seed(0)
    space = load_space(args.space)
    net = space.supernet()
    dense, sparse = space.example_inputs(args.batch, seed=0)
    labels = (torch.rand(args.batch) < 0.25).float()
    ratios = []
    print(f"{'arch':>4} {'supernet(arch) ms':>18} {'subnet ms':>10} {'ratio':>6}")
    for seed in range(args.archs):
        arch = space.sample(seed)
        sub = space.subnet(arch)
        transfer_weights(net, sub, arch)

        def masked(arch=arch):
            return net(dense, sparse, arch=arch)

        def standalone(sub=sub):
            return sub(dense, sparse)

        step_time(masked, labels, 2)  # warm-up
        step_time(standalone, labels, 2)
        a = step_time(masked, labels, args.repeats)
        b = step_time(standalone, labels, args.repeats)
        ratios.append(a / b)
        print(f"{seed:>4} {1000 * a:>18.2f} {1000 * b:>10.2f} {a / b:>6.2f}")
        net.zero_grad(set_to_none=True)
    c = step_time(lambda: net(dense, sparse), labels, max(2, args.repeats // 3))
    print(f"all masks on: {1000 * c:.1f} ms per step")
    print(f"(a)/(b) median {statistics.median(ratios):.3f}, max {max(ratios):.3f}; (c)/(b of last arch) {c / b:.1f}")


if __name__ == "__main__":
    main()
