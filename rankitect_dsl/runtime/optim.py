"""The optimisers of the shared trainer: Adam for the dense (searched) part, row-wise Adagrad for the
embedding tables, as DLRM and TorchRec train them.

Row-wise Adagrad keeps one accumulator per table row (the mean of its squared gradients) instead of one
per entry, so a row's step shrinks with how often and how strongly it has been updated: frequent ids
settle, rare ids keep learning fast. On the shared data it beat Adam on the tables by 1–8% eval NE
(docs/data.md has the sweep).

The body's Adam rate falls linearly to zero over the pass: a pass has a known length, and ending it at a
small rate lowered eval NE on all four sets of the sweep (0.2–4.9%).
"""

from __future__ import annotations

import torch

from . import EMBED_OPTIMIZERS, LR_SCHEDULES


class RowWiseAdagrad(torch.optim.Optimizer):
    """Adagrad with one accumulator per row of a 2D parameter: `G_r += mean(g_r²)`, `w_r -= lr·g_r/(√G_r + eps)`.

    Rows with no gradient in a step (ids absent from the batch) are left exactly as they were."""

    def __init__(self, params, lr: float = 0.1, eps: float = 1e-10):
        if lr <= 0:
            raise ValueError(f"row-wise Adagrad needs a positive learning rate, got {lr}")
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.dim() != 2:
                    raise ValueError("row-wise Adagrad updates 2D tables (rows × width)")
                state = self.state[p]
                if not state:
                    state["sum"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
                if p.device.type == "cpu":
                    _sparse_rows_step(p, p.grad, state["sum"], group["lr"], group["eps"])
                else:
                    _dense_step(p, p.grad, state["sum"], group["lr"], group["eps"])
        return None


def _sparse_rows_step(p, grad, total, lr, eps) -> None:
    """Touch only the rows with a gradient: on the CPU the cheap way for large tables and small batches."""
    rows = grad.any(1).nonzero().squeeze(1)
    if rows.numel() == 0:
        return
    g = grad[rows]
    total[rows] += g.pow(2).mean(1)
    p[rows] -= lr * g / (total[rows].sqrt() + eps).unsqueeze(1)


def _dense_step(p, grad, total, lr, eps) -> None:
    """The same update over every row, without `nonzero` (a host sync per table per step on an accelerator):
    a row with no gradient adds 0 to its accumulator and moves by 0, so it is left exactly as it was."""
    total += grad.pow(2).mean(1)
    p -= lr * grad / (total.sqrt() + eps).unsqueeze(1)


def make_optimizers(model, lr: float, embed_optimizer: str = "rowwise-adagrad", embed_lr: float = 0.1) -> list:
    """Adam over the body; the chosen optimiser over the embedding tables (`model.embedding`)."""
    tables = list(model.embedding.parameters())
    ids = {id(p) for p in tables}
    body = [p for p in model.parameters() if id(p) not in ids]
    if embed_optimizer == "adam":
        return [torch.optim.Adam([{"params": body}, {"params": tables, "lr": embed_lr}], lr=lr)]
    if embed_optimizer == "rowwise-adagrad":
        return [torch.optim.Adam(body, lr=lr), RowWiseAdagrad(tables, lr=embed_lr)]
    raise ValueError(f"unknown embedding optimiser `{embed_optimizer}`; choose {', '.join(EMBED_OPTIMIZERS)}")


def body_lr_schedule(optimizers: list, steps: int, schedule: str = "linear"):
    """The body rate's schedule over a pass of `steps` updates; the tables keep their rate (row-wise
    Adagrad already shrinks each row's step). The body is the first group of the first optimiser."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule `{schedule}`; choose {', '.join(LR_SCHEDULES)}")
    first = optimizers[0]
    body = (lambda k: max(0.0, 1.0 - k / steps)) if schedule == "linear" else (lambda k: 1.0)
    held = [lambda k: 1.0] * (len(first.param_groups) - 1)
    return torch.optim.lr_scheduler.LambdaLR(first, [body, *held])
