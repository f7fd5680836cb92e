"""The one-shot search's figures on our data (paper 3.2.2, Appendix A):

- Figure 8: over one supernet run, the variance of NE_batch(a) and of NE%(a) over the sampled steps (after
  the warm-up), side by side; the in-place baseline takes the batch's difficulty out of the reward.
- Figure 10: the reward (moving mean over 50 steps) of on-policy and on/off-policy at equal supernet steps,
  and the step at which each first reaches a fixed reward level; a PNG of both curves.
- FLOPs control: with α = 1 and targets 0.5x and 2x the baseline's FLOPs, where γ(θ) lands.

    python benchmarks/bench_oneshot.py [--data synthetic] [--schema S] [--steps 1200] [--plot fig10.png]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rankitect_dsl import load_space
from rankitect_dsl.core.files import figure, save_figure
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

SPACE = Path(__file__).resolve().parent.parent / "spaces" / "rankitect_blocks.rks"


def run(space, data, examples, folder, **kw):
    cfg = OneShotConfig(examples, kw.pop("target", float(space.flops(space.baseline))), batch_size=256, **kw)
    search = OneShotSearch(space, data, space.baseline, cfg, folder / "s.pt", folder / "s.jsonl")
    (folder / "s.pt").unlink(missing_ok=True)
    t0 = time.perf_counter()
    result = search.run()
    records = [json.loads(x) for x in (folder / "s.jsonl").read_text().splitlines()]
    return result, records, time.perf_counter() - t0, search.warmup_steps


def moving(values, window=50):
    out = np.full(len(values), np.nan)
    c = np.cumsum(np.insert(values, 0, 0.0))
    out[window - 1 :] = (c[window:] - c[:-window]) / window
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--schema")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--plot", default="oneshot_fig10.png")
    args = ap.parse_args()
    space = load_space(SPACE)
    examples = 256 * args.steps
    data = load_data(args.data, space, examples, args.schema)
    base = space.flops(space.baseline)
    folder = Path(tempfile.mkdtemp(prefix="bench-oneshot-"))
    curves = {}
    for policy in ("on", "on-off"):
        result, records, seconds, warm = run(space, data, examples, folder, policy=policy, alpha=args.alpha)
        sampled = [r for r in records if r["step"] >= warm and "reward" in r]
        rewards = np.array([r["reward"] for r in sampled])
        curves[policy] = (np.array([r["step"] for r in sampled]), moving(rewards))
        if policy == "on-off":
            ne = np.array([r["ne_batch"] for r in sampled])
            pct = np.array([r["ne_pct"] for r in sampled])
            print(f"Figure 8 ({args.data}, {len(sampled)} sampled steps after the warm-up):")
            print(f"  variance of NE_batch(a) {ne.var():.3e}   std {ne.std():.4f}")
            print(f"  variance of NE%(a)      {pct.var():.3e}   std {pct.std():.4f}")
            print(f"  ratio {ne.var() / pct.var():.1f}x: NE% is the less noisy reward")
        print(
            f"policy {policy:<6}: {result['policy_updates']:>6,} policy updates, γ(θ) at {result['flops_ratio']:.2f}x "
            f"the baseline's FLOPs, {seconds:.0f} s"
        )
    level = min(np.nanmin(c) for _, c in curves.values()) * 0.5 + max(np.nanmax(c) for _, c in curves.values()) * 0.5
    print(f"Figure 10: first step whose 50-step mean reward reaches {level:.4f}:")
    for policy, (steps, curve) in curves.items():
        hit = np.nonzero(curve <= level)[0]
        print(f"  {policy:<6} step {steps[hit[0]] if len(hit) else 'never'}")
    fig, ax = figure()
    for policy, (steps, curve) in curves.items():
        ax.plot(steps, curve, label=f"{policy}-policy")
    ax.axhline(level, color="grey", linestyle=":", label="reward level")
    ax.set_xlabel("supernet step")
    ax.set_ylabel("reward (50-step mean; lower is better)")
    ax.set_title(f"one-shot search on rankitect_blocks, {args.data}")
    ax.legend()
    save_figure(fig, args.plot)
    print(f"wrote {args.plot}")
    print("FLOPs control (α = 1, reward NE% + α·|F - c|):")
    for multiple in (0.5, 2.0):
        result, _, seconds, _ = run(space, data, examples, folder, alpha=1.0, target=multiple * base)
        print(
            f"  target {multiple}x: γ(θ) at {result['flops_ratio']:.3f}x ({100 * result['target_gap']:.1f}% off), "
            f"{seconds:.0f} s"
        )


if __name__ == "__main__":
    main()
