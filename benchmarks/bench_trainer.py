"""Examples per second through the trainer against a bare PyTorch loop on the same subnet over pre-made
tensors, side by side in one run (alternating, median of several rounds). Target ratio >= 0.8.

    python benchmarks/bench_trainer.py [--space spaces/dlrm.rks] [--examples 30000] [--rounds 3]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import TrainConfig, train
from rankitect_dsl.runtime.model import build_model
from rankitect_dsl.runtime.optim import make_optimizers


def bare_loop(model, dense, cats, labels, batch_size, lr):
    optimizers = make_optimizers(model, lr)  # the trainer's optimisers, so the loops alone are compared
    t0 = time.perf_counter()
    for a in range(0, len(labels), batch_size):
        logits = model(dense[a : a + batch_size], cats[a : a + batch_size])
        loss = F.binary_cross_entropy_with_logits(logits, labels[a : a + batch_size])
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/dlrm.rks")
    ap.add_argument("--examples", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    space = load_space(args.space)
    arch = space.baseline or space.sample(0)
    data = load_data("synthetic:0", space, args.examples)
    n = args.examples
    dense, cats, labels = (
        torch.from_numpy(data.dense[:n].copy()),
        torch.from_numpy(data.cats[:n].copy()),
        torch.from_numpy(data.labels[:n].copy()),
    )
    ours, bare = [], []
    for r in range(args.rounds):
        model = build_model(space, arch, data, r)
        result = train(model, data, TrainConfig(n, args.batch_size, progress=False), evaluate=False)
        ours.append(n / result.seconds)
        model = build_model(space, arch, data, r)
        bare.append(n / bare_loop(model, dense, cats, labels, args.batch_size, 1e-3))
        print(f"round {r}: trainer {ours[-1]:,.0f} ex/s, bare loop {bare[-1]:,.0f} ex/s")
    print(
        f"median trainer {statistics.median(ours):,.0f} ex/s, bare {statistics.median(bare):,.0f} ex/s, "
        f"ratio {statistics.median(ours) / statistics.median(bare):.3f}"
    )


if __name__ == "__main__":
    main()
