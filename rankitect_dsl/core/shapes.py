"""Shape inference: the 2D width and 3D row count each node produces under a selection of decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .arch import ChoiceArch
from .blocks import REGISTRY, Sizes
from .spec import SpaceSpec


@dataclass(frozen=True)
class Port:
    """What a node emits: a 2D tensor B×width2d (if > 0) and a 3D tensor B×rows3d×D (if > 0)."""

    width2d: int
    rows3d: int

    def flat(self, d: int) -> int:
        """Width of the flatten adaptor's view: the 2D part and the flattened 3D part, zero-padded and summed
        (a choice emits both only when it runs several blocks at once, as the all-on supernet does)."""
        return max(self.width2d, self.rows3d * d)

    def stack_rows(self) -> int:
        return (1 if self.width2d else 0) + self.rows3d


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
    """Shapes of one choice; `sel.pair is None` with a pair block means every pair (the all-on supernet)."""
    d = space.embed_dim
    choice = space.choice_by_name[name]
    inputs = sel.inputs if sel.inputs else choice.candidates
    linear_in = sum(ports[i].flat(d) for i in inputs)
    stack_rows = sum(ports[i].stack_rows() for i in inputs)
    rights = [sel.pair[1]] if sel.pair else list(choice.candidates)
    right_flat = max(ports[j].flat(d) for j in rights)
    out = {b: REGISTRY[b].out_size(Sizes(sel.dims.get(b, 0), linear_in, stack_rows, right_flat, d)) for b in sel.blocks}
    width2d = max([w for b, w in out.items() if REGISTRY[b].output == "2d"], default=0)
    rows3d = next((w for b, w in out.items() if REGISTRY[b].output == "3d"), 0)
    return ChoiceShape(tuple(inputs), linear_in, stack_rows, out, Port(width2d, rows3d))


def full_selection(space: SpaceSpec) -> dict:
    """Every block, every input, every pair, maximal dims: the shapes the supernet allocates."""
    return {
        c.name: ChoiceArch(
            c.blocks, c.candidates if c.multi_hot_blocks else (), None, {b: max(v) for b, v in c.dims.items()}
        )
        for c in space.choices
    }


def infer(space: SpaceSpec, selection: Optional[dict] = None, only: Optional[set] = None) -> dict:
    """Shapes of every choice (restricted to `only` when given) under `selection` (default: the full supernet)."""
    selection = selection if selection is not None else full_selection(space)
    ports = input_ports(space)
    shapes = {}
    for c in space.choices:
        if only is not None and c.name not in only:
            continue
        sel = selection[c.name]
        if not sel.inputs and sel.pair is not None:
            sel = ChoiceArch(sel.blocks, tuple(dict.fromkeys(sel.pair)), sel.pair, sel.dims)
        shapes[c.name] = choice_shape(space, c.name, sel, ports)
        ports[c.name] = shapes[c.name].port
    return shapes
