"""The masked supernet: maximal weights for every block, driven by hard masks (an arch) or soft masks.

Hard masks run only what the arch uses, with weights sliced out of the maximal ones by the shared
`layout`, so the result equals the exported subnet with transferred weights. Soft masks (probabilities,
Gumbel-softmax samples, or all ones) weigh every alternative at maximal widths, differentiably.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..compiler.layout import Slice, SupernetLayout, build_plan
from ..core.arch import Arch
from ..core.blocks import REGISTRY
from ..core.names import block_param, head_param, pair_param, stack_param
from ..core.spec import SpaceSpec, spec_from_dict

_PLAN_CACHE = 256


def flatten_port(t2: Optional[torch.Tensor], t3: Optional[torch.Tensor]) -> torch.Tensor:
    """The flatten adaptor: a 2D part and a flattened 3D part, zero-padded to one width and summed."""
    if t3 is None:
        return t2
    f3 = t3.flatten(1)
    if t2 is None:
        return f3
    width = max(t2.shape[-1], f3.shape[-1])
    return F.pad(t2, (0, width - t2.shape[-1])) + F.pad(f3, (0, width - f3.shape[-1]))


def pad_to(t: torch.Tensor, width: int) -> torch.Tensor:
    return t if t.shape[-1] == width else F.pad(t, (0, width - t.shape[-1]))


def _bcast(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-batch (B,) or scalar mask weight shaped to multiply `like`."""
    return m.reshape(m.shape + (1,) * (like.dim() - m.dim())) if m.dim() else m


class SupernetBase(nn.Module):
    def __init__(self, spec: SpaceSpec | dict):
        super().__init__()
        self.spec = spec if isinstance(spec, SpaceSpec) else spec_from_dict(spec)
        self.layout = SupernetLayout(self.spec)
        self.weights = nn.ParameterDict(
            {k: nn.Parameter(torch.empty(shape)) for k, shape in self.layout.params.items()}
        )
        self._plans: OrderedDict = OrderedDict()
        self._index: dict = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default init for weights and biases, ones and zeros for LayerNorm."""
        with torch.no_grad():
            for key, p in self.weights.items():
                init = self.layout.init[key]
                if init.kind == "ones":
                    p.fill_(1.0)
                elif init.kind == "zeros":
                    p.zero_()
                else:
                    bound = 1.0 / math.sqrt(max(1, init.fan_in))
                    p.uniform_(-bound, bound)

    # -- weight slicing ---------------------------------------------------------------------
    def take(self, s: Slice) -> torch.Tensor:
        t = self.weights[s.param]
        for dim, ranges in enumerate(s.ranges):
            if ranges is None:
                continue
            if len(ranges) == 1:
                start, stop = ranges[0]
                if start != 0 or stop != t.shape[dim]:
                    t = t.narrow(dim, start, stop - start)
            else:
                t = t.index_select(dim, self._indices(ranges, t.device))
        return t

    def _indices(self, ranges, device) -> torch.Tensor:
        key = (ranges, device)
        if key not in self._index:
            self._index[key] = torch.cat([torch.arange(a, b) for a, b in ranges]).to(device)
        return self._index[key]

    def plan(self, arch: Arch):
        key = arch.to_json()
        plan = self._plans.get(key)
        if plan is None:
            plan = build_plan(self.spec, arch, self.layout)
            self._plans[key] = plan
            if len(self._plans) > _PLAN_CACHE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    # -- execution --------------------------------------------------------------------------
    def forward(
        self, dense: torch.Tensor, sparse: torch.Tensor, arch: Optional[Arch] = None, masks: Optional[dict] = None
    ) -> torch.Tensor:
        if arch is not None and masks is not None:
            raise ValueError("give either an arch (hard masks) or soft masks, not both")
        if arch is not None:
            return self.forward_arch(dense, sparse, arch)
        return self.forward_masks(dense, sparse, masks or {})

    def forward_arch(self, dense, sparse, arch: Arch) -> torch.Tensor:
        plan = self.plan(arch)
        vals = {self.spec.dense.name: (dense, None), self.spec.embed.name: (None, sparse)}
        fc_cache = {}
        for cp in plan.choices:
            adaptors = {REGISTRY[bp.block].adaptor for bp in cp.blocks}
            x = {}
            if "flatten" in adaptors:
                x["flatten"] = torch.cat([flatten_port(*vals[i]) for i in cp.inputs], 1)
            if "stack" in adaptors:
                parts = []
                for i in cp.inputs:
                    t2, t3 = vals[i]
                    if t2 is not None:
                        proj = cp.stack[i]
                        parts.append(F.linear(t2, self.take(proj["w"]), self.take(proj["b"])).unsqueeze(1))
                    if t3 is not None:
                        parts.append(t3)
                x["stack"] = torch.cat(parts, 1)
            if "pair" in adaptors:
                i, j = cp.pair
                if (i, j) not in fc_cache:
                    fc = plan.pairs[(i, j)].params
                    hidden = F.linear(flatten_port(*vals[i]), self.take(fc["w1"]), self.take(fc["b1"]))
                    fc_cache[(i, j)] = F.linear(hidden, self.take(fc["w2"]), self.take(fc["b2"]))
            outs2d, out3d = [], None
            for bp in cp.blocks:
                block = REGISTRY[bp.block]
                p = {role: self.take(s) for role, s in bp.params.items()}
                if block.multi_hot:
                    y = block.apply(F, x[block.adaptor], p)
                else:
                    y = block.apply(F, block.combine(F, fc_cache[cp.pair], flatten_port(*vals[cp.pair[1]])), p)
                if block.output == "3d":
                    out3d = y
                else:
                    outs2d.append(y)
            t2 = None
            if outs2d:
                width = max(o.shape[-1] for o in outs2d)
                t2 = outs2d[0] if len(outs2d) == 1 else sum(pad_to(o, width) for o in outs2d)
            vals[cp.name] = (t2, out3d)
        x = torch.cat([flatten_port(*vals[n]) for n in self.spec.outputs], 1)
        return F.linear(x, self.take(plan.head["w"]), self.take(plan.head["b"])).squeeze(-1)

    def _block_weights(self, choice: str, block: str) -> dict:
        return {role.name: self.weights[block_param(choice, block, role.name)] for role in REGISTRY[block].roles}

    def forward_masks(self, dense, sparse, masks: dict) -> torch.Tensor:
        """Every block at maximal width, each weighted by its (soft) mask; missing masks are ones."""
        L, w = self.layout, self.weights
        vals = {self.spec.dense.name: (dense, None), self.spec.embed.name: (None, sparse)}
        fc_cache = {}
        for c in self.spec.choices:
            m = masks.get(c.name, {})
            k = len(c.candidates)
            in_mask = m.get("inputs", dense.new_ones(k))
            block_mask = m.get("block", dense.new_ones(len(c.blocks)))
            dim_masks = m.get("dims", {})
            adaptors = {REGISTRY[b].adaptor for b in c.blocks}
            flats = {x: pad_to(flatten_port(*vals[x]), L.flat(x)) for x in c.candidates}
            x = {}
            if "flatten" in adaptors:
                x["flatten"] = torch.cat(
                    [flats[i] * _bcast(in_mask[..., n], flats[i]) for n, i in enumerate(c.candidates)], 1
                )
            if "stack" in adaptors:
                parts = []
                for n, i in enumerate(c.candidates):
                    t2, t3 = vals[i]
                    if L.ports[i].width2d:
                        pw, pb = w[stack_param(c.name, i, "w")], w[stack_param(c.name, i, "b")]
                        row = F.linear(pad_to(t2, L.ports[i].width2d), pw, pb).unsqueeze(1)
                        parts.append(row * _bcast(in_mask[..., n], row))
                    if L.ports[i].rows3d:
                        parts.append(t3 * _bcast(in_mask[..., n], t3))
                x["stack"] = torch.cat(parts, 1)
            outs2d, out3d = [], None
            for b in c.blocks:
                block = REGISTRY[b]
                p = self._block_weights(c.name, b)
                if block.multi_hot:
                    y = block.apply(F, x[block.adaptor], p, dim_masks.get(b))
                else:
                    y = block.apply(F, self._pair_sum(c, block, m, flats, fc_cache, dense), p)
                if block.output == "3d":
                    out3d = y * _bcast(block_mask[..., c.blocks.index(b)], y)
                else:
                    outs2d.append((b, y))
            t2 = None
            if outs2d:
                width = L.ports[c.name].width2d
                t2 = sum(pad_to(y, width) * _bcast(block_mask[..., c.blocks.index(b)], y) for b, y in outs2d)
            vals[c.name] = (t2, out3d)
        x = torch.cat([pad_to(flatten_port(*vals[n]), L.flat(n)) for n in self.spec.outputs], 1)
        return F.linear(x, w[head_param("w")], w[head_param("b")]).squeeze(-1)

    def _pair_sum(self, c, block, m, flats, fc_cache, like) -> torch.Tensor:
        """Eq. 2 under soft left/right masks: the pairs' interactions weighed by P(left) · P(right)."""
        w = self.weights
        width = self.layout.shapes[c.name].block_out[block.name]
        k = len(c.candidates)
        left = m.get("left", like.new_ones(k))
        right = m.get("right", like.new_ones(k))
        pairs = [c.fixed_pair] if c.fixed_pair else [(i, j) for i in c.candidates for j in c.candidates]
        acc = None
        for i, j in pairs:
            wt = left[..., c.candidates.index(i)] * right[..., c.candidates.index(j)]
            if not wt.requires_grad and bool((wt == 0).all()):
                continue
            if (i, j) not in fc_cache:
                hidden = F.linear(flats[i], w[pair_param(i, j, "w1")], w[pair_param(i, j, "b1")])
                fc_cache[(i, j)] = F.linear(hidden, w[pair_param(i, j, "w2")], w[pair_param(i, j, "b2")])
            y = pad_to(block.combine(F, fc_cache[(i, j)], flats[j]), width) * _bcast(wt, flats[j])
            acc = y if acc is None else acc + y
        return acc if acc is not None else like.new_zeros(like.shape[0], width)


def arch_masks(spec: SpaceSpec, arch: Arch, like: torch.Tensor) -> dict:
    """The hard (0/1) masks of an arch, in the layout `forward_masks` reads."""
    out = {}
    for c in spec.choices:
        ca = arch.choices[c.name]
        m = {"block": like.new_tensor([1.0 if b in ca.blocks else 0.0 for b in c.blocks])}
        if c.multi_hot_blocks:
            m["inputs"] = like.new_tensor([1.0 if x in ca.inputs else 0.0 for x in c.candidates])
        if c.pair_blocks and ca.pair:
            m["left"] = like.new_tensor([1.0 if x == ca.pair[0] else 0.0 for x in c.candidates])
            m["right"] = like.new_tensor([1.0 if x == ca.pair[1] else 0.0 for x in c.candidates])
        m["dims"] = {
            b: like.new_tensor([1.0 if i < ca.dims[b] else 0.0 for i in range(max(c.dims[b]))])
            for b in ca.dims
            if REGISTRY[b].searched_dim
        }
        out[c.name] = m
    return out
