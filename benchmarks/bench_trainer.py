"""Examples per second through the training engine (`Engine.fit`: batches from the data set, the device,
the schedule, the kept predictions, progress) against a bare PyTorch loop on the same subnet over pre-made
tensors with the same optimisers, side by side in one run (alternating, after a warm-up round, median of
several rounds). Target ratio >= 0.9.

    python benchmarks/bench_trainer.py [--space spaces/dlrm.rks] [--examples 30000] [--rounds 5] [--device auto]
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import Engine, TrainConfig
from rankitect_dsl.runtime.model import build_model
from rankitect_dsl.runtime.optim import make_optimizers


def bare_loop(model, dense, cats, labels, batch_size, lr, engine):
    model.to(engine.device)
    dense, cats, labels = dense.to(engine.device), cats.to(engine.device), labels.to(engine.device)
    optimizers = make_optimizers(model, lr)  # the engine's optimisers, so the loops alone are compared
    t0 = time.perf_counter()
    for a in range(0, len(labels), batch_size):
        logits = model(dense[a : a + batch_size], cats[a : a + batch_size])
        loss = F.binary_cross_entropy_with_logits(logits, labels[a : a + batch_size])
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
    engine.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--space", default="spaces/dlrm.rks")
    ap.add_argument("--examples", type=int, default=30000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="auto")
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
    engine = Engine(args.device)
    cfg = TrainConfig(n, args.batch_size, progress=False, device=args.device)
    ours, bare = [], []
    for r in range(args.rounds + 1):  # round 0 warms both up (allocations, kernels) and is not counted
        model = build_model(space, arch, data, r)
        result = engine.fit(model, data, cfg, evaluate=False)
        model = build_model(space, arch, data, r)
        bare_seconds = bare_loop(model, dense, cats, labels, args.batch_size, 1e-3, engine)
        if r == 0:
            continue
        ours.append(n / result.seconds)
        bare.append(n / bare_seconds)
        print(f"round {r}: engine {ours[-1]:,.0f} ex/s, bare loop {bare[-1]:,.0f} ex/s ({engine.device})")
    print(
        f"median engine {statistics.median(ours):,.0f} ex/s, bare {statistics.median(bare):,.0f} ex/s, "
        f"ratio {statistics.median(ours) / statistics.median(bare):.3f}"
    )


if __name__ == "__main__":
    main()
