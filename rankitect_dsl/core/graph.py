"""Lowering to a networkx DAG, and the reachability that decides which choices an arch really uses."""

from __future__ import annotations

from typing import Callable, Optional

from .arch import Arch
from .shapes import infer
from .spec import SpaceSpec

OUTPUT = "output"


def lower(space: SpaceSpec):
    """Nodes for inputs, choices and the output with their attributes; edges for candidate connections
    (a networkx.DiGraph; networkx is imported here, on first use, not when a space is checked)."""
    import networkx as nx

    g = nx.DiGraph(name=space.name, keep=space.keep, bottleneck=space.bottleneck, baseline=space.baseline_name)
    d = space.embed_dim
    g.add_node(
        space.dense.name,
        kind="input",
        input_kind="dense",
        shape=(space.dense.width,),
        width2d=space.dense.width,
        rows3d=0,
    )
    g.add_node(
        space.embed.name,
        kind="input",
        input_kind="embed",
        shape=(space.embed.count, d),
        width2d=0,
        rows3d=space.embed.count,
    )
    shapes = infer(space)
    for c in space.choices:
        s = shapes[c.name]
        g.add_node(
            c.name,
            kind="choice",
            index=c.index,
            blocks=c.blocks,
            dims={b: list(v) for b, v in c.dims.items()},
            fixed_inputs=c.fixed_inputs,
            fixed_pairs=[list(p) for p in c.fixed_pairs] if c.fixed_pairs is not None else None,
            width2d=s.port.width2d,
            rows3d=s.port.rows3d,
            block_out=dict(s.block_out),
            linear_in=s.linear_in,
            stack_rows=s.stack_rows,
        )
        for src in c.candidates:
            g.add_edge(src, c.name, distance=c.distances[src])
    g.add_node(
        OUTPUT,
        kind="output",
        sources=space.outputs,
        width=sum(g.nodes[n]["width2d"] + g.nodes[n]["rows3d"] * d for n in space.outputs),
    )
    for src in space.outputs:
        g.add_edge(src, OUTPUT, distance=None)
    return g


def reads(arch: Arch, name: str) -> tuple[str, ...]:
    ca = arch.choices[name]
    return tuple(dict.fromkeys(ca.inputs + tuple(x for pair in ca.pairs for x in pair)))


def reachable(space: SpaceSpec, choice_reads: dict) -> set:
    """Choices that reach the output, given what each choice reads (choice name -> names)."""
    seen, stack = set(), [n for n in space.outputs if n in choice_reads]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(r for r in choice_reads[n] if r in choice_reads)
    return seen


def active_choices(space: SpaceSpec, arch: Arch) -> list[str]:
    """Choices that reach the output under the arch, in topological order."""
    seen = reachable(space, {c.name: reads(arch, c.name) for c in space.choices})
    return [c.name for c in space.choices if c.name in seen]


def execution_order(space: SpaceSpec, arch: Arch) -> list[str]:
    """The active choices in the order a subnet computes them: depth first from the outputs, each choice
    right after the last thing it reads, its reads visited in its candidate order. The order depends on the
    arch's graph and candidate orders alone, not on where the space declares its choices: the production
    model and the baseline of a space grown from it (its choices permuted) compute the same steps in the
    same order, so their gradients add up in the same order and they train to the same numbers."""
    active = set(active_choices(space, arch))
    order, done = [], set()
    for root in space.outputs:
        stack = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if name in done or name not in active:
                continue
            if expanded:
                done.add(name)
                order.append(name)
                continue
            stack.append((name, True))
            c = space.choice_by_name[name]
            read = set(reads(arch, name))
            stack.extend((x, False) for x in reversed([x for x in c.candidates if x in read]) if x not in done)
    return order


def find_cycle(reads: dict) -> Optional[list[str]]:
    """A cycle `[a, b, …]` where b reads a, c reads b, …, and a reads the last; None when there is none."""
    users = {name: [c for c, srcs in reads.items() if name in srcs] for name in reads}
    state: dict = {}
    for root in reads:
        if root in state:
            continue
        stack, path = [(root, iter(users[root]))], [root]
        state[root] = "open"
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(nxt) == "open":
                return path[path.index(nxt) :]
            elif nxt not in state:
                state[nxt] = "open"
                stack.append((nxt, iter(users[nxt])))
                path.append(nxt)
    return None


def topological_order(reads: dict, rank: Callable) -> list[str]:
    """The names of `reads` (name → the names it reads) each after what it reads, the lowest `rank(name)`
    first among those ready; `reads` must hold no cycle (`find_cycle`)."""
    users = {name: [c for c, srcs in reads.items() if name in srcs] for name in reads}
    waiting = {name: len(srcs) for name, srcs in reads.items()}
    ready = {name for name, count in waiting.items() if not count}
    ordered = []
    while ready:
        name = min(ready, key=rank)
        ready.remove(name)
        ordered.append(name)
        for user in users[name]:
            waiting[user] -= 1
            if not waiting[user]:
                ready.add(user)
    return ordered
