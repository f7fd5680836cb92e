"""The sweep behind `rks train`'s defaults: the DLRM baseline of each shared data set (and the synthetic
default) trained one ordered pass under each setting, eval NE as the mean of 3 seeds; prints each
setting's gap to the best on every set. The defaults must come within 0.5% of the best everywhere.

    python benchmarks/sweep_training.py [--sets criteo-8k,avazu-9k,ml-100k,synthetic] [--seeds 0,1,2]
"""

import argparse
import statistics
from pathlib import Path

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import TrainConfig, train
from rankitect_dsl.runtime.model import build_model

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SETS = {
    "criteo-8k": ("spaces/dlrm.rks", f"criteo:{DATA}/criteo-8k/train.txt", None, 6400),
    "avazu-9k": ("spaces/avazu_dlrm.rks", f"table:{DATA}/avazu-9k", "schemas/avazu-9k.json", 7199),
    "ml-100k": ("spaces/ml100k_dlrm.rks", f"table:{DATA}/ml-100k/ml-100k.inter", "schemas/ml-100k.json", 80000),
    "synthetic": ("spaces/dlrm.rks", "synthetic", None, 20000),
}
# (label, TrainConfig fields); the first is `rks train`'s default
SETTINGS = [
    ("default: tables row-wise Adagrad 0.1, body Adam 1e-3 decayed linearly, batch by size", {}),
    ("body rate constant (the old schedule)", {"lr_schedule": "constant"}),
    ("body Adam 2e-3 decayed linearly", {"lr": 2e-3}),
    ("tables row-wise Adagrad 0.05", {"embed_lr": 0.05}),
    ("tables row-wise Adagrad 0.2", {"embed_lr": 0.2}),
    ("body Adam 3e-3 decayed linearly", {"lr": 3e-3}),
    ("batch 32", {"batch_size": 32}),
    ("batch 64", {"batch_size": 64}),
    ("batch 128", {"batch_size": 128}),
    ("batch 256", {"batch_size": 256}),
    ("batch 512", {"batch_size": 512}),
    (
        "all Adam 1e-3, constant (the first default)",
        {"embed_optimizer": "adam", "embed_lr": 1e-3, "lr_schedule": "constant"},
    ),
    ("all Adam 3e-3", {"embed_optimizer": "adam", "embed_lr": 3e-3, "lr": 3e-3}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    table = {}
    for key in args.sets.split(","):
        path, spec, schema, n = SETS[key]
        space = load_space(path)
        data = load_data(spec, space, n, schema)
        for label, fields in SETTINGS:
            nes = []
            for seed in seeds:
                model = build_model(space, space.baseline, data, seed)
                cfg = TrainConfig(n, seed=seed, progress=False, **fields)
                nes.append(train(model, data, cfg).eval_ne)
            table[key, label] = (statistics.mean(nes), statistics.pstdev(nes))
            print(f"{key:<10} {label:<84} {table[key, label][0]:.4f} ±{table[key, label][1]:.4f}", flush=True)
    print("\ngap of each setting to the best setting on each set (eval NE, %):")
    keys = args.sets.split(",")
    print(f"{'setting':<84} " + " ".join(f"{k:>10}" for k in keys))
    for label, _ in SETTINGS:
        gaps = [100 * (table[k, label][0] / min(table[k, lab][0] for lab, _ in SETTINGS) - 1) for k in keys]
        print(f"{label:<84} " + " ".join(f"{g:>9.2f}%" for g in gaps))


if __name__ == "__main__":
    main()
