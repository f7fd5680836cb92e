"""Where every weight lives: the supernet's maximal parameters and, for one arch, the slices its subnet uses.

One layout serves the supernet's allocation, its hard-mask execution, the exported subnet and the
partial weight transfer between them, so the three can never disagree about an offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from ..core.adaptors import FLATTEN, HEAD, PAIR_FC, STACK
from ..core.arch import Arch, ChoiceArch
from ..core.blocks import REGISTRY, Sizes
from ..core.graph import execution_order
from ..core.names import Namespace, block_param, pair_stem
from ..core.shapes import (
    Port,
    Positions,
    count,
    full_selection,
    grid,
    infer,
    input_ports,
    is_prefix,
    leading,
    place,
    shift,
    to_ranges,
    union,
)
from ..core.spec import SpaceSpec

Ranges = Optional[Positions]  # None: the whole dimension


@dataclass(frozen=True)
class Slice:
    """A subnet tensor cut out of a supernet parameter: per dimension, the ranges kept (concatenated)."""

    param: str
    ranges: tuple[Ranges, ...]


@dataclass(frozen=True)
class Init:
    """How the supernet initialises a parameter: nn.Linear's default for weights and biases (uniform in
    ±1/√fan_in), ones and zeros for LayerNorm."""

    kind: str  # "uniform", "ones", "zeros"
    fan_in: int = 0


class SupernetLayout:
    """The supernet's maximal shapes and the offset of each candidate inside every concatenation."""

    def __init__(self, spec: SpaceSpec):
        self.spec = spec
        self.d = spec.embed_dim
        self.shapes = infer(spec)
        self.ports: dict[str, Port] = input_ports(spec)
        for c in spec.choices:
            self.ports[c.name] = self.shapes[c.name].port
        self.pairs = sorted(
            {pair for c in spec.choices if c.pair_blocks for pair in c.pairs},
            key=lambda p: (self.order(p[0]), self.order(p[1])),
        )
        self.params: dict[str, tuple] = {}
        self.init: dict[str, Init] = {}
        self._allocate()

    def order(self, name: str) -> int:
        return (
            -2
            if name == self.spec.dense.name
            else -1
            if name == self.spec.embed.name
            else self.spec.choice_by_name[name].index
        )

    def flat(self, name: str) -> int:
        return self.ports[name].flat(self.d)

    def column_offsets(self, names) -> dict:
        """Offsets of each name's flattened block in a concatenation over `names` at maximal widths."""
        out, off = {}, 0
        for n in names:
            out[n] = off
            off += self.flat(n)
        return out

    def flat_positions(self, name: str, pos2d: Positions, rows3d: int) -> Positions:
        """Where a node's flattened features sit in its maximal flat tensor: its 2D features, then its 3D rows
        after the whole maximal 2D part."""
        return union(pos2d, shift(leading(rows3d * self.d), self.ports[name].width2d))

    def row_offsets(self, names) -> dict:
        """Offsets of each name's rows in a stack over `names`: one row for a 2D part, then its 3D rows."""
        out, off = {}, 0
        for n in names:
            out[n] = off
            off += self.ports[n].stack_rows()
        return out

    def _add(self, key: str, roles, role_shapes: dict) -> None:
        weight_fan_in = {}
        for role in roles:
            shape = role_shapes[role.name]
            self.params[key(role.name)] = shape
            if role.init == "weight":
                weight_fan_in[role.name[1:]] = math.prod(shape[1:])  # a k×k kernel's too, as nn.Conv2d's
        for role in roles:
            fan_in = weight_fan_in.get(role.name[1:], 0)
            self.init[key(role.name)] = Init("uniform" if role.init in ("weight", "bias") else role.init, fan_in)

    def _allocate(self) -> None:
        d, bn = self.d, self.spec.bottleneck
        top = full_selection(self.spec)
        for c in self.spec.choices:
            s = self.shapes[c.name]
            for b in c.blocks:
                block = REGISTRY[b]
                sizes = Sizes(
                    top[c.name].dims.get(b, 0),
                    s.linear_in,
                    s.stack_rows,
                    s.block_out[b] if not block.multi_hot else 0,
                    d,
                    self.spec.modules,
                )
                roles = block.roles_under(self.spec.norm)
                self._add(
                    lambda role, c=c, b=b: block_param(c.name, b, role),
                    roles,
                    {role.name: block.shape(role, sizes) for role in roles},
                )
            if any(REGISTRY[b].adaptor == STACK.name for b in c.blocks):
                for cand in c.candidates:
                    width = self.ports[cand].width2d
                    if width:
                        self._add(
                            lambda role, c=c, cand=cand: STACK.key(c.name, cand, role),
                            STACK.roles,
                            STACK.shapes(width, d),
                        )
        for i, j in self.pairs:
            shapes = PAIR_FC.shapes(self.flat(i), self.flat(j), bn)
            self._add(lambda role, i=i, j=j: PAIR_FC.key(i, j, role), PAIR_FC.roles, shapes)
        head_in = sum(self.flat(n) for n in self.spec.outputs)
        self._add(HEAD.key, HEAD.roles, HEAD.shapes(head_in))


