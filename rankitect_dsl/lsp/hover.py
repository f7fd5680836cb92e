"""Hover texts (Markdown): a choice's blocks, inputs, output shape, decisions and FLOPs; an input's shape; a
block's definition; the space's exact size. The compiler already knows each of these; this lays them out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from ..compiler.choice_costs import arch_costs, flops_extremes
from ..core.blocks import REGISTRY
from ..core.decisions import choice_count, choice_decisions
from ..core.errors import Span
from ..core.shapes import Port, infer, input_ports
from ..space import Space
from .document import Analysis

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Hover:
    markdown: str
    span: Span


def word_at(source: str, line: int, column: int) -> Optional[tuple[str, Span]]:
    """The identifier-like word under a 1-based position."""
    lines = source.splitlines()
    if not 0 < line <= len(lines):
        return None
    for m in _WORD.finditer(lines[line - 1]):
        if m.start() < column <= m.end():
            return m.group(), Span(line, m.start() + 1, m.end() - m.start())
    return None


def hover(analysis: Analysis, space: Optional[Space], line: int, column: int) -> Optional[Hover]:
    """What to show at a 1-based position. `space` is the document's space, or its last good one while
    the text has errors: facts are looked up by name, so they stay right for names that did not change."""
    ref = analysis.index.at(line, column) if analysis.index else None
    if ref is None:
        word = word_at(analysis.source, line, column)
        if word is None:
            return None
        text, span = word
        if text == "space" and space is not None:
            return Hover(space_text(space), span)
        return Hover(block_text(text), span) if text in REGISTRY else None
    if ref.kind == "block":
        return Hover(block_text(ref.name), ref.span) if ref.name in REGISTRY else None
    if space is None or ref.kind == "baseline":
        return None
    spec = space.spec
    if ref.kind == "space":
        return Hover(space_text(space), ref.span)
    if ref.name in (spec.dense.name, spec.embed.name):
        return Hover(input_text(space, ref.name), ref.span)
    if ref.name in analysis.index.layer_choices:
        return Hover(layer_text(space, ref.name, analysis.index.layer_choices[ref.name]), ref.span)
    if ref.name in spec.choice_by_name:
        return Hover(choice_text(space, ref.name), ref.span)
    return None


def block_text(name: str) -> str:
    b = REGISTRY[name]
    dim = "searched dim" if b.searched_dim else "no searched dim"
    return f"**block `{name}`** ({b.summary}; {b.adaptor} adaptor, {b.output} output, {dim})\n\n{b.definition}"


def space_text(space: Space) -> str:
    spec = space.spec
    return (
        f"**space `{spec.name}`**: {space.size:,} architectures (log10 {space.log10_size:.3f}), "
        f"{len(spec.choices)} choices, {len(space.decisions)} decisions"
    )


def input_text(space: Space, name: str) -> str:
    spec = space.spec
    if name == spec.dense.name:
        return f"**input `{name}`**: dense features, B×{spec.dense.width}"
    e = spec.embed
    return f"**input `{name}`**: {e.count} embedded sparse features of dim {e.dim}, B×{e.count}×{e.dim}"


@dataclass(frozen=True)
class _Facts:
    extremes: dict
    baseline: dict
    widest: dict  # name -> its port in the all-on supernet


@lru_cache(maxsize=8)
def _facts(space: Space) -> _Facts:
    spec = space.spec
    ports = {**input_ports(spec), **{c: shape.port for c, shape in infer(spec).items()}}
    base = arch_costs(spec, space.baseline) if space.baseline is not None else {}
    return _Facts(flops_extremes(spec), base, ports)


def shape(port: Port, d: int) -> str:
    parts = ([f"B×{port.width2d}"] if port.width2d else []) + ([f"B×{port.rows3d}×{d}"] if port.rows3d else [])
    return " and ".join(parts)


def _block_line(space: Space, choice, block: str) -> str:
    dims = choice.dims.get(block)
    out = REGISTRY[block].out_shape.replace("D", str(space.spec.embed_dim))
    return f"`{block}`" + (f" dim {', '.join(map(str, dims))}" if dims else "") + f" → {out}"


def choice_text(space: Space, name: str) -> str:
    spec, facts = space.spec, _facts(space)
    c, d = spec.choice_by_name[name], spec.embed_dim
    lines = [
        f"**choice `{name}`**: {len(c.blocks)} block(s), {len(c.candidates)} candidate input(s), "
        f"{choice_count(c):,} options",
        "",
        "- blocks: " + "; ".join(_block_line(space, c, b) for b in c.blocks),
        "- reads: " + ", ".join(f"`{x}` {shape(facts.widest[x], d)}" for x in c.candidates) + " (at most)",
    ]
    out = f"- output: at most {shape(facts.widest[name], d)}"
    if name in facts.baseline:
        out += f"; {shape(facts.baseline[name].port, d)} in baseline `{spec.baseline_name}`"
    lines.append(out)
    decisions = choice_decisions(c)
    lines.append("- decisions: " + (", ".join(f"`{x.name}` ({x.size})" for x in decisions) or "none (fixed)"))
    if name not in facts.extremes:
        lines.append("- FLOPs: never runs (no candidate path reaches the output)")
    else:
        low, high = facts.extremes[name]
        if name in facts.baseline:
            base = f"{facts.baseline[name].flops:,}"
        elif spec.baseline is not None:
            base = "not run"
        else:
            base = "none"
        lines.append(f"- FLOPs: min {low:,} · baseline {base} · max {high:,}")
    return "\n".join(lines)


def layer_text(space: Space, name: str, made: list[str]) -> str:
    baseline = _facts(space).baseline
    text = f"**layer `{name}`**: lowered to {len(made)} module choice(s): " + ", ".join(f"`{c}`" for c in made)
    if space.baseline is None:
        return text
    return text + f"\n\nFLOPs of its modules in the baseline: {sum(baseline[c].flops for c in made if c in baseline):,}"
