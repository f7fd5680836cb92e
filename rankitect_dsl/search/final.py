"""The search's final word, as the paper battles a production model: the finalists and the baseline are
retrained by the final trainer — `rks train`'s, one pass over the training rows before the validation
slice, the body rate decaying — with the same seeds, and the best candidate on the validation slice wins.
It is an improvement only when it beats the baseline there; when none does, the search says so.

The validation slice is the latest part of the training rows: no proxy, supernet or choosing retrain
trains on it. Once chosen, the winner and the baseline are refit with the same seeds on every training row,
the slice included — the newest rows are worth most to a ranking model, and the model a user keeps is this
one (`rks train` with its default flags). The evaluation tail after the training rows is scored for the
record and never read by any choice: the eval NE quoted for the winner and the baseline is their refit's."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Optional

from ..core.arch import Arch
from ..core.errors import RksError
from ..data.dataset import Dataset
from ..runtime.engine import TrainConfig, train_final
from ..runtime.model import build_model
from . import VAL_FRACTION


@dataclass
class Finalist:
    arch: Arch
    origin: str  # where the search found it, e.g. "halving rung 2", "proxy rank 3", "γ(θ)", "runner-up 2"
    found: dict = field(default_factory=dict)  # what the search measured of it (window NE, probability …)


def fit_once(
    space, arch, data: Dataset, seed: int, batch_size=None, lr: float = 1e-3, val_fraction=VAL_FRACTION, device="auto"
) -> dict:
    """`arch` trained once by the final trainer with `seed`: eval NE and AUC on the held-out tail, and the
    validation NE when a slice is held out."""
    fit = data.validation_view(val_fraction)
    model = build_model(space, arch, fit, seed)
    r = train_final(model, data, fit, TrainConfig(fit.n_train, batch_size, lr, seed, False, "retrain", device=device))
    out = {"eval_ne": r.eval_ne, "auc": r.auc, "examples": fit.n_train, "seconds": r.seconds}
    if fit is not data:
        out["val_ne"] = r.extra["val_ne"]
    return out


def retrain(
    space,
    arch,
    data: Dataset,
    seeds,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    val_fraction: float = VAL_FRACTION,
    device: str = "auto",
) -> dict:
    """`arch` trained by the final trainer once per seed: validation NE (what selects), eval NE and AUC on the
    held-out tail (what is quoted), per seed and their mean."""
    runs = [fit_once(space, arch, data, seed, batch_size, lr, val_fraction, device) for seed in seeds]
    out = {
        "eval_ne": statistics.mean(r["eval_ne"] for r in runs),
        "eval_ne_seeds": [r["eval_ne"] for r in runs],
        "auc": statistics.mean(r["auc"] for r in runs),
        "examples": runs[0]["examples"],
        "seeds": list(seeds),
    }
    if val_fraction > 0:
        out.update(val_ne=statistics.mean(r["val_ne"] for r in runs), val_ne_seeds=[r["val_ne"] for r in runs])
    return out


def select(
    space,
    finalists: list[Finalist],
    baseline,
    data: Dataset,
    seeds,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    val_fraction: float = VAL_FRACTION,
    device: str = "auto",
) -> dict:
    """Retrain the baseline and every finalist (a finalist that is the baseline's model, or another's, is
    trained once) and choose on mean validation NE. `winner` is the best candidate; `beats_baseline` says
    whether it beat the baseline there, and `margin` by how much (relative validation NE, negative is
    better). Without a baseline both are None."""
    if val_fraction <= 0:
        raise RksError("a search chooses its winner on the validation slice: --val-fraction must be above 0")

    def row(arch, origin, found) -> dict:
        out = {"arch": arch.to_dict(), "origin": origin, "flops": space.flops(arch), **found}
        return {**out, **retrain(space, arch, data, seeds, batch_size, lr, val_fraction, device)}

    base = row(baseline, "baseline", {}) if baseline is not None else None
    seen, rows = {space.subnet_key(baseline)} if baseline is not None else set(), []
    for f in finalists:
        key = space.subnet_key(f.arch)
        if key not in seen:
            seen.add(key)
            rows.append(row(f.arch, f.origin, f.found))
    best = min(rows, key=lambda r: r["val_ne"]) if rows else base
    for chosen in {id(r): r for r in (best, base) if r is not None}.values():
        _refit(space, chosen, data, seeds, batch_size, lr, device)
    out = {"winner": best, "baseline": base, "finalists": rows, "val_fraction": val_fraction}
    if base is not None:
        out.update(
            beats_baseline=best["val_ne"] < base["val_ne"], margin=(best["val_ne"] - base["val_ne"]) / base["val_ne"]
        )
    else:
        out.update(beats_baseline=None, margin=None)
    return out


def _refit(space, row: dict, data: Dataset, seeds, batch_size, lr, device) -> None:
    """`row`'s model trained again with its seeds on every training row, the validation slice included: its
    eval NE, AUC and rows become the refit's; its validation NE stays the choosing fit's, and that fit's
    tail scores stay under `choosing`."""
    refit = retrain(space, Arch.from_dict(row["arch"]), data, seeds, batch_size, lr, 0.0, device)
    row["choosing"] = {k: row[k] for k in ("eval_ne", "eval_ne_seeds", "auc", "examples")}
    row.update({k: refit[k] for k in ("eval_ne", "eval_ne_seeds", "auc", "examples")}, refit=True)


def verdict(final: dict) -> str:
    """The one line a search prints about the baseline."""
    won, base = final["winner"], final["baseline"]
    if base is None:
        return f"the winner ({won['origin']}) has validation NE {won['val_ne']:.4f}; the space names no baseline"
    margin = 100 * final["margin"]
    where = f"validation NE {won['val_ne']:.4f} against the baseline's {base['val_ne']:.4f} ({margin:+.2f}%)"
    if final["beats_baseline"]:
        return f"the winner ({won['origin']}) beats the baseline on the validation slice: {where}"
    if won is base:
        return "no candidate beat the baseline: every finalist is the baseline's own model"
    return (
        f"no candidate beat the baseline on the validation slice: the best, {won['origin']}, has {where}; "
        "it is exported as the best candidate, not as an improvement"
    )
