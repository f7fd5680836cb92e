"""The in-place searches' per-step log read back as the report's curves; torch-free, so the plug-ins in
`search/methods/` can summarise a run without importing the trainer."""

from __future__ import annotations

import json
import math

import numpy as np


def finite_mean(values) -> float:
    """The mean of the finite values (NaN: an NE of a one-class batch), NaN when there is none."""
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


CURVE_POINTS = 200


def curves(log) -> list[dict]:
    """The per-step log averaged into at most `CURVE_POINTS` windows of consecutive steps: what the report
    plots (reward or loss, FLOPs of the samples and of γ(θ), entropy, temperature)."""
    with open(log) as f:
        records = [json.loads(line) for line in f if line.strip()]
    if not records:
        return []
    width = max(1, math.ceil(len(records) / CURVE_POINTS))
    keys = ("reward", "loss", "flops_ratio", "sample_flops_ratio", "gamma_flops_ratio", "entropy", "temperature")
    out = []
    for a in range(0, len(records), width):
        window = records[a : a + width]
        point = {"step": window[-1]["step"] + 1}
        for k in keys:
            values = [r[k] for r in window if isinstance(r.get(k), (int, float))]
            if values and math.isfinite(mean := finite_mean(values)):
                point[k] = mean
        out.append(point)
    return out
