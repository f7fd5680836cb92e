"""Shape inference: the 2D width and 3D row count of every node at maximal widths, and feature positions."""

from __future__ import annotations

from dataclasses import dataclass

from .arch import ChoiceArch
from .blocks import REGISTRY, Sizes
from .spec import SpaceSpec

Positions = tuple[tuple[int, int], ...]  # sorted, disjoint [start, stop) ranges


@dataclass(frozen=True)
class Port:
    """What a node emits: a 2D tensor B×width2d (if > 0) and a 3D tensor B×rows3d×D (if > 0). A reader that
    flattens takes both, the 2D part first: the paper's adaptors reshape each output to 2D and concatenate."""

    width2d: int
    rows3d: int

    def flat(self, d: int) -> int:
        return self.width2d + self.rows3d * d

    def stack_rows(self) -> int:
        return (1 if self.width2d else 0) + self.rows3d


# Feature positions. Every feature a subnet computes has one position in the supernet's maximal tensor, and a
# subnet keeps its features in supernet order with the gaps removed; so a weight column or LayerNorm entry
# means the same feature on every path (all-on, soft masks, hard masks, the exported subnet).


def leading(n: int) -> Positions:
    return ((0, n),) if n else ()


def shift(p: Positions, offset: int) -> Positions:
    return tuple((a + offset, b + offset) for a, b in p)


def count(p: Positions) -> int:
    return sum(b - a for a, b in p)


def union(*ps: Positions) -> Positions:
    out: list[list[int]] = []
    for a, b in sorted(r for p in ps for r in p):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def indices(p: Positions) -> list[int]:
    return [i for a, b in p for i in range(a, b)]


def place(p: Positions, within: Positions) -> list[int]:
    """Where each position of `p` sits in the gap-free order of `within` (a superset)."""
    at = {pos: k for k, pos in enumerate(indices(within))}
    return [at[pos] for pos in indices(p)]


def to_ranges(index: list[int]) -> Positions:
    return union(*[((i, i + 1),) for i in index])


def is_prefix(p: Positions, within: Positions) -> bool:
    """`p` is the first positions of `within`: aligning by index (zero-pad and sum) is aligning by position."""
    return place(p, within) == list(range(count(p)))


def grid(rows: Positions, row_width: int, cols: int) -> Positions:
    """Positions of a rows × cols block inside a flattened tensor of `row_width`-wide rows."""
    return union(*[((r * row_width, r * row_width + cols),) for r in indices(rows)]) if cols else ()


@dataclass(frozen=True)
class ChoiceShape:
    inputs: tuple[str, ...]
    linear_in: int
    stack_rows: int
    block_out: dict  # block -> 2D width (or 3D rows for embed_fc)
    port: Port


def input_ports(space: SpaceSpec) -> dict:
    return {space.dense.name: Port(space.dense.width, 0), space.embed.name: Port(0, space.embed.count)}


def choice_shape(space: SpaceSpec, name: str, sel: ChoiceArch, ports: dict) -> ChoiceShape:
    """Maximal shapes of one choice: every input, and the widest right input of its pairs."""
    d = space.embed_dim
    choice = space.choice_by_name[name]
    inputs = sel.inputs if sel.inputs else choice.candidates
    linear_in = sum(ports[i].flat(d) for i in inputs)
    stack_rows = sum(ports[i].stack_rows() for i in inputs)
    right_flat = max(ports[j].flat(d) for _, j in (sel.pairs or choice.pairs))
    out = {
        b: REGISTRY[b].out_size(Sizes(sel.dims.get(b, 0), linear_in, stack_rows, right_flat, d, space.modules))
        for b in sel.blocks
    }
    width2d = max([w for b, w in out.items() if REGISTRY[b].output == "2d"], default=0)
    rows3d = next((w for b, w in out.items() if REGISTRY[b].output == "3d"), 0)
    return ChoiceShape(tuple(inputs), linear_in, stack_rows, out, Port(width2d, rows3d))


def full_selection(space: SpaceSpec) -> dict:
    """Every block, every input, every pair, maximal dims: the shapes the supernet allocates."""
    return {
        c.name: ChoiceArch(
            c.blocks,
            c.candidates if c.multi_hot_blocks else (),
            c.pairs if c.pair_blocks else (),
            {b: max(v) for b, v in c.dims.items()},
        )
        for c in space.choices
    }


def infer(space: SpaceSpec) -> dict:
    """Maximal shapes of every choice: what the supernet allocates."""
    selection = full_selection(space)
    ports = input_ports(space)
    shapes = {}
    for c in space.choices:
        shapes[c.name] = choice_shape(space, c.name, selection[c.name], ports)
        ports[c.name] = shapes[c.name].port
    return shapes