@dataclass
class BlockPlan:
    block: str
    attr: str  # the subnet's attribute holding the block's module
    out: int  # 2D width, or 3D rows for a 3D block
    sizes: Sizes  # what the block's formulas read, at this subnet's widths
    params: dict  # role -> Slice
    positions: Positions  # a 2D block's output features in the choice's maximal 2D tensor
    at: Optional[Positions] = None  # where they sit in the choice's 2D output, when not its first features


@dataclass
class ChoicePlan:
    name: str
    inputs: tuple[str, ...]  # candidate order
    pairs: tuple[tuple[str, str], ...]  # the pairs its gating/sum block sums (Eq. 2)
    pair_at: dict  # pair -> where its interaction sits in the pair block's output (None: its first features)
    stack_rows: int
    linear_in: int
    stack: dict  # input name -> {"w": Slice, "b": Slice} for 2D inputs of a stack adaptor
    stack_attr: Optional[str]
    blocks: list[BlockPlan]
    port: Port


@dataclass
class PairPlan:
    attr: str
    left: int  # flattened widths of the pair's inputs
    right: int
    params: dict  # role -> Slice


@dataclass
class SubnetPlan:
    """Everything one arch needs: active choices in order, their real shapes, their weight slices and
    the attribute names of the exported subnet's modules (so weight transfer needs no codegen)."""

    spec: SpaceSpec
    arch: Arch
    choices: list[ChoicePlan]
    ports: dict
    pairs: dict  # (i, j) -> PairPlan
    head: dict
    head_attr: str = "head"
    head_in: int = 0
    d: int = 0

    def weight_sources(self) -> dict:
        """The subnet's parameter paths (as `named_parameters` gives them) -> supernet slices."""
        out = {}
        for cp in self.choices:
            twod = list(cp.stack)
            for k, x in enumerate(twod):
                prefix = STACK.module_prefix(cp.stack_attr, k, len(twod))
                for role in STACK.roles:
                    out[f"{prefix}.{role.module_path}"] = cp.stack[x][role.name]
            for bp in cp.blocks:
                for role in REGISTRY[bp.block].roles_under(self.spec.norm):
                    out[f"{bp.attr}.{role.module_path}"] = bp.params[role.name]
        for pp in self.pairs.values():
            for role in PAIR_FC.roles:
                out[f"{pp.attr}.{role.module_path}"] = pp.params[role.name]
        for role in HEAD.roles:
            out[f"{self.head_attr}.{role.module_path}"] = self.head[role.name]
        return out


@lru_cache(maxsize=1)
def _module_attributes() -> frozenset:
    """What an attribute of the subnet module may not be called: nn.Module's own attributes."""
    from torch import nn

    return frozenset(dir(nn.Module))


def _at(p: Positions, within: Positions) -> Optional[Positions]:
    """Where `p`'s features sit in the gap-free order of `within`; None when they are its first ones."""
    return None if is_prefix(p, within) else to_ranges(place(p, within))


def build_plan(spec: SpaceSpec, arch: Arch, layout: Optional[SupernetLayout] = None) -> SubnetPlan:
    """The subnet of `arch`: each feature keeps its supernet position's weights, in supernet order."""
    planner = _Planner(spec, layout or SupernetLayout(spec))
    plans = [planner.choice(name, arch.choices[name]) for name in execution_order(spec, arch)]
    cols = planner.layout.column_offsets(spec.outputs)
    head_pos = union(*[shift(planner.flat_pos[x], cols[x]) for x in spec.outputs])
    head = _slices(HEAD, HEAD.slices(head_pos))
    attr = planner.attrs.create("head")
    return SubnetPlan(spec, arch, plans, planner.ports, planner.pairs, head, attr, count(head_pos), spec.embed_dim)


