"""Where every weight lives: the supernet's maximal parameters and, for one arch, the slices its subnet uses.

One layout serves the supernet's allocation, its hard-mask execution, the exported subnet and the
partial weight transfer between them, so the three can never disagree about an offset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .arch import Arch, ChoiceArch
from .graph import active_choices
from .ir import PAIR_BLOCKS, SpaceSpec
from .shapes import Port, full_selection, infer, input_ports

Ranges = Optional[tuple[tuple[int, int], ...]]  # None: the whole dimension


@dataclass(frozen=True)
class Slice:
    """A subnet tensor cut out of a supernet parameter: per dimension, the ranges kept (concatenated)."""

    param: str
    ranges: tuple[Ranges, ...]


def pair_key(i: str, j: str) -> str:
    return f"fc__{i}__{j}"


class SupernetLayout:
    """The supernet's maximal shapes and the offset of each candidate inside every concatenation."""

    def __init__(self, spec: SpaceSpec):
        self.spec = spec
        self.d = spec.embed_dim
        self.shapes = infer(spec)
        self.ports: dict[str, Port] = input_ports(spec)
        for c in spec.choices:
            self.ports[c.name] = self.shapes[c.name].port
        self.pairs = sorted({(i, j) for c in spec.choices if c.pair_blocks
                             for i, j in ([c.fixed_pair] if c.fixed_pair else [(a, b) for a in c.candidates for b in c.candidates])},
                            key=lambda p: (self.order(p[0]), self.order(p[1])))
        self.params = self._param_shapes()

    def order(self, name: str) -> int:
        return -2 if name == self.spec.dense.name else -1 if name == self.spec.embed.name else self.spec.choice_by_name[name].index

    def flat(self, name: str) -> int:
        return self.ports[name].flat(self.d)

    def column_offsets(self, names) -> dict:
        """Offsets of each name's flattened block in a concatenation over `names` at maximal widths."""
        out, off = {}, 0
        for n in names:
            out[n] = off
            off += self.flat(n)
        return out

    def row_offsets(self, names) -> dict:
        """Offsets of each name's rows in a stack over `names`: one row for a 2D part, then its 3D rows."""
        out, off = {}, 0
        for n in names:
            out[n] = off
            off += self.ports[n].stack_rows()
        return out

    def _param_shapes(self) -> dict:
        d, bn = self.d, self.spec.bottleneck
        shapes = {}
        for c in self.spec.choices:
            s, top = self.shapes[c.name], full_selection(self.spec)[c.name]
            key = c.name
            if "linear" in c.blocks:
                dm = top.dims["linear"]
                shapes.update({f"{key}__linear__w": (dm, s.linear_in), f"{key}__linear__b": (dm,),
                               f"{key}__linear__ln_w": (dm,), f"{key}__linear__ln_b": (dm,)})
            if "embed_fc" in c.blocks or "dot_compressed" in c.blocks:
                for cand in c.candidates:
                    if self.ports[cand].width2d:
                        shapes[f"{key}__stack__{cand}__w"] = (d, self.ports[cand].width2d)
                        shapes[f"{key}__stack__{cand}__b"] = (d,)
            if "embed_fc" in c.blocks:
                m = top.dims["embed_fc"]
                shapes.update({f"{key}__embed_fc__w": (m, s.stack_rows), f"{key}__embed_fc__b": (m,),
                               f"{key}__embed_fc__ln_w": (d,), f"{key}__embed_fc__ln_b": (d,)})
            if "dot_compressed" in c.blocks:
                m = top.dims["dot_compressed"]
                shapes.update({f"{key}__dot_compressed__w": (m, s.stack_rows), f"{key}__dot_compressed__b": (m,),
                               f"{key}__dot_compressed__ln_w": (s.block_out["dot_compressed"],),
                               f"{key}__dot_compressed__ln_b": (s.block_out["dot_compressed"],)})
            for b in c.pair_blocks:
                shapes[f"{key}__{b}__ln_w"] = (s.block_out[b],)
                shapes[f"{key}__{b}__ln_b"] = (s.block_out[b],)
        for i, j in self.pairs:
            k = pair_key(i, j)
            shapes.update({f"{k}__w1": (bn, self.flat(i)), f"{k}__b1": (bn,),
                           f"{k}__w2": (self.flat(j), bn), f"{k}__b2": (self.flat(j),)})
        head_in = sum(self.flat(n) for n in self.spec.outputs)
        shapes["head__w"] = (1, head_in)
        shapes["head__b"] = (1,)
        return shapes


@dataclass
class BlockPlan:
    block: str
    out: int  # 2D width, or 3D rows for embed_fc
    params: dict  # role -> Slice


