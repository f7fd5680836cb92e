"""The FLOPs constraint of a search: a hard cap and/or a cost around a target (`FlopsObjective`), read
from flags as absolute FLOPs or multiples of the baseline, and checked against what the space can reach."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..core.blocks import is_multi_hot
from ..core.errors import RksError


def valid_mask(space, vectors: np.ndarray) -> np.ndarray:
    """Rows whose multi-hot connections leave at least one input on wherever a multi-hot block is chosen."""
    vectors = np.asarray(vectors).reshape(-1, len(space.decisions))
    ok = np.ones(len(vectors), dtype=bool)
    groups: dict = {}
    block_col = {}
    for i, d in enumerate(space.decisions):
        if d.kind == "input":
            groups.setdefault(d.choice, []).append(i)
        elif d.kind == "block":
            block_col[d.choice] = i
    for choice, cols in groups.items():
        c = space.spec.choice_by_name[choice]
        any_on = vectors[:, cols].sum(1) > 0
        if choice in block_col:
            multi = np.isin(vectors[:, block_col[choice]], [k for k, b in enumerate(c.blocks) if is_multi_hot(b)])
        else:
            multi = np.ones(len(vectors), dtype=bool)
        ok &= any_on | ~multi
    return ok


PENALTIES = ("l1", "relu")


@dataclass
class FlopsObjective:
    """The one FLOPs term of every method: a hard cap, and a cost around a target c,

        Cost(F) = |F/s − c/s| (L1)  or  max(F/s − c/s, 0) (ReLU),

    in units of the scale s, weighted by `weight`. Each method keeps the paper's meaning of it:

    - the sampling searches rank candidates by window NE + 0.05 · |F/c − 1| (s = c);
    - one-shot's reward is Eq. 7, NE% + α · Cost with s the baseline's FLOPs (α adapted or given);
    - DNAS's loss is Eq. 9, CE + λ · E|F(a) − c| / c (s = c).

    `cost` takes NumPy arrays, floats and torch tensors alike (DNAS differentiates it)."""

    target: Optional[float] = None
    cap: Optional[float] = None
    kind: str = "l1"
    weight: float = 0.05
    scale: Optional[float] = None  # None: the target

    def __post_init__(self):
        if self.kind not in PENALTIES:
            raise ValueError(f"unknown FLOPs penalty `{self.kind}`; choose {', '.join(PENALTIES)}")

    def cost(self, flops):
        if not self.target:
            return flops * 0.0
        scale = self.scale or self.target
        gap = flops / scale - self.target / scale
        return abs(gap) if self.kind == "l1" else (gap + abs(gap)) / 2

    def penalty(self, flops):
        return self.weight * self.cost(flops)

    def relative_gap(self, flops):
        """The cost as a fraction of the target: how far from (L1) or above (ReLU) it the FLOPs are."""
        return self.cost(flops) / (self.target / (self.scale or self.target))

    def allowed(self, flops: np.ndarray) -> np.ndarray:
        return flops <= self.cap if self.cap else np.ones(len(flops), dtype=bool)


def parse_flops(text: Optional[str], space, flag: str, baseline=None) -> Optional[float]:
    """`2.5x` is relative to the baseline arch (`baseline`, else the space's); a plain number is absolute
    FLOPs per example; `none` (or no value) is no limit."""
    if text is None or text.lower() == "none":
        return None
    baseline = baseline or space.baseline
    try:
        if text.endswith("x"):
            if baseline is None:
                raise RksError(f"{flag} {text}: a relative FLOPs value needs a baseline arch in space `{space.name}`")
            value = float(text[:-1]) * space.flops(baseline)
        else:
            value = float(text)
    except ValueError:
        raise RksError(f"{flag} `{text}` is not a number of FLOPs or a multiple like 2.5x") from None
    if value <= 0:
        raise RksError(f"{flag} must be positive, got {text}")
    return value


def flops_range(space, seed: int = 0, samples: int = 3000) -> tuple[int, int]:
    """The cheapest and costliest archs found: best of a sample, then coordinate descent (ascent)."""
    vectors = np.array([space.encode(a) for a in space.sample_many(samples, seed)]).reshape(samples, -1)
    if space.baseline is not None:
        vectors = np.vstack([vectors, space.encode(space.baseline)])
    flops = space.flops_many(vectors)
    out = []
    for sign in (1, -1):
        best = vectors[int(np.argmin(sign * flops))].copy()
        best_value = int(space.flops_many([best])[0])
        improved = True
        while improved:
            improved = False
            neighbours = []
            for i, d in enumerate(space.decisions):
                for k in range(d.size):
                    if k != best[i]:
                        v = best.copy()
                        v[i] = k
                        neighbours.append(v)
            if not neighbours:
                break
            neighbours = np.array(neighbours)
            neighbours = neighbours[valid_mask(space, neighbours)]
            values = space.flops_many(neighbours)
            j = int(np.argmin(sign * values))
            if sign * values[j] < sign * best_value:
                best, best_value, improved = neighbours[j], int(values[j]), True
        out.append(best_value)
    return out[0], out[1]


def default_flops_cap(text: Optional[str], space) -> Optional[float]:
    """The search's cap: as given; else the baseline's FLOPs when the space has a baseline (the paper always
    searches against a FLOPs target); `none` lifts it."""
    if text is None and space.baseline is not None:
        return float(space.flops(space.baseline))
    return parse_flops(text, space, "--flops-max")


def check_flops_rule(space, cap: Optional[float], target: Optional[float], seed: int = 0) -> None:
    """Refuse a cap below the cheapest arch found, or a target outside the range of archs found."""
    if cap is None and target is None:
        return
    low, high = flops_range(space, seed)
    if cap is not None and cap < low:
        raise RksError(
            f"no arch in space `{space.name}` meets --flops-max {cap:,.0f}: the cheapest found has {low:,} FLOPs"
        )
    if target is not None and not low <= target <= high:
        raise RksError(
            f"no arch in space `{space.name}` meets --flops-target {target:,.0f}: "
            f"archs range from {low:,} to {high:,} FLOPs"
        )