class _Planner:
    """Plans one arch's choices in execution order, keeping what later choices read: each node's port and
    flat positions, the pair FCs planned so far, the attribute names handed out."""

    def __init__(self, spec: SpaceSpec, layout: SupernetLayout):
        self.spec, self.layout, self.d, self.top = spec, layout, spec.embed_dim, full_selection(spec)
        self.ports = input_ports(spec)
        self.flat_pos = {
            spec.dense.name: leading(spec.dense.width),
            spec.embed.name: leading(spec.embed.count * self.d),
        }
        self.attrs = Namespace(_module_attributes())
        self.pairs: dict = {}

    def choice(self, name: str, ca: ChoiceArch) -> "ChoicePlan":
        layout, ports, flat_pos = self.layout, self.ports, self.flat_pos
        c = self.spec.choice_by_name[name]
        inputs = tuple(x for x in c.candidates if x in ca.inputs)
        cols, rows = layout.column_offsets(c.candidates), layout.row_offsets(c.candidates)
        in_pos = union(*[shift(flat_pos[x], cols[x]) for x in inputs])
        row_pos = union(
            *[((rows[x], rows[x] + 1),) if ports[x].width2d else () for x in inputs],
            *[shift(leading(ports[x].rows3d), rows[x] + (1 if layout.ports[x].width2d else 0)) for x in inputs],
        )
        stack, stack_attr = {}, None
        if any(REGISTRY[b].adaptor == STACK.name for b in ca.blocks):
            stack = {
                x: _slices(STACK, STACK.slices(_pos2d(layout, x, flat_pos[x])), name, x)
                for x in inputs
                if ports[x].width2d
            }
            stack_attr = self.attrs.create(f"{name}_stack") if stack else None
        pair_blocks = [b for b in ca.blocks if not REGISTRY[b].multi_hot]
        pair_pos = union(*[flat_pos[j] for _, j in ca.pairs]) if pair_blocks else ()
        merged = len(ca.blocks) > 1
        blocks = [self.block(name, b, ca, merged, in_pos, row_pos, pair_pos) for b in ca.blocks]
        pair_at = self.pair_fcs(ca, pair_pos) if pair_blocks else {}
        twod = [bp for bp in blocks if REGISTRY[bp.block].output == "2d"]
        pos2d = union(*[bp.positions for bp in twod])
        for bp in twod:
            bp.at = _at(bp.positions, pos2d)
        rows3d = next((bp.out for bp in blocks if REGISTRY[bp.block].output == "3d"), 0)
        ports[name] = Port(count(pos2d), rows3d)
        flat_pos[name] = layout.flat_positions(name, pos2d, rows3d)
        pairs = ca.pairs if pair_blocks else ()
        return ChoicePlan(
            name, inputs, pairs, pair_at, count(row_pos), count(in_pos), stack, stack_attr, blocks, ports[name]
        )

    def block(self, name: str, b: str, ca: ChoiceArch, merged: bool, in_pos, row_pos, pair_pos) -> "BlockPlan":
        """One block of a choice: its sizes, where its output features sit, and its weights' slices."""
        block, d, spec = REGISTRY[b], self.d, self.spec
        sizes = Sizes(ca.dims.get(b, 0), count(in_pos), count(row_pos), count(pair_pos), d, spec.modules)
        if block.output == "3d":
            positions = ()
        elif block.multi_hot and block.adaptor == FLATTEN.name:
            positions = leading(sizes.dim)
        elif block.multi_hot:
            positions = grid(row_pos, self.top[name].dims[b], sizes.dim)
        else:
            positions = pair_pos
        top_dim = self.top[name].dims.get(b, 0)
        ranges = {
            "dim": leading(sizes.dim),
            "in": in_pos,
            "rows": row_pos,
            "embed": None,
            "out": positions,
            "dim_embed": leading(sizes.dim * d),
            "rows_dim": grid(row_pos, top_dim, sizes.dim),
            "kernel": None,
            "rank": None,
            "ffn": None,
            "one": None,
        }
        params = {
            role.name: Slice(block_param(name, b, role.name), tuple(ranges[a] for a in role.axes))
            for role in block.roles_under(spec.norm)
        }
        attr = self.attrs.create(f"{name}_{b}" if merged else name)
        return BlockPlan(b, attr, block.out_size(sizes), sizes, params, positions)

    def pair_fcs(self, ca: ChoiceArch, pair_pos) -> dict:
        """Where each pair's interaction sits in the pair blocks' output; each pair's FC planned once."""
        flat_pos, pair_at = self.flat_pos, {}
        for i, j in ca.pairs:
            pair_at[(i, j)] = _at(flat_pos[j], pair_pos)
            if (i, j) not in self.pairs:
                self.pairs[(i, j)] = PairPlan(
                    self.attrs.create(pair_stem(i, j)),
                    count(flat_pos[i]),
                    count(flat_pos[j]),
                    _slices(PAIR_FC, PAIR_FC.slices(flat_pos[i], flat_pos[j]), i, j),
                )
        return pair_at


def _slices(adaptor, ranges: dict, *owner) -> dict:
    """An adaptor's role → ranges as role → Slice of its supernet parameter (`adaptor.key(*owner, role)`)."""
    return {role: Slice(adaptor.key(*owner, role), r) for role, r in ranges.items()}


def _pos2d(layout: SupernetLayout, name: str, flat_pos: Positions) -> Positions:
    """The 2D part of a node's flat positions (those before its maximal 2D width)."""
    width = layout.ports[name].width2d
    return tuple((a, min(b, width)) for a, b in flat_pos if a < width)
