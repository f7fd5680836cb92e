"""The masked supernet: maximal weights for every block, run by an arch (hard path) or by masks (mask path).

The hard path (`arch=`) runs only what the arch uses, with weights sliced out of the maximal ones by the
shared `layout`, at the subnet's widths: it computes what the exported subnet computes. The mask path
(`masks=`) runs every block at maximal widths, each feature at its supernet position, weighed by the masks;
with an arch's 0/1 masks (`space.masks(arch)`) it computes the same numbers. Both paths call the block
registry's one operation per block.

Mask layout (`masks=`): a dict keyed by decision name (`space.decisions`), each value the weights of that
decision's options, shaped (size,) for the whole batch or (B, size) per example: one-hot for an arch,
probabilities or Gumbel-softmax samples for DNAS, RL samples for one-shot search. A dim decision's weights
become a leading-ones mask over the maximal dim (feature k weighs P(dim > k)); an input decision's weight is
its option 1 (on). An optional `"<choice>.pairs"` entry, (K, K) or (B, K, K), weighs each (left, right) pair
of a gating/sum block directly (pair sets); otherwise pair (i, j) weighs P(left = i) · P(right = j). A
missing decision weighs every option 1: no masks at all is the all-on supernet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..compiler.layout import Slice, SupernetLayout, build_plan
from ..core.adaptors import FLATTEN, HEAD, PAIR_FC, STACK
from ..core.arch import Arch
from ..core.blocks import REGISTRY
from ..core.decisions import all_decisions, encode_values
from ..core.errors import RksError
from ..core.names import block_param, decision_name
from ..core.spec import ChoiceSpec, SpaceSpec, spec_from_dict

_PLAN_CACHE = 256
_INDEX_CACHE = 4096  # index tensors of placement ranges: a few per plan


class MaskError(RksError, ValueError):
    """Masks that do not fit the supernet's mask layout (`space.decisions`)."""


def flatten(t2: Optional[torch.Tensor], t3: Optional[torch.Tensor]) -> torch.Tensor:
    """The flatten adaptor's view of a node."""
    return FLATTEN.view(torch.cat, t2, t3)


