"""The Pareto front of window NE against FLOPs over a search's candidates, and its plot."""

from __future__ import annotations

import math

from ...core.files import figure, save_figure


def pareto(trials) -> list:
    """Candidates no other beats on both window NE and FLOPs, cheapest first."""
    points = sorted(((t.user_attrs["flops"], t.user_attrs["window_ne"], t.number) for t in trials))
    front, best = [], math.inf
    for flops, ne, number in points:
        if ne < best:
            front.append({"trial": number, "flops": flops, "window_ne": ne})
            best = ne
    return front


def plot_pareto(trials, front, baseline, path, title) -> None:
    fig, ax = figure(figsize=(6.4, 4.4))
    ax.scatter(
        [t.user_attrs["flops"] for t in trials],
        [t.user_attrs["window_ne"] for t in trials],
        s=14,
        color="#8da0cb",
        label="candidates",
    )
    ax.plot(
        [p["flops"] for p in front], [p["window_ne"] for p in front], "-o", color="#4c72b0", ms=4, label="Pareto front"
    )
    if baseline:
        ax.axvline(baseline["flops"], color="#c44e52", linestyle="--", label="baseline FLOPs")
        ax.axhline(baseline["window_ne"], color="#c44e52", linestyle=":", label="baseline window NE")
    ax.set_xlabel("FLOPs per example")
    ax.set_ylabel("window NE (proxy)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    save_figure(fig, path)
