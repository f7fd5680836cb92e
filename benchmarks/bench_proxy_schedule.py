"""The proxy study before and after the proxies decay their rate: Kendall tau of the early-stop and the
weight-sharing proxies (constant body rate, as before; linear decay over the proxy's budget, as now)
against the final retrain's validation NE, on the same K sampled models of each set's grown space.
Needs ../shared/data.

    python benchmarks/bench_proxy_schedule.py [--sets criteo-8k,ml-100k] [--models 12] [--plot-dir DIR]
"""

import argparse
from pathlib import Path

from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.sampling.proxy_study import plot_proxy_study, run_proxy_study

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
SETS = {
    "criteo-8k": ("spaces/rankitect.rks", f"criteo:{DATA}/criteo-8k/train.txt", None),
    "ml-100k": ("spaces/ml100k_rankitect.rks", f"table:{DATA}/ml-100k/ml-100k.inter", "schemas/ml-100k.json"),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--plot-dir")
    args = ap.parse_args()
    for name in args.sets.split(","):
        space_file, spec, schema = SETS[name]
        space = load_space(ROOT / space_file)
        data = load_data(spec, space, 1, str(ROOT / schema) if schema else None)
        fit_rows = data.validation_view(0.1).n_train
        study = run_proxy_study(
            space, data, args.models, None, fit_rows, progress=False, schedules=("constant", "linear")
        )
        print(f"\n{name}, {space_file}: {args.models} models; truth: {study['truth']}")
        print(f"{'budget':>8} {'schedule':>9} {'early-stop tau':>15} {'weight-sharing tau':>19}")
        for r in study["rows"]:
            print(f"{r['budget']:>8,} {r['schedule']:>9} {r['early_stop_tau']:>15.3f} {r['weight_sharing_tau']:>19.3f}")
        if args.plot_dir:
            plot_proxy_study(study, str(Path(args.plot_dir) / f"{name}-proxy-schedule.png"))


if __name__ == "__main__":
    main()
