"""Partial weight transfer between the supernet and an arch's subnet (paper 3.2.1, weight-sharing proxy)."""

from __future__ import annotations

import torch

from ..core.arch import Arch


def _sources(supernet, arch: Arch) -> dict:
    return supernet.plan(arch).weight_sources()


@torch.no_grad()
def transfer_weights(supernet, subnet, arch: Arch) -> None:
    """Copy the slices of the supernet's weights that the arch uses into the subnet."""
    params = dict(subnet.named_parameters())
    for path, s in _sources(supernet, arch).items():
        params[path].copy_(supernet.take(s))


@torch.no_grad()
def transfer_back(supernet, subnet, arch: Arch, grads: bool = False) -> None:
    """Write the subnet's weights (or accumulate its gradients) back into the supernet's slices."""
    params = dict(subnet.named_parameters())
    for path, s in _sources(supernet, arch).items():
        value = params[path].grad if grads else params[path]
        if value is None:
            continue
        target = supernet.weights[s.param]
        if grads:
            if target.grad is None:
                target.grad = torch.zeros_like(target)
            target = target.grad
        idx = []
        for dim, ranges in enumerate(s.ranges):
            idx.append(
                torch.arange(target.shape[dim])
                if ranges is None
                else torch.cat([torch.arange(a, b) for a, b in ranges])
            )
        grid = torch.meshgrid(*idx, indexing="ij")
        grid = tuple(g.to(target.device) for g in grid)
        value = value.to(device=target.device, dtype=target.dtype)  # a subnet trained on another device
        if grads:
            target.index_put_(grid, value, accumulate=True)
        else:
            target.index_put_(grid, value)
