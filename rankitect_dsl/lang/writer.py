"""Write a checked space (`SpaceSpec`) back as `.rks` text that lowers to the same space.

Every choice is written on its own with its candidates named in their order and its dims listed, so
the text states the resolved space exactly; the formatter lays it out.
"""

from __future__ import annotations

from ..core.blocks import DEFAULT_NORM, REGISTRY, is_multi_hot
from ..core.spec import SpaceSpec
from .formatter import format_source


def prelude(name: str, spec: SpaceSpec, keep: float, bottleneck: int, norm: str) -> list[str]:
    """A space's first lines: its name, `spec`'s two inputs, and the settings."""
    return [
        f"space {name}",
        "",
        f"input {spec.dense.name} : dense[{spec.dense.width}]",
        f"input {spec.embed.name} : embed[{spec.embed.count}, {spec.embed.dim}]",
        "",
        f"keep {keep:g}",
        f"bottleneck {bottleneck}",
        *([f"norm {norm}"] if norm != DEFAULT_NORM else []),
        *module_widths(spec),
    ]


def module_widths(spec: SpaceSpec) -> list[str]:
    """The DHEN modules' widths, for a space that uses a module (they are meaningless otherwise)."""
    if not any(REGISTRY[b].group == "dhen" for c in spec.choices for b in c.blocks):
        return []
    m = spec.modules
    return [f"kernel {m.kernel}", f"rank {m.rank}", f"ffn {m.ffn}"]


def spec_source(spec: SpaceSpec, header: list[str]) -> str:
    lines = [f"# {line}" if line else "#" for line in header]
    lines += [*prelude(spec.name, spec, spec.keep, spec.bottleneck, spec.norm), ""]
    for c in spec.choices:
        body = [f"blocks {', '.join(c.blocks)}", f"from {', '.join(c.candidates)}"]
        if c.fixed_inputs:
            body.append("fixed inputs")
        if c.fixed_pairs is not None and len(c.fixed_pairs) == 1:
            body.append(f"pair {', '.join(c.fixed_pairs[0])}")
        body += [f"dim {b} {', '.join(map(str, opts))}" for b, opts in c.dims.items()]
        lines.append(f"choice {c.name} {{ {' '.join(body)} }}")
    lines += ["", f"output from {', '.join(spec.outputs)}"]
    if spec.baseline is not None:
        lines += ["", f"baseline {spec.baseline_name} {{"]
        for c in spec.choices:
            lines.append(f"  {c.name} = {assignment(spec.baseline[c.name])}")
        lines.append("}")
    return format_source("\n".join(lines) + "\n", f"<{spec.name}>")


def assignment(choice: dict) -> str:
    """A baseline assignment for one choice of an arch (its JSON form): `block(inputs) dim N`."""
    block = choice["blocks"][0]
    args = choice["inputs"] if is_multi_hot(block) else choice.get("pair", (choice.get("pairs") or [[]])[0])
    dim = f" dim {choice['dims'][block]}" if block in choice.get("dims", {}) else ""
    return f"{block}({', '.join(args)}){dim}"
