"""The space's DAG as Graphviz DOT."""

from __future__ import annotations

import networkx as nx

from ..core.spec import SpaceSpec


def to_dot(space: SpaceSpec, g: nx.DiGraph) -> str:
    lines = [f'digraph "{space.name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica"];']
    for n, attrs in g.nodes(data=True):
        if attrs["kind"] == "input":
            shape = "×".join(map(str, attrs["shape"]))
            lines.append(
                f'  "{n}" [shape=box, style=filled, fillcolor="#e8f0fe", label="{n}\\n{attrs["input_kind"]}[{shape}]"];'
            )
        elif attrs["kind"] == "choice":
            blocks = "\\n".join(attrs["blocks"])
            lines.append(f'  "{n}" [shape=box, style=rounded, label="{n}\\n{blocks}"];')
        else:
            lines.append(f'  "{n}" [shape=doubleoctagon, label="output\\nLinear(·, 1)"];')
    for a, b, attrs in g.edges(data=True):
        dist = attrs.get("distance")
        label = f' [label="{dist}"]' if dist is not None else ""
        lines.append(f'  "{a}" -> "{b}"{label};')
    lines.append("}")
    return "\n".join(lines) + "\n"