def widen(t: torch.Tensor, width: int, index: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`t` in a zero tensor `width` wide: as its first features, or at the positions `index`."""
    if index is None:
        return t if t.shape[-1] == width else F.pad(t, (0, width - t.shape[-1]))
    return t.new_zeros(t.shape[:-1] + (width,)).index_copy(t.dim() - 1, index, t)


def _bcast(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-batch scalar or per-example (B,) weight shaped to multiply `like`."""
    return m.reshape(m.shape + (1,) * (like.dim() - m.dim())) if m.dim() else m


def _learn_known(weights: list) -> None:
    """Mark which fixed weights of one mask-path forward are 0 everywhere (a hard mask: what they weigh is
    not computed) and which 1 everywhere (all-on: the multiplication is skipped): read back for all of them
    in one transfer per forward, on every device alike (the CPU runs the accelerator's code), and kept on
    the tensor (`_known`, which the checkpointed recompute in backward sees too). A weight derived later (a
    feature mask) is unknown there and is multiplied: x · 1 is x, so nothing changes but time."""
    fixed = [w for w in weights if not w.requires_grad and getattr(w, "_known", None) is None]
    if fixed:
        flags = torch.stack([torch.stack([(w == 0).all(), (w == 1).all()]) for w in fixed]).tolist()
        for w, (zero, one) in zip(fixed, flags):
            w._known = (bool(zero), bool(one))


def _fact(wt: torch.Tensor, which: int) -> bool:
    if wt.requires_grad:
        return False
    known = getattr(wt, "_known", None)
    return known[which] if known is not None else False


def _hard_zero(wt: torch.Tensor) -> bool:
    """A weight that is 0 everywhere and needs no gradient (a hard mask): what it weighs is not computed."""
    return _fact(wt, 0)


@dataclass
class Node:
    """A node's outputs at maximal widths on the mask path, with the weight of each feature: `t2` (B×W2)
    and its feature weights `m2`; `t3` (B×R3×D) and its row weights `r3`; `has2d`, the weight of its 2D
    part being there at all (the stack adaptor projects it to a row, bias included, only then)."""

    t2: Optional[torch.Tensor]
    m2: Optional[torch.Tensor]
    has2d: object
    t3: Optional[torch.Tensor]
    r3: Optional[torch.Tensor]
    _flat: Optional[torch.Tensor] = field(default=None, repr=False)

    def flat(self) -> torch.Tensor:
        """The flatten adaptor's view, built once per node (several readers take it)."""
        if self._flat is None:
            self._flat = flatten(self.t2, self.t3)
        return self._flat

    def flat_mask(self, d: int) -> torch.Tensor:
        parts = [m for m in (self.m2, None if self.r3 is None else self.r3.repeat_interleave(d, -1)) if m is not None]
        return parts[0] if len(parts) == 1 else torch.cat([_expand(p, parts) for p in parts], -1)


def _expand(m: torch.Tensor, like: list) -> torch.Tensor:
    """A per-batch mask broadcast to per-example when another part is per-example."""
    batch = next((p.shape[0] for p in like if p.dim() == 2), None)
    return m.expand(batch, -1) if batch is not None and m.dim() == 1 else m


class SupernetBase(nn.Module):
    def __init__(self, spec: SpaceSpec | dict, checkpoint_activations: bool = False):
        super().__init__()
        self.spec = spec if isinstance(spec, SpaceSpec) else spec_from_dict(spec)
        self.layout = SupernetLayout(self.spec)
        self.checkpoint_activations = checkpoint_activations
        self.mask_shapes = mask_shapes(self.spec)
        self.weights = nn.ParameterDict(
            {k: nn.Parameter(torch.empty(shape)) for k, shape in self.layout.params.items()}
        )
        self._plans: OrderedDict = OrderedDict()
        self._index: OrderedDict = OrderedDict()
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
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = torch.cat([torch.arange(a, b) for a, b in ranges]).to(device)
            if len(self._index) > _INDEX_CACHE:
                self._index.popitem(last=False)
        else:
            self._index.move_to_end(key)
        return index

    def _at(self, ranges, like: torch.Tensor) -> Optional[torch.Tensor]:
        """The cached index tensor of a plan's placement ranges (None: first features)."""
        return None if ranges is None else self._indices(ranges, like.device)

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
            raise MaskError("give either an arch (hard path) or masks (mask path), not both")
        if arch is not None:
            return self.forward_arch(dense, sparse, arch)
        return self.forward_masks(dense, sparse, masks or {})

    def forward_arch(self, dense, sparse, arch: Arch) -> torch.Tensor:
        """Dynamic execution: only what the arch uses, at the subnet's widths."""
        plan = self.plan(arch)
        vals = {self.spec.dense.name: (dense, None), self.spec.embed.name: (None, sparse)}
        fc_cache = {}
        for cp in plan.choices:
            adaptors = {REGISTRY[bp.block].adaptor for bp in cp.blocks}
            x = {}
            if "flatten" in adaptors:
                x["flatten"] = torch.cat([flatten(*vals[i]) for i in cp.inputs], 1)
            if "stack" in adaptors:
                parts = []
                for i in cp.inputs:
                    t2, t3 = vals[i]
                    if t2 is not None:
                        proj = {role: self.take(part) for role, part in cp.stack[i].items()}
                        parts.append(STACK.project(F, t2, proj))
                    if t3 is not None:
                        parts.append(t3)
                x["stack"] = torch.cat(parts, 1)
            outs2d, out3d, width2d = [], None, cp.port.width2d
            for bp in cp.blocks:
                block = REGISTRY[bp.block]
                p = {role: self.take(s) for role, s in bp.params.items()}
                if block.multi_hot:
                    y = block.apply(F, x[block.adaptor], p)
                else:
                    y = block.apply(F, self._pairs_arch(plan, cp, block, vals, fc_cache, bp.out), p)
                if block.output == "3d":
                    out3d = y
                else:
                    outs2d.append(widen(y, width2d, self._at(bp.at, y)))
            t2 = (outs2d[0] if len(outs2d) == 1 else sum(outs2d)) if outs2d else None
            vals[cp.name] = (t2, out3d)
        x = torch.cat([flatten(*vals[n]) for n in self.spec.outputs], 1)
        return HEAD.apply(F, x, {role: self.take(part) for role, part in plan.head.items()})

    def _pairs_arch(self, plan, cp, block, vals, fc_cache, width) -> torch.Tensor:
        """Eq. 2 over the arch's pairs: each interaction at its features of the block's output, summed."""
        total = None
        for i, j in cp.pairs:
            if (i, j) not in fc_cache:
                fc = {role: self.take(part) for role, part in plan.pairs[(i, j)].params.items()}
                fc_cache[(i, j)] = PAIR_FC.apply(F, flatten(*vals[i]), fc)
            y = block.combine(F, fc_cache[(i, j)], flatten(*vals[j]))
            y = widen(y, width, self._at(cp.pair_at[(i, j)], y))
            total = y if total is None else total + y
        return total

    # -- the mask path -------------------------------------------------------------------------
    def forward_masks(self, dense, sparse, masks: dict) -> torch.Tensor:
        """Every block at maximal width, each feature at its supernet position, weighed by the masks."""
        _check_masks(self.mask_shapes, masks)
        masks = {k: v.to(dense) for k, v in masks.items()}
        one = dense.new_ones(())
        nodes = {
            self.spec.dense.name: Node(dense, dense.new_ones(dense.shape[-1]), one, None, None),
            self.spec.embed.name: Node(None, None, 0 * one, sparse, sparse.new_ones(sparse.shape[1])),
        }
        fc_cache = {}  # FC_ij's bottleneck activations, shared by every choice reading pair (i, j)
        weights_of = {c.name: choice_weights(c, masks, dense) for c in self.spec.choices}
        _learn_known([w for weights in weights_of.values() for w in _leaves(weights)])
        for c in self.spec.choices:
            weights = weights_of[c.name]
            reads = {x: nodes[x] for x in c.candidates}
            if self.checkpoint_activations and torch.is_grad_enabled():
                nodes[c.name] = self._checkpointed(c, weights, reads)
            else:
                nodes[c.name] = self._choice(c, weights, reads, fc_cache)
        x = torch.cat([nodes[n].flat() for n in self.spec.outputs], 1)
        return HEAD.apply(F, x, HEAD.tensors(self.weights))

    def _checkpointed(self, c: ChoiceSpec, weights: dict, reads: dict) -> Node:
        """One choice under activation checkpointing: only its outputs stay alive; backward recomputes the
        rest (the paper's activation checkpointing, per choice)."""
        names = list(reads)
        fields = ("t2", "m2", "t3", "r3")
        flat_in = [getattr(reads[x], f) for x in names for f in fields]
        has2d = [reads[x].has2d for x in names]

        def run(*tensors):
            rebuilt = {
                x: Node(tensors[4 * k], tensors[4 * k + 1], has2d[k], tensors[4 * k + 2], tensors[4 * k + 3])
                for k, x in enumerate(names)
            }
            node = self._choice(c, weights, rebuilt, {})
            return node.t2, node.m2, node.t3, node.r3, node.has2d

        t2, m2, t3, r3, h = checkpoint(run, *flat_in, use_reentrant=False)
        return Node(t2, m2, h, t3, r3)

    def _choice(self, c: ChoiceSpec, weights: dict, reads: dict, fc_cache: dict) -> Node:
        L, w, d = self.layout, self.weights, self.layout.d
        port = L.ports[c.name]
        adaptors = {REGISTRY[b].adaptor for b in c.blocks if not _hard_zero(weights["block"][b])}
        on = weights["inputs"]
        x, rows = {}, None
        if "flatten" in adaptors:
            x["flatten"] = torch.cat([_weigh(reads[i].flat(), on[i]) for i in c.candidates], 1)
        if "stack" in adaptors:
            parts, row_w = [], []
            for i in c.candidates:
                node = reads[i]
                if L.ports[i].width2d:
                    presence = on[i] * node.has2d
                    parts.append(_weigh(STACK.project(F, node.t2, STACK.tensors(w, c.name, i)), presence))
                    row_w.append(presence.unsqueeze(-1))
                if L.ports[i].rows3d:
                    parts.append(_weigh(node.t3, on[i]))
                    row_w.append(_weigh_mask(node.r3, on[i]))
            x["stack"] = torch.cat(parts, 1)
            rows = torch.cat([_expand(r, row_w) for r in row_w], -1)
        ref = _batch_reference(reads)
        t2, m2, has2d, t3, r3 = None, None, ref.new_zeros(()), None, None
        for b in c.blocks:
            bw = weights["block"][b]
            if _hard_zero(bw):
                continue
            block = REGISTRY[b]
            p = {role.name: w[block_param(c.name, b, role.name)] for role in block.roles_under(self.spec.norm)}
            if block.multi_hot:
                masks = {"dim": weights["dims"].get(b), "rows": rows}
                y = block.apply(F, x[block.adaptor], p, masks)
            else:
                inter, out_mask = self._pairs_masked(c, block, weights["pairs"], reads, fc_cache)
                masks = {"out": out_mask}
                y = block.apply(F, inter, p, masks)
            fm = _weigh_mask(block.feature_mask(masks), bw)
            if block.output == "3d":
                t3, r3 = _weigh(y, bw), fm
            else:
                y, fm = widen(_weigh(y, bw), port.width2d), widen(fm, port.width2d)
                t2 = y if t2 is None else t2 + y
                m2 = fm if m2 is None else m2 + fm
                has2d = has2d + bw
        if port.width2d:
            if t2 is None:
                t2, m2 = ref.new_zeros(ref.shape[0], port.width2d), ref.new_zeros(port.width2d)
            else:
                m2, has2d = m2.clamp(max=1), has2d.clamp(max=1)
        if port.rows3d and t3 is None:
            t3, r3 = ref.new_zeros(ref.shape[0], port.rows3d, d), ref.new_zeros(port.rows3d)
        return Node(t2, m2, has2d, t3, r3)

    def _pairs_masked(self, c: ChoiceSpec, block, pair_w: dict, reads: dict, hidden: dict):
        """Eq. 2 under pair weights, grouped by right input j: the block's `interactions` of every weighted
        FC_ij(x_i) with x_j, masked to x_j's features and placed at them; the block's feature weights are the
        union of the rights' feature weights. FC_ij's bottleneck activations (B×bottleneck, small) are shared
        by every choice and block reading the pair (`hidden`)."""
        w, d = self.weights, self.layout.d
        width = self.layout.shapes[c.name].block_out[block.name]
        by_right: dict = {}
        for (i, j), wt in pair_w.items():
            if not _hard_zero(wt):
                by_right.setdefault(j, []).append((i, wt))
        ref = _batch_reference(reads)
        total, mask = ref.new_zeros(ref.shape[0], width), ref.new_zeros(width)
        for j, lefts in by_right.items():
            for i, _ in lefts:
                if (i, j) not in hidden:
                    hidden[(i, j)] = PAIR_FC.down(F, reads[i].flat(), PAIR_FC.tensors(w, i, j))
            ups = [(w[PAIR_FC.key(i, j, "w2")], w[PAIR_FC.key(i, j, "b2")]) for i, _ in lefts]
            weights = [wt for _, wt in lefts]
            fm = reads[j].flat_mask(d)
            hiddens = [hidden[(i, j)] for i, _ in lefts]

            def interact(x_j, *hiddens, ups=ups, weights=weights, fm=fm):
                return _weigh_features(block.interactions(F, list(hiddens), ups, weights, x_j, _weigh), fm)

            if self.checkpoint_activations and block.keeps_per_pair and torch.is_grad_enabled():
                # inside the choice's checkpoint: backward holds one right input's per-pair tensors at a time
                y = checkpoint(interact, reads[j].flat(), *hiddens, use_reentrant=False)
            else:
                y = interact(reads[j].flat(), *hiddens)
            total[..., : y.shape[-1]] += y
            mask = mask + widen(_weigh_mask(fm, sum(weights)), width)
        return total, mask.clamp(max=1)


def _is_one(wt: torch.Tensor) -> bool:
    """A weight that is 1 everywhere and needs no gradient (all-on): multiplying by it is skipped."""
    return _fact(wt, 1)


def _weigh(t: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """A tensor B×… weighed by a per-batch () or per-example (B,) weight."""
    return t if _is_one(wt) else t * _bcast(wt, t)


def _weigh_features(t: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """A B×W tensor weighed by feature weights (W,) or (B, W)."""
    return t if _is_one(m) else t * m


def _weigh_mask(m: torch.Tensor, wt: torch.Tensor) -> torch.Tensor:
    """A feature mask (W,) or (B, W) weighed by a per-batch () or per-example (B,) weight."""
    return m * wt.unsqueeze(-1) if wt.dim() else m * wt


def _leaves(weights: dict) -> list:
    """The weight tensors of `choice_weights`: per block, per input, per pair (not the dim masks)."""
    return [*weights["block"].values(), *weights["inputs"].values(), *weights["pairs"].values()]


def _batch_reference(reads: dict) -> torch.Tensor:
    node = next(iter(reads.values()))
    return node.t2 if node.t2 is not None else node.t3


def mask_shapes(spec: SpaceSpec) -> dict:
    """The mask layout's keys and the trailing shape of each: a decision's option count, a pair table's K×K."""
    shapes = {d.name: (d.size,) for d in all_decisions(spec)}
    for c in spec.choices:
        if c.pair_blocks and c.fixed_pairs is None:
            shapes[decision_name(c.name, "pairs")] = (len(c.candidates), len(c.candidates))
    return shapes


def _check_masks(shapes: dict, masks: dict) -> None:
    for key, value in masks.items():
        if key not in shapes:
            raise MaskError(f"unknown mask `{key}`; masks are keyed by decision name (see `space.decisions`)")
        want = shapes[key]
        if tuple(value.shape[-len(want) :]) != want or value.dim() > len(want) + 1:
            raise MaskError(
                f"mask `{key}`: expected weights shaped {want} or (B, {', '.join(map(str, want))}), "
                f"got {tuple(value.shape)}"
            )


def choice_weights(c: ChoiceSpec, masks: dict, like: torch.Tensor) -> dict:
    """A choice's weights from the mask layout: per block, per input (on), per pair, and per dim feature. What
    no mask gives is a constant one, known to be so without reading it back."""
    one = _ones(like, ())
    block = masks.get(decision_name(c.name, "block"))
    blocks = {b: (one if block is None else block[..., k]) for k, b in enumerate(c.blocks)}
    inputs = {}
    for x in c.candidates:
        bit = masks.get(decision_name(c.name, "input", x))
        inputs[x] = one if bit is None else bit[..., 1]
    pairs = {}
    if c.pair_blocks:
        table = masks.get(decision_name(c.name, "pairs"))
        left, right = masks.get(decision_name(c.name, "left")), masks.get(decision_name(c.name, "right"))
        for i, j in c.pairs:
            a, b = c.candidates.index(i), c.candidates.index(j)
            if table is not None:
                pairs[(i, j)] = table[..., a, b]
            else:
                if left is None and right is None:
                    pairs[(i, j)] = one
                else:
                    pairs[(i, j)] = (one if left is None else left[..., a]) * (one if right is None else right[..., b])
    dims = {}
    for b, options in c.dims.items():
        probs = masks.get(decision_name(c.name, "dim", b))
        top = max(options)
        if probs is None:
            dims[b] = _ones(like, top)
        else:
            below = like.new_tensor([[1.0 if k < o else 0.0 for k in range(top)] for o in options])
            dims[b] = probs @ below  # feature k weighs P(dim > k): a soft leading-ones mask
    return {"block": blocks, "inputs": inputs, "pairs": pairs, "dims": dims}


def _ones(like: torch.Tensor, shape) -> torch.Tensor:
    ones = like.new_ones(shape)
    ones._known = (False, True)  # (all zero, all one), as `_learn_known` would find it
    return ones


def hard_masks(spec: SpaceSpec, arch: Arch, like: torch.Tensor) -> dict:
    """An arch's 0/1 masks in the mask layout: one-hot per decision, several blocks on for a merged choice,
    a (K, K) table for a set of pairs."""
    out = {}
    decisions = all_decisions(spec)
    for d, values in zip(decisions, encode_values(spec, decisions, arch)):
        vec = like.new_zeros(d.size)
        for v in values:
            vec[v] = 1.0
        out[d.name] = vec
    for c in spec.choices:
        ca = arch.choices[c.name]
        if c.pair_blocks and len(ca.pairs) > 1 and c.fixed_pairs is None:
            table = like.new_zeros(len(c.candidates), len(c.candidates))
            for i, j in ca.pairs:
                table[c.candidates.index(i), c.candidates.index(j)] = 1.0
            out[decision_name(c.name, "pairs")] = table
            out.pop(decision_name(c.name, "left"), None)
            out.pop(decision_name(c.name, "right"), None)
    return out
