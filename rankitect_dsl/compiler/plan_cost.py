"""The costs of one concrete subnet plan in integers, from the block terms the formulas of `cost.py` are
made of. Apart from `cost.py` so that a command costing one arch (`rks train`, `rks export`) never
imports sympy."""

from __future__ import annotations

from ..core.adaptors import HEAD, PAIR_FC, STACK
from ..core.blocks import REGISTRY
from ..core.names import HEAD_PART, choice_part, pair_part


def plan_cost(plan) -> dict:
    """FLOPs and params per part of one concrete subnet plan, from the same block terms as the formulas.
    Serves archs with no flat encoding (merged choices running several blocks); the stack adaptor that
    several blocks of a choice share is counted once, as the exported subnet computes it once."""
    d, bn = plan.d, plan.spec.bottleneck
    parts = {}
    for cp in plan.choices:
        flops = sum(STACK.flops(plan.ports[x].width2d, d) for x in cp.stack)
        params = sum(STACK.params(plan.ports[x].width2d, d, 1) for x in cp.stack)
        for bp in cp.blocks:
            flops += REGISTRY[bp.block].flops(bp.sizes)
            params += REGISTRY[bp.block].params(bp.sizes, plan.spec.norm)
        parts[choice_part(cp.name)] = {"flops": flops, "params": params}
    for (i, j), pp in plan.pairs.items():
        parts[pair_part(i, j)] = {
            "flops": PAIR_FC.flops(pp.left, pp.right, bn),
            "params": PAIR_FC.params(pp.left, pp.right, bn),
        }
    parts[HEAD_PART] = {"flops": HEAD.flops(plan.head_in), "params": HEAD.params(plan.head_in)}
    return parts
