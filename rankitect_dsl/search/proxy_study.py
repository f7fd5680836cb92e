"""The paper's Figure 4 on our data: Kendall tau between each proxy (at several data budgets) and the
long-run NE of K sampled models.

Training is deterministic and the learning rate constant, so training from scratch on the first b
examples is exactly the first b steps of the long run: every early-stop budget is read off one long
run per model (window NE over the last 25% of its first b examples). Likewise one fine-tuning run per
model from the pretrained supernet gives the weight-sharing proxy at every budget.
"""

from __future__ import annotations

from typing import Optional

from ..core.files import figure, save_figure
from ..runtime.metrics import window_ne
from ..runtime.model import build_model
from ..runtime.trainer import train
from .proxies import WeightSharingProxy, proxy_config


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


def prefix_window_ne(result, budget: int) -> float:
    logits, labels = result.seen
    return window_ne(logits[:budget], labels[:budget])


def run_proxy_study(
    space,
    data,
    models: int,
    long: int,
    budgets: list,
    pretrain: int,
    seed: int = 0,
    batch_size: Optional[int] = None,
    lr: float = 1e-3,
    progress: bool = True,
) -> dict:
    from tqdm import tqdm

    archs = space.sample_many(models, seed)
    truth, early, shared = [], {b: [] for b in budgets}, {b: [] for b in budgets}
    ws = WeightSharingProxy(space, data, pretrain, seed, batch_size, lr, progress=progress)
    for arch in tqdm(archs, desc="models", unit="model", disable=None if progress else True, leave=False):
        model = build_model(space, arch, data, seed)
        result = train(model, data, proxy_config(long, batch_size, lr, seed, False, "long run"), evaluate=False)
        truth.append(result.window_ne)
        for b in budgets:
            early[b].append(prefix_window_ne(result, b))
        tuned = ws(arch, max(budgets))
        for b in budgets:
            shared[b].append(prefix_window_ne(tuned, b))
    rows = [
        {
            "budget": b,
            "early_stop_tau": kendall_tau(early[b], truth),
            "weight_sharing_tau": kendall_tau(shared[b], truth),
        }
        for b in budgets
    ]
    return {
        "space": space.name,
        "models": models,
        "long": long,
        "pretrain": pretrain,
        "rows": rows,
        "long_run_window_ne": truth,
    }


def plot_proxy_study(study: dict, path: str) -> None:
    fig, ax = figure(figsize=(6.4, 4.2))
    budgets = [r["budget"] for r in study["rows"]]
    ax.plot(budgets, [r["early_stop_tau"] for r in study["rows"]], "-o", label="early-stop proxy")
    ax.plot(budgets, [r["weight_sharing_tau"] for r in study["rows"]], "-s", label="weight-sharing proxy")
    ax.set_xscale("log")
    ax.set_xlabel("proxy training examples")
    ax.set_ylabel("Kendall tau with long-run NE")
    ax.set_title(f"{study['space']}: {study['models']} models, long run {study['long']:,} examples")
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.legend()
    save_figure(fig, path)
