"""The paper's Figure 4 on our data: Kendall tau between each proxy (at several data budgets) and what the
user gets, the final retrain's NE on the validation slice, over K sampled models.

The truth is `final.retrain`: one pass over the training rows before the validation slice, the body rate
decaying, scored on the slice. Each proxy budget is its own run (the proxies decay their rate over their
budget, so a short run is no longer the prefix of a long one).
"""

from __future__ import annotations

from typing import Optional

from ...core.files import figure, save_figure
from .. import VAL_FRACTION
from ..final import retrain
from .proxies import PROXY_SCHEDULE, EarlyStopProxy, WeightSharingProxy


def kendall_tau(x, y) -> float:
    """Kendall's tau-b (ties in either ranking handled)."""
    n, concordant, discordant, ties_x, ties_y = len(x), 0, 0, 0, 0
    for i in range(n):
        for j in range(i + 1, n):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if dx == 0 and dy == 0:
                continue
            if dx == 0:
                ties_x += 1
            elif dy == 0:
                ties_y += 1
            elif dx * dy > 0:
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_x) * (concordant + discordant + ties_y)) ** 0.5
    return (concordant - discordant) / denom if denom else float("nan")


def default_budgets(fit_rows: int, batch_size: Optional[int]) -> list[int]:
    """1/32 … 1/2 of a pass over the training rows, at least one batch."""
    return sorted({max(batch_size or 256, fit_rows // 2**k) for k in (5, 4, 3, 2, 1)})


def run_proxy_study(
    space,
    data,
    models: int,
    budgets: Optional[list],
    pretrain: int,
    seed: int = 0,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    progress: bool = True,
    val_fraction: float = VAL_FRACTION,
    schedules: tuple = (PROXY_SCHEDULE,),
) -> dict:
    """One row per budget and proxy schedule: each proxy's Kendall tau against the final retrain. Several
    schedules share the truth (and nothing else), so they are compared on the same models."""
    from ...runtime.progress import Progress

    fit = data.validation_view(val_fraction)
    budgets = budgets or default_budgets(fit.n_train, batch_size)
    archs = space.sample_many(models, seed)
    proxies = {
        sched: (
            EarlyStopProxy(space, fit, seed, batch_size, lr, schedule=sched),
            WeightSharingProxy(space, fit, pretrain, seed, batch_size, lr, progress=progress, schedule=sched),
        )
        for sched in schedules
    }
    truth, scores = [], {(sched, b): ([], []) for sched in schedules for b in budgets}
    with Progress(len(archs), "models", "model", progress) as bar:
        for arch in archs:
            truth.append(retrain(space, arch, data, [seed], batch_size, lr, val_fraction)["val_ne"])
            for sched, (early_stop, shared) in proxies.items():
                for b in budgets:
                    scores[sched, b][0].append(early_stop(arch, b).window_ne)
                    scores[sched, b][1].append(shared(arch, b).window_ne)
            bar.update(1)
    rows = [
        {
            "budget": b,
            "schedule": sched,
            "early_stop_tau": kendall_tau(scores[sched, b][0], truth),
            "weight_sharing_tau": kendall_tau(scores[sched, b][1], truth),
        }
        for sched in schedules
        for b in budgets
    ]
    return {
        "space": space.name,
        "models": models,
        "truth": f"final retrain on {fit.n_train:,} rows, NE on the {data.n_train - fit.n_train:,} validation rows",
        "fit_rows": fit.n_train,
        "pretrain": pretrain,
        "rows": rows,
        "final_val_ne": truth,
    }


def plot_proxy_study(study: dict, path: str) -> None:
    fig, ax = figure(figsize=(6.4, 4.2))
    for sched in dict.fromkeys(r["schedule"] for r in study["rows"]):
        rows = [r for r in study["rows"] if r["schedule"] == sched]
        budgets = [r["budget"] for r in rows]
        tag = "" if sched == PROXY_SCHEDULE else f", {sched} rate"
        ax.plot(budgets, [r["early_stop_tau"] for r in rows], "-o", label=f"early-stop proxy{tag}")
        ax.plot(budgets, [r["weight_sharing_tau"] for r in rows], "-s", label=f"weight-sharing proxy{tag}")
    ax.set_xscale("log")
    ax.set_xlabel("proxy training examples")
    ax.set_ylabel("Kendall tau with the final retrain's validation NE")
    ax.set_title(f"{study['space']}: {study['models']} models, final retrain on {study['fit_rows']:,} rows")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend()
    save_figure(fig, path)
