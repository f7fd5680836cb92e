"""How large a validation slice to choose on (`--val-fraction`): for K archs sampled from each set's blocks
space and its baseline, the final retrain (seed 0) at several fractions, and how well the slice's NE ranks
the models as the evaluation tail does (Kendall tau), the eval-NE regret of choosing the slice's best, and
the mean eval NE (a larger slice leaves fewer rows to train on). Needs ../shared/data.

    python benchmarks/bench_val_fraction.py [--sets criteo-8k,avazu-9k,ml-100k] [--models 10]
"""

import argparse
import statistics
from pathlib import Path

import torch

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.final import retrain
from rankitect_dsl.search.sampling.proxy_study import kendall_tau

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {
    "criteo-8k": ("spaces/rankitect_blocks.rks", f"criteo:{DATA}/criteo-8k/train.txt", None),
    "avazu-9k": ("spaces/avazu_blocks.rks", f"table:{DATA}/avazu-9k", "schemas/avazu-9k.json"),
    "ml-100k": ("spaces/ml100k_blocks.rks", f"table:{DATA}/ml-100k/ml-100k.inter", "schemas/ml-100k.json"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--models", type=int, default=10)
    ap.add_argument("--fractions", default="0.05,0.1,0.2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"{'set':10s} {'fraction':>8s} {'val rows':>8s} {'tau(val, eval)':>14s} {'regret':>8s} {'mean eval NE':>12s}")
    for name in args.sets.split(","):
        space_file, spec, schema = SETS[name]
        space = load_space(ROOT / space_file)
        data = load_data(spec, space, 1, str(ROOT / schema) if schema else None)
        archs = [space.baseline, *space.sample_many(args.models, 0)]
        for fraction in map(float, args.fractions.split(",")):
            scores = [retrain(space, a, data, [0], val_fraction=fraction) for a in archs]
            val, ev = [s["val_ne"] for s in scores], [s["eval_ne"] for s in scores]
            regret = ev[val.index(min(val))] - min(ev)
            rows = data.n_train - data.validation_view(fraction).n_train
            print(
                f"{name:10s} {fraction:>8g} {rows:>8,} {kendall_tau(val, ev):>14.3f} {regret:>8.4f} "
                f"{statistics.mean(ev):>12.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
