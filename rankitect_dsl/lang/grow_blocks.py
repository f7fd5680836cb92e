"""The simplified supernet of paper 4.2.4, made from a production model: its connections fixed, one block
searched per choice from the choice's 4.2.1 group, dims around the production widths.

Rules, each one line of the file's header:
- every choice keeps the production model's inputs (`fixed inputs`), in the production order;
- its blocks are its production block, then the rest of that block's group in registry order
  ({embed_fc, dot_compressed} or {linear, gating, sum});
- a gating or sum block takes the production pair, else the first and the last of the 2D choices the
  choice reads (its dense input when it reads none);
- each dim block offers 0.5, 0.75, 1, 1.5 and 2x the choice's production width (a block with no width in
  the production model takes the production's most common width for it), those that are multiples of 4,
  the production width always.
"""

from __future__ import annotations

from ..core.blocks import DEFAULT_NORM, REGISTRY, group_blocks, has_dim, is_multi_hot
from ..core.errors import RksError
from ..core.graph import reads
from .formatter import format_source
from .production import production_model, production_widths
from .writer import assignment

FACTORS = (0.5, 0.75, 1.0, 1.5, 2.0)
ALIGN = 4


def dim_options(width: int) -> tuple[int, ...]:
    """0.5x to 2x `width`, the aligned ones and `width` itself."""
    scaled = {int(round(width * f)) for f in FACTORS}
    return tuple(sorted({v for v in scaled if v > 0 and v % ALIGN == 0} | {width}))


def blocks_only_source(space, base_label: str, name: str, bottleneck=None, norm=None) -> str:
    """The 4.2.4 space of `space`'s baseline as formatted `.rks` text."""
    spec, arch = space.spec, production_model(space, "--blocks-only", name, "space name")
    fallback = production_widths(space)
    lines = [
        f"# The simplified supernet of paper 4.2.4, made from {base_label} by",
        f"#   rks grow {base_label} --blocks-only" + (f" --norm {norm}" if norm else ""),
        "#  - the production connections fixed;",
        "#  - one block per choice: the production block, then the rest of its group, {embed_fc,",
        "#    dot_compressed} or {linear, gating, sum};",
        "#  - a gating or sum block takes the production pair, else the first and the last 2D choice read;",
        "#  - dims 0.5, 0.75, 1, 1.5 and 2x the production width, those that are multiples of 4.",
        f"space {name}",
        "",
        f"input {spec.dense.name} : dense[{spec.dense.width}]",
        f"input {spec.embed.name} : embed[{spec.embed.count}, {spec.embed.dim}]",
        "",
        f"bottleneck {bottleneck or spec.bottleneck}",
        *([f"norm {norm or spec.norm}"] if (norm or spec.norm) != DEFAULT_NORM else []),
        "",
    ]
    for c in spec.choices:
        ca = arch.choices[c.name]
        block = ca.blocks[0]
        blocks = (block, *(b for b in group_blocks([block]) if b != block))
        inputs = reads(arch, c.name)
        body = [f"  blocks {', '.join(blocks)}", f"  from {', '.join(inputs)}", "  fixed inputs"]
        if any(not is_multi_hot(b) for b in blocks):
            pair = ca.pairs[0] if ca.pairs else _default_pair(spec, arch, inputs)
            body.append(f"  pair {', '.join(pair)}")
        width = next(iter(ca.dims.values()), None)
        for b in (b for b in blocks if has_dim(b)):
            body.append(f"  dim {b} {', '.join(map(str, dim_options(width or fallback[b])))}")
        lines += [f"choice {c.name} {{", *body, "}"]
    lines += ["", f"output from {', '.join(spec.outputs)}", "", f"baseline {spec.baseline_name} {{"]
    lines += [f"  {c.name} = {assignment(arch.choices[c.name].to_dict())}" for c in spec.choices]
    lines.append("}")
    return format_source("\n".join(lines) + "\n", f"<blocks-only {name}>")


def _default_pair(spec, arch, inputs) -> tuple[str, str]:
    """The first and the last of the 2D choices among `inputs`; else the dense input, twice."""
    twod = [x for x in inputs if x in arch.choices and REGISTRY[arch.choices[x].blocks[0]].output == "2d"]
    if not twod:
        twod = [x for x in inputs if x == spec.dense.name]
    if not twod:
        raise RksError(f"a pair block needs a 2D input; the production choice reading {', '.join(inputs)} has none")
    return twod[0], twod[-1]