@dataclass
class ChoicePlan:
    name: str
    inputs: tuple[str, ...]  # candidate order
    pair: Optional[tuple[str, str]]
    stack_rows: int
    linear_in: int
    stack: dict  # input name -> {"w": Slice, "b": Slice} for 2D inputs of a stack adaptor
    blocks: list[BlockPlan]
    port: Port


@dataclass
class SubnetPlan:
    """Everything one arch needs: active choices in order, their real shapes, and their weight slices."""

    spec: SpaceSpec
    arch: Arch
    choices: list[ChoicePlan]
    ports: dict
    pairs: dict  # (i, j) -> {"w1","b1","w2","b2": Slice}
    head: dict
    head_in: int = 0
    d: int = 0


def _range(stop: int, start: int = 0):
    return ((start, start + stop),)


def build_plan(spec: SpaceSpec, arch: Arch, layout: Optional[SupernetLayout] = None) -> SubnetPlan:
    layout = layout or SupernetLayout(spec)
    d = spec.embed_dim
    active = active_choices(spec, arch)
    ports = input_ports(spec)
    plans, pairs = [], {}
    for name in active:
        c = spec.choice_by_name[name]
        ca: ChoiceArch = arch.choices[name]
        inputs = tuple(x for x in c.candidates if x in ca.inputs)
        cols = layout.column_offsets(c.candidates)
        rows = layout.row_offsets(c.candidates)
        linear_cols = tuple((cols[x], cols[x] + ports[x].flat(d)) for x in inputs)
        stack_idx = []
        for x in inputs:
            if ports[x].width2d:
                stack_idx.append((rows[x], rows[x] + 1))
            if ports[x].rows3d:
                start = rows[x] + (1 if layout.ports[x].width2d else 0)
                stack_idx.append((start, start + ports[x].rows3d))
        stack_rows = sum(ports[x].stack_rows() for x in inputs)
        linear_in = sum(ports[x].flat(d) for x in inputs)
        stack = {}
        blocks = []
        key = name
        for b in ca.blocks:
            if b == "linear":
                dim = ca.dims[b]
                blocks.append(BlockPlan(b, dim, {
                    "w": Slice(f"{key}__linear__w", (_range(dim), linear_cols)), "b": Slice(f"{key}__linear__b", (_range(dim),)),
                    "ln_w": Slice(f"{key}__linear__ln_w", (_range(dim),)), "ln_b": Slice(f"{key}__linear__ln_b", (_range(dim),))}))
            elif b in ("embed_fc", "dot_compressed"):
                m = ca.dims[b]
                ln = (None,) if b == "embed_fc" else (_range(stack_rows * m),)
                blocks.append(BlockPlan(b, m if b == "embed_fc" else stack_rows * m, {
                    "w": Slice(f"{key}__{b}__w", (_range(m), tuple(stack_idx))), "b": Slice(f"{key}__{b}__b", (_range(m),)),
                    "ln_w": Slice(f"{key}__{b}__ln_w", ln), "ln_b": Slice(f"{key}__{b}__ln_b", ln)}))
                for x in inputs:
                    if ports[x].width2d:
                        stack[x] = {"w": Slice(f"{key}__stack__{x}__w", (None, _range(ports[x].width2d))),
                                    "b": Slice(f"{key}__stack__{x}__b", (None,))}
            else:
                i, j = ca.pair
                wj = ports[j].flat(d)
                blocks.append(BlockPlan(b, wj, {"ln_w": Slice(f"{key}__{b}__ln_w", (_range(wj),)),
                                                "ln_b": Slice(f"{key}__{b}__ln_b", (_range(wj),))}))
                if (i, j) not in pairs:
                    k = pair_key(i, j)
                    pairs[(i, j)] = {"w1": Slice(f"{k}__w1", (None, _range(ports[i].flat(d)))), "b1": Slice(f"{k}__b1", (None,)),
                                     "w2": Slice(f"{k}__w2", (_range(wj), None)), "b2": Slice(f"{k}__b2", (_range(wj),))}
        width2d = max([bp.out for bp in blocks if bp.block != "embed_fc"], default=0)
        rows3d = next((bp.out for bp in blocks if bp.block == "embed_fc"), 0)
        port = Port(width2d, rows3d)
        ports[name] = port
        plans.append(ChoicePlan(name, inputs, ca.pair if c.pair_blocks and any(b in PAIR_BLOCKS for b in ca.blocks) else None,
                                stack_rows, linear_in, stack, blocks, port))
    cols = layout.column_offsets(spec.outputs)
    head_cols = tuple((cols[x], cols[x] + ports[x].flat(d)) for x in spec.outputs)
    head = {"w": Slice("head__w", (None, head_cols)), "b": Slice("head__b", (None,))}
    head_in = sum(ports[x].flat(d) for x in spec.outputs)
    return SubnetPlan(spec, arch, plans, ports, pairs, head, head_in, d)
