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

from .arch import Arch
from .ir import MULTI_HOT_BLOCKS, SpaceSpec, spec_from_dict
from .layout import Slice, SupernetLayout, build_plan

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


def norm_act(y: torch.Tensor, ln_w: torch.Tensor, ln_b: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis, then the activation: what follows every block."""
    return F.relu(F.layer_norm(y, (y.shape[-1],), ln_w, ln_b))


def compress(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """EmbedFC's linear over the middle axis, returned as B×D×M (the transpose the dot product needs)."""
    return F.linear(x.transpose(1, 2), w, b)


def _bcast(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-batch (B,) or scalar mask weight shaped to multiply `like`."""
    return m.reshape(m.shape + (1,) * (like.dim() - m.dim())) if m.dim() else m


class SupernetBase(nn.Module):
    def __init__(self, spec: SpaceSpec | dict):
        super().__init__()
        self.spec = spec if isinstance(spec, SpaceSpec) else spec_from_dict(spec)
        self.layout = SupernetLayout(self.spec)
        self.weights = nn.ParameterDict({k: nn.Parameter(torch.empty(shape)) for k, shape in self.layout.params.items()})
        self._plans: OrderedDict = OrderedDict()
        self._index: dict = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default init for weights and biases, ones and zeros for LayerNorm."""
        with torch.no_grad():
            for key, p in self.weights.items():
                stem, _, role = key.rpartition("__")
                if role == "ln_w":
                    p.fill_(1.0)
                elif role == "ln_b":
                    p.zero_()
                else:
                    fan_in = self.weights[f"{stem}__w{role[1:]}"].shape[1]
                    bound = 1.0 / math.sqrt(max(1, fan_in))
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
    def forward(self, dense: torch.Tensor, sparse: torch.Tensor, arch: Optional[Arch] = None,
                masks: Optional[dict] = None) -> torch.Tensor:
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
            kinds = {bp.block for bp in cp.blocks}
            x_lin = torch.cat([flatten_port(*vals[x]) for x in cp.inputs], 1) if "linear" in kinds else None
            x_stack = None
            if kinds & {"embed_fc", "dot_compressed"}:
                parts = []
                for x in cp.inputs:
                    t2, t3 = vals[x]
                    if t2 is not None:
                        proj = cp.stack[x]
                        parts.append(F.linear(t2, self.take(proj["w"]), self.take(proj["b"])).unsqueeze(1))
                    if t3 is not None:
                        parts.append(t3)
                x_stack = torch.cat(parts, 1)
            outs2d, out3d = [], None
            for bp in cp.blocks:
                p = {role: self.take(s) for role, s in bp.params.items()}
                if bp.block == "linear":
                    outs2d.append(norm_act(F.linear(x_lin, p["w"], p["b"]), p["ln_w"], p["ln_b"]))
                elif bp.block == "embed_fc":
                    out3d = norm_act(compress(x_stack, p["w"], p["b"]).transpose(1, 2), p["ln_w"], p["ln_b"])
                elif bp.block == "dot_compressed":
                    z = torch.bmm(x_stack, compress(x_stack, p["w"], p["b"])).flatten(1)
                    outs2d.append(norm_act(z, p["ln_w"], p["ln_b"]))
                else:
                    i, j = cp.pair
                    if (i, j) not in fc_cache:
                        fc = plan.pairs[(i, j)]
                        hidden = F.linear(flatten_port(*vals[i]), self.take(fc["w1"]), self.take(fc["b1"]))
                        fc_cache[(i, j)] = F.linear(hidden, self.take(fc["w2"]), self.take(fc["b2"]))
                    h, xj = fc_cache[(i, j)], flatten_port(*vals[j])
                    y = torch.sigmoid(h) * xj if bp.block == "gating" else h + xj
                    outs2d.append(norm_act(y, p["ln_w"], p["ln_b"]))
            t2 = None
            if outs2d:
                width = max(o.shape[-1] for o in outs2d)
                t2 = outs2d[0] if len(outs2d) == 1 else sum(pad_to(o, width) for o in outs2d)
            vals[cp.name] = (t2, out3d)
        x = torch.cat([flatten_port(*vals[n]) for n in self.spec.outputs], 1)
        return F.linear(x, self.take(plan.head["w"]), self.take(plan.head["b"])).squeeze(-1)

    def forward_masks(self, dense, sparse, masks: dict) -> torch.Tensor:
        """Every block at maximal width, each weighted by its (soft) mask; missing masks are ones."""
        L, w = self.layout, self.weights
        one = dense.new_ones(())
        vals = {self.spec.dense.name: (dense, None), self.spec.embed.name: (None, sparse)}
        fc_cache = {}
        for c in self.spec.choices:
            m = masks.get(c.name, {})
            k = len(c.candidates)
            in_mask = m.get("inputs", dense.new_ones(k))
            block_mask = m.get("block", dense.new_ones(len(c.blocks)))
            dim_masks = m.get("dims", {})
            outs2d, out3d = [], None
            flats = {x: pad_to(flatten_port(*vals[x]), L.flat(x)) for x in c.candidates}
            if "linear" in c.blocks:
                x_lin = torch.cat([flats[x] * _bcast(in_mask[..., n], flats[x]) for n, x in enumerate(c.candidates)], 1)
                y = norm_act(F.linear(x_lin, w[f"{c.name}__linear__w"], w[f"{c.name}__linear__b"]),
                             w[f"{c.name}__linear__ln_w"], w[f"{c.name}__linear__ln_b"])
                outs2d.append(("linear", y * dim_masks.get("linear", one)))
            if "embed_fc" in c.blocks or "dot_compressed" in c.blocks:
                parts = []
                for n, x in enumerate(c.candidates):
                    t2, t3 = vals[x]
                    if L.ports[x].width2d:
                        pw, pb = w[f"{c.name}__stack__{x}__w"], w[f"{c.name}__stack__{x}__b"]
                        row = F.linear(pad_to(t2, L.ports[x].width2d), pw, pb).unsqueeze(1)
                        parts.append(row * _bcast(in_mask[..., n], row))
                    if L.ports[x].rows3d:
                        parts.append(t3 * _bcast(in_mask[..., n], t3))
                x_stack = torch.cat(parts, 1)
                if "embed_fc" in c.blocks:
                    y = norm_act(compress(x_stack, w[f"{c.name}__embed_fc__w"], w[f"{c.name}__embed_fc__b"]).transpose(1, 2),
                                 w[f"{c.name}__embed_fc__ln_w"], w[f"{c.name}__embed_fc__ln_b"])
                    dm = dim_masks.get("embed_fc")
                    out3d = y if dm is None else y * dm.unsqueeze(-1)
                if "dot_compressed" in c.blocks:
                    e = compress(x_stack, w[f"{c.name}__dot_compressed__w"], w[f"{c.name}__dot_compressed__b"])
                    dm = dim_masks.get("dot_compressed")
                    if dm is not None:
                        e = e * dm.unsqueeze(-2)
                    z = norm_act(torch.bmm(x_stack, e).flatten(1), w[f"{c.name}__dot_compressed__ln_w"],
                                 w[f"{c.name}__dot_compressed__ln_b"])
                    if dm is not None:
                        z = z * dm.repeat(*([1] * (dm.dim() - 1)), x_stack.shape[1])
                    outs2d.append(("dot_compressed", z))
            for b in c.pair_blocks:
                width = L.shapes[c.name].block_out[b]
                left = m.get("left", dense.new_ones(k))
                right = m.get("right", dense.new_ones(k))
                pairs = [c.fixed_pair] if c.fixed_pair else [(i, j) for i in c.candidates for j in c.candidates]
                acc = None
                for i, j in pairs:
                    wt = left[..., c.candidates.index(i)] * right[..., c.candidates.index(j)]
                    if not wt.requires_grad and bool((wt == 0).all()):
                        continue
                    if (i, j) not in fc_cache:
                        key = f"fc__{i}__{j}"
                        hidden = F.linear(flats[i], w[f"{key}__w1"], w[f"{key}__b1"])
                        fc_cache[(i, j)] = F.linear(hidden, w[f"{key}__w2"], w[f"{key}__b2"])
                    h = fc_cache[(i, j)]
                    y = torch.sigmoid(h) * flats[j] if b == "gating" else h + flats[j]
                    y = pad_to(y, width) * _bcast(wt, y)
                    acc = y if acc is None else acc + y
                if acc is None:
                    acc = dense.new_zeros(dense.shape[0], width)
                outs2d.append((b, norm_act(acc, w[f"{c.name}__{b}__ln_w"], w[f"{c.name}__{b}__ln_b"])))
            t2 = None
            if outs2d:
                width = L.ports[c.name].width2d
                t2 = sum(pad_to(y, width) * _bcast(block_mask[..., c.blocks.index(b)], y) for b, y in outs2d)
            if out3d is not None:
                out3d = out3d * _bcast(block_mask[..., c.blocks.index("embed_fc")], out3d)
            vals[c.name] = (t2, out3d)
        x = torch.cat([pad_to(flatten_port(*vals[n]), L.flat(n)) for n in self.spec.outputs], 1)
        return F.linear(x, w["head__w"], w["head__b"]).squeeze(-1)


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
        m["dims"] = {b: like.new_tensor([1.0 if i < ca.dims[b] else 0.0 for i in range(max(c.dims[b]))])
                     for b in ca.dims if b in MULTI_HOT_BLOCKS}
        out[c.name] = m
    return out
