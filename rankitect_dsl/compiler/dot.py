"""Draw a space or one subnet as Graphviz DOT, and render DOT to SVG or PNG with Graphviz's `dot`.

Every name in the drawing is a checked identifier and every label is built here from numbers and
block names, so no text from a `.rks` file reaches DOT unquoted.
"""

from __future__ import annotations

import shutil
import subprocess

from ..core.arch import Arch
from ..core.blocks import has_dim
from ..core.errors import RksError
from ..core.graph import reads
from ..core.names import HEAD_PART, choice_part, pair_part

FORMATS = ("dot", "svg", "png")
_HEAD = ["  rankdir=TB;", '  node [fontname="Helvetica", fontsize=11];', '  edge [fontname="Helvetica", fontsize=9];']


def _q(text: str) -> str:
    """A DOT quoted string; line breaks become DOT's centred `\\n`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _options(opts) -> str:
    return str(opts[0]) if len(opts) == 1 else f"{opts[0]}..{opts[-1]} ({len(opts)})"


def _input_nodes(space) -> list[str]:
    out = []
    for i in space.spec.inputs:
        shape = f"dense[{i.width}]" if i.kind == "dense" else f"embed[{i.count}, {i.dim}]"
        label = _q(f"{i.name}\n{shape}")
        out.append(f'  {_q(i.name)} [shape=box, style=filled, fillcolor="#e8f0fe", label={label}];')
    return out


def space_dot(space) -> str:
    """The space: each choice with its blocks and dim options, its FLOPs in the all-on supernet, and the
    candidate connections (labelled with their distance)."""
    parts = space.cost_breakdown(space.all_on())
    lines = [f"digraph {_q(space.name)} {{", *_HEAD, *_input_nodes(space)]
    for c in space.spec.choices:
        blocks = [f"{b} {_options(c.dims[b])}" if has_dim(b) else b for b in c.blocks]
        flops = parts.get(choice_part(c.name), {}).get("flops", 0)
        label = "\n".join([c.name, *blocks, f"all-on {flops:,} FLOPs"])
        lines.append(f"  {_q(c.name)} [shape=box, style=rounded, label={_q(label)}];")
        for x in c.candidates:
            d = c.distances[x]
            lines.append(f"  {_q(x)} -> {_q(c.name)}" + (f" [label={_q(str(d))}];" if d is not None else ";"))
    lines += _output(space.spec.outputs, parts.get(HEAD_PART, {}).get("flops", 0))
    return "\n".join(lines + ["}"]) + "\n"


def arch_dot(space, arch: Arch) -> str:
    """One subnet: the choices that reach the output, each with its blocks, dims and FLOPs."""
    space.validate(arch)
    parts = space.cost_breakdown(arch)
    active = space.active_choices(arch)
    total = sum(v["flops"] for v in parts.values())
    title = f"{space.name}: {total:,} FLOPs, {sum(v['params'] for v in parts.values()):,} params"
    lines = [f"digraph {_q(space.name)} {{", *_HEAD, f"  label={_q(title)}; labelloc=t;", *_input_nodes(space)]
    for name in active:
        ca = arch.choices[name]
        blocks = [f"{b} {ca.dims[b]}" if b in ca.dims else b for b in ca.blocks]
        fcs = [f"FC {i}→{j}: {parts[p]['flops']:,} FLOPs" for i, j in ca.pairs if (p := pair_part(i, j)) in parts]
        own_flops = parts[choice_part(name)]["flops"]
        own = [f"{own_flops:,} FLOPs"] if own_flops or not fcs else []
        label = "\n".join([name, *blocks, *own, *fcs])
        lines.append(f'  {_q(name)} [shape=box, style="rounded,filled", fillcolor="#f3f7ee", label={_q(label)}];')
        pairs = {x for pair in ca.pairs for x in pair}
        for x in reads(arch, name):
            style = " [style=dashed]" if x in pairs and x not in ca.inputs else ""
            lines.append(f"  {_q(x)} -> {_q(name)}{style};")
    lines += _output(space.spec.outputs, parts.get(HEAD_PART, {}).get("flops", 0))
    return "\n".join(lines + ["}"]) + "\n"


def _output(sources, head_flops: int) -> list[str]:
    label = f"output\nLinear(·, 1)\n{head_flops:,} FLOPs"
    return [f"  __output [shape=doubleoctagon, label={_q(label)}];"] + [f"  {_q(s)} -> __output;" for s in sources]


def render(dot_source: str, fmt: str) -> bytes | str:
    """DOT text as-is, or rendered by Graphviz (`dot -Tsvg` / `-Tpng`)."""
    if fmt == "dot":
        return dot_source
    exe = shutil.which("dot")
    if exe is None:
        raise RksError(
            f"--format {fmt} needs Graphviz's `dot` program, which is not installed "
            "(Debian: apt install graphviz); --format dot writes the DOT text without it"
        )
    proc = subprocess.run([exe, f"-T{fmt}"], input=dot_source.encode(), capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RksError(f"Graphviz failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout
