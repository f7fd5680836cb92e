"""Normalized Entropy (NE = logloss / H(mean label)), window NE and AUC."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def ne_terms(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(logloss, mean label) on the logits' device, float64: what NE is computed from on the host, read back
    with whatever else a step reports in one transfer."""
    labels = labels.to(torch.float64)
    return torch.stack([F.binary_cross_entropy_with_logits(logits.to(torch.float64), labels), labels.mean()])


def ne_from(logloss: float, rate: float) -> float:
    h = entropy(rate)
    return logloss / h if h > 0 else float("nan")


def normalized_entropy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Logloss of the predictions divided by the entropy of the mean label of the same examples.
    NaN when every label is equal (the entropy is zero, so no model can be compared)."""
    return ne_from(*ne_terms(logits, labels).tolist())  # one read-back, not two


def window_ne(logits: torch.Tensor, labels: torch.Tensor, fraction: float = 0.25) -> float:
    """NE over the last `fraction` of the examples (in the order they were seen)."""
    n = len(labels)
    start = n - max(1, int(round(fraction * n)))
    return normalized_entropy(logits[start:], labels[start:])


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) formula, ties given average ranks."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64) > 0.5
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(s)]])
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + b + 1) / 2.0
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
