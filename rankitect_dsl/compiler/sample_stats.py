"""Distributions over sampled archs (the paper's Figure 3): FLOPs, dense params, active choices, connections."""

from __future__ import annotations

import numpy as np

from ..core.files import figure, save_figure
from ..core.graph import reads

METRICS = (
    ("flops", "FLOPs per example"),
    ("params", "dense params"),
    ("active_choices", "# choices reaching the output"),
    ("connections", "# connections"),
)


def arch_metrics(space, archs) -> dict:
    vectors = [space.encode(a) for a in archs]
    flops, params = space.cost.evaluate_many(vectors)
    active = [space.active_choices(a) for a in archs]
    return {
        "flops": flops,
        "params": params,
        "active_choices": np.array([len(a) for a in active]),
        "connections": np.array([sum(len(reads(arch, c)) for c in act) for arch, act in zip(archs, active)]),
    }


def sample_stats(space, n: int, seed: int = 0, plot: str | None = None) -> dict:
    archs = space.sample_many(n, seed)
    values = arch_metrics(space, archs)
    baseline = None
    if space.baseline is not None:
        baseline = {k: int(v[0]) for k, v in arch_metrics(space, [space.baseline]).items()}
    summary = {
        k: {"min": float(v.min()), "median": float(np.median(v)), "mean": float(v.mean()), "max": float(v.max())}
        for k, v in values.items()
    }
    if plot:
        write_histograms(space.name, values, baseline, plot)
    return {"archs": n, "seed": seed, "summary": summary, "baseline": baseline}


def write_histograms(name: str, values: dict, baseline: dict | None, path: str) -> None:
    fig, axes = figure(4, figsize=(16, 3.6))
    for ax, (key, label) in zip(axes, METRICS):
        ax.hist(values[key], bins=40, color="#4c72b0")
        if baseline is not None:
            ax.axvline(baseline[key], color="#c44e52", linestyle="--", label="baseline")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("archs")
    fig.suptitle(f"{name}: {len(values['flops']):,} sampled archs")
    save_figure(fig, path)
