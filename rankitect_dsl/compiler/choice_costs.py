"""Each choice's own FLOPs (its adaptor and its block: the part `rks flops` lists under its name) read
straight off the checked spec: for one arch, and the least and the most over every arch of the space in
which the choice runs. An editor asks for these on a hover, so they build no plan, no formula and no
module: only the block registry's size arithmetic.

The extremes are exact, not sampled. Every size a block reads (the flattened width, the stacked rows, the
projected 2D width, the right input's width, the dim) and every output width grows with the sizes of what
it reads, so a choice's cheapest subnet reads the cheapest outputs of its inputs and its costliest subnet
the costliest. Which outputs are cheapest is a partial order (a 2D width against a 3D row count), so each
name carries its Pareto front of achievable output shapes, not one shape."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from ..core.adaptors import STACK
from ..core.arch import Arch
from ..core.blocks import REGISTRY, Sizes
from ..core.graph import execution_order, reachable
from ..core.shapes import Port, input_ports
from ..core.spec import ChoiceSpec, SpaceSpec


@dataclass(frozen=True)
class Reads:
    """What a choice's adaptors take in, summed over the inputs it reads."""

    linear_in: int  # the flattened width (flatten adaptor; also the stack adaptor's feature count)
    stack_rows: int  # rows after stacking
    width2d: int  # the 2D widths the stack adaptor projects to rows

    def __add__(self, other: "Reads") -> "Reads":
        return Reads(self.linear_in + other.linear_in, self.stack_rows + other.stack_rows, self.width2d + other.width2d)


@dataclass(frozen=True)
class ChoiceCost:
    flops: int
    port: Port


def reads_of(port: Port, d: int) -> Reads:
    return Reads(port.flat(d), port.stack_rows(), port.width2d)


def block_cost(spec: SpaceSpec, block: str, dim: int, reads: Reads, right_flat: int) -> ChoiceCost:
    """One block's FLOPs, with its adaptor's, and the shape it emits."""
    d, b = spec.embed_dim, REGISTRY[block]
    sizes = Sizes(dim, reads.linear_in, reads.stack_rows, right_flat, d, spec.modules)
    flops = b.flops(sizes) + (STACK.flops(reads.width2d, d) if b.adaptor == STACK.name else 0)
    out = b.out_size(sizes)
    return ChoiceCost(flops, Port(out, 0) if b.output == "2d" else Port(0, out))


def arch_costs(spec: SpaceSpec, arch: Arch) -> dict[str, ChoiceCost]:
    """Each running choice's own FLOPs and output shape under an arch of one block per choice (a baseline,
    a sample, a search's winner)."""
    d, ports, out = spec.embed_dim, input_ports(spec), {}
    for name in execution_order(spec, arch):
        ca = arch.choices[name]
        if len(ca.blocks) != 1:
            raise ValueError(f"choice `{name}` runs {len(ca.blocks)} blocks; this counts one block per choice")
        (block,) = ca.blocks
        reads = sum((reads_of(ports[x], d) for x in ca.inputs), Reads(0, 0, 0))
        right = max((ports[j].flat(d) for _, j in ca.pairs), default=0)  # narrower rights are zero-padded
        out[name] = block_cost(spec, block, ca.dims.get(block, 0), reads, right)
        ports[name] = out[name].port
    return out


def flops_extremes(spec: SpaceSpec) -> dict[str, tuple[int, int]]:
    """Each runnable choice's least and most own FLOPs over the archs in which it runs."""
    least = _Extreme(spec, least=True)
    most = _Extreme(spec, least=False)
    live = reachable(spec, {c.name: c.candidates for c in spec.choices})  # some arch runs these
    out = {}
    for c in spec.choices:
        low, high = least.visit(c), most.visit(c)
        if c.name in live:
            out[c.name] = (low, high)
    return out


class _Extreme:
    """One direction of the extremes: the Pareto front of output shapes of every name, in topological order."""

    def __init__(self, spec: SpaceSpec, least: bool):
        self.spec, self.least = spec, least
        self.sign = 1 if least else -1
        self.fronts: dict[str, list[Port]] = {n: [p] for n, p in input_ports(spec).items()}

    def better(self, a: tuple, b: tuple) -> bool:
        """`a` is at least as extreme as `b` in every size."""
        return all(self.sign * (x - y) <= 0 for x, y in zip(a, b))

    def front(self, points):
        points = list(dict.fromkeys(points))
        return [p for p in points if not any(q != p and self.better(_sizes(q), _sizes(p)) for q in points)]

    def reads(self, inputs) -> list[Reads]:
        """The front of summed reads over one input set: each input contributes any point of its front."""
        d = self.spec.embed_dim
        total = [Reads(0, 0, 0)]
        for x in inputs:
            total = self.front(t + reads_of(p, d) for t, p in product(total, self.fronts[x]))
        return total

    def rights(self, c: ChoiceSpec) -> list[int]:
        """The right-input widths a pair block of `c` may read: each candidate's, or the widest of the fixed
        set's (a pair set sums its interactions zero-padded to its widest right input)."""
        d = self.spec.embed_dim
        if c.fixed_pairs is None:
            return [p.flat(d) for x in c.candidates for p in self.fronts[x]]
        widths = [0]
        for j in dict.fromkeys(j for _, j in c.fixed_pairs):
            widths = [max(w, p.flat(d)) for w, p in product(widths, self.fronts[j])]
        return widths

    def visit(self, c: ChoiceSpec) -> int:
        """The extreme own FLOPs of `c`; records the front of its output shapes for its readers."""
        if c.fixed_inputs or not self.least:
            selections = [c.candidates]  # more inputs never cost less: the costliest reads them all
        else:
            selections = [(x,) for x in c.candidates]  # the cheapest reads one
        costs = []
        for block in c.blocks:
            dims = c.dims.get(block, (0,))
            if REGISTRY[block].multi_hot:
                reads = [r for inputs in selections for r in self.reads(inputs)]
                costs += [block_cost(self.spec, block, dim, r, 0) for r in reads for dim in dims]
            else:
                costs += [block_cost(self.spec, block, 0, Reads(0, 0, 0), w) for w in self.rights(c)]
        self.fronts[c.name] = self.front(cost.port for cost in costs)
        pick = min if self.least else max
        return pick(cost.flops for cost in costs)


def _sizes(p) -> tuple:
    return (p.width2d, p.rows3d) if isinstance(p, Port) else (p.linear_in, p.stack_rows, p.width2d)
