"""Grow a production model into a supernet, rule by rule as paper section 4.2.1 does, and write it as `.rks`.

The production model is the base space's baseline arch. The rules:
1. permute its choices at random, keeping DAG order (every choice after the choices it reads);
2. copy every choice holding embed_fc or dot_compressed and insert the copy right after it;
3. give each choice its block group(s): {dot_compressed, embed_fc} and/or {linear, gating, sum};
4. connect each choice to its production inputs (first, in their production order: the baseline must stay
   inside the grown space, as the very production model) and to the earlier ones at the given distances;
5. offer each dim block `low .. high` × its production width in `steps` options (the production width
   is always one of them).
The production model becomes the grown space's baseline; a copy repeats its original's assignment,
which no other choice reads, so it adds no cost to the baseline.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from ..core.blocks import BLOCK_NAMES, group_blocks, has_dim, is_interaction
from ..core.errors import RksError
from ..core.graph import reads
from .formatter import format_source
from .production import production_model, production_widths
from .writer import assignment, prelude


@dataclass(frozen=True)
class GrowConfig:
    seed: int = 0
    distances: tuple[int, ...] = (1, 2, 3, 6, 9)
    low: float = 0.5
    high: float = 1.25
    steps: int = 7
    keep: float = 0.8
    bottleneck: int = 256
    name: Optional[str] = None
    norm: Optional[str] = None  # None: the base space's

    @property
    def command(self) -> str:
        return (
            f"--seed {self.seed} --distances {','.join(map(str, self.distances))} "
            f"--dims {self.low:g}..{self.high:g}:{self.steps} --keep {self.keep:g} --bottleneck {self.bottleneck}"
            + (f" --norm {self.norm}" if self.norm else "")
        )


@dataclass(frozen=True)
class GrownChoice:
    name: str
    source: str  # the production choice it grows from
    is_copy: bool
    blocks: tuple[str, ...]


def dag_order(space, rng: random.Random) -> list[str]:
    """A random topological order of the production choices: each step picks uniformly among the ready ones."""
    spec = space.spec
    preds = {c.name: {x for x in c.candidates if x in spec.choice_by_name} for c in spec.choices}
    placed: list[str] = []
    while len(placed) < len(preds):
        ready = [c.name for c in spec.choices if c.name not in placed and preds[c.name] <= set(placed)]
        placed.append(rng.choice(ready))
    return placed


def grown_choices(space, cfg: GrowConfig) -> list[GrownChoice]:
    taken = {c.name for c in space.spec.choices} | {i.name for i in space.spec.inputs}
    out = []
    for name in dag_order(space, random.Random(cfg.seed)):
        blocks = space.spec.choice_by_name[name].blocks
        out.append(GrownChoice(name, name, False, group_blocks(blocks)))
        if any(is_interaction(b) for b in blocks):
            copy = _fresh(f"{name}_copy", taken)
            out.append(GrownChoice(copy, name, True, group_blocks(blocks)))
    return out


def _fresh(name: str, taken: set) -> str:
    k, candidate = 2, name
    while candidate in taken:
        candidate, k = f"{name}{k}", k + 1
    taken.add(candidate)
    return candidate


def dim_options(width: int, cfg: GrowConfig) -> tuple[tuple[int, ...], bool]:
    """The options for a production width, and whether `scale` writes them exactly (distinct, width included)."""
    factors = (
        [cfg.low]
        if cfg.steps == 1
        else [cfg.low + i * (cfg.high - cfg.low) / (cfg.steps - 1) for i in range(cfg.steps)]
    )
    scaled = [int(round(width * f)) for f in factors]
    exact = len(set(scaled)) == len(scaled) and width in scaled and min(scaled) > 0
    return tuple(sorted({v for v in scaled if v > 0} | {width})), exact


def grow_source(space, cfg: GrowConfig, base_label: str) -> str:
    """The grown space as formatted `.rks` text."""
    spec = space.spec
    name = cfg.name or f"{spec.name}_grown"
    arch = production_model(space, "grow", name, "grown space name")
    choices = grown_choices(space, cfg)
    fallback = production_widths(space)
    dims_of = {c.name: _choice_dims(c, arch, fallback, cfg) for c in choices}
    defaults = _shared_dims(dims_of)
    lines = [
        f"# Grown from {base_label} (paper 4.2.1) by",
        f"#   rks grow {base_label} {cfg.command}",
        "#  - the production choices permuted at random in DAG order;",
        "#  - a copy of every choice holding embed_fc or dot_compressed, right after it;",
        "#  - block groups {dot_compressed, embed_fc} and {linear, gating, sum};",
        f"#  - every choice reads its production inputs, then the choices at distances "
        f"{', '.join(map(str, cfg.distances))};",
        f"#  - dims {cfg.low:g} .. {cfg.high:g} x the production width in {cfg.steps} options.",
        *prelude(name, spec, cfg.keep, cfg.bottleneck, cfg.norm or spec.norm),
    ]
    lines += [f"dim {b} {text}" for b, text in defaults.items()]
    for c in choices:
        lines += ["", _choice_text(c, arch, dims_of[c.name], defaults, cfg)]
    lines += ["", f"output from {', '.join(spec.outputs)}", "", f"baseline {spec.baseline_name} {{"]
    for c in choices:
        note = f"  # copy of {c.source}, read by no other choice" if c.is_copy else ""
        lines.append(f"  {c.name} = {assignment(arch.choices[c.source].to_dict())}{note}")
    lines.append("}")
    return format_source("\n".join(lines) + "\n", f"<grown {name}>")


def _choice_dims(c: GrownChoice, arch, fallback: dict, cfg: GrowConfig) -> dict:
    produced = arch.choices[c.source].dims
    out = {}
    for b in (b for b in c.blocks if has_dim(b)):
        width = produced.get(b, fallback[b])
        options, exact = dim_options(width, cfg)
        scale = f"scale {width} by {cfg.low:g} .. {cfg.high:g} steps {cfg.steps}"
        out[b] = scale if exact else ", ".join(map(str, options))
    return out


def _shared_dims(dims_of: dict) -> dict:
    """Dim statements every choice with that block shares: written once at the top."""
    shared = {}
    for b in (b for b in BLOCK_NAMES if has_dim(b)):
        texts = {d[b] for d in dims_of.values() if b in d}
        if len(texts) == 1:
            shared[b] = texts.pop()
    return shared


def _choice_text(c: GrownChoice, arch, dims: dict, defaults: dict, cfg: GrowConfig) -> str:
    """The production inputs come first, in the production order, then the ones at distance: a reader
    concatenates its inputs in candidate order, so the baseline inside the grown space is the production
    model itself, feature for feature (one model, one set of numbers; a permuted order would be another)."""
    head = f"# {'copy of ' + c.source if c.is_copy else 'production ' + c.source}"
    body = [
        f"  blocks {', '.join(c.blocks)}",
        f"  from {', '.join(reads(arch, c.source))}",
        f"  from distance {', '.join(map(str, cfg.distances))}",
    ]
    body += [f"  dim {b} {text}" for b, text in dims.items() if defaults.get(b) != text]
    return "\n".join([head, f"choice {c.name} {{", *body, "}"])


GROW_SEED, GROW_DISTANCES, GROW_DIMS, GROW_KEEP, GROW_BOTTLENECK = 0, (1, 2, 3, 6, 9), (0.5, 1.25, 7), 0.8, 256


def grown_source(base, base_file: str, name: str, blocks_only: bool = False, **options) -> str:
    """`rks grow`'s source from its flags (`seed`, `distances`, `dims`, `keep`, `bottleneck`, `norm`; None:
    default):
    the 4.2.1 supernet, or with `blocks_only` the 4.2.4 one, which refuses the flags that do not apply."""
    if blocks_only:
        from .grow_blocks import blocks_only_source

        given = [flag for flag in ("seed", "distances", "dims", "keep") if options.get(flag) is not None]
        if given:
            raise RksError(
                f"--blocks-only fixes the production connections and dims: --{given[0]} does not apply to it"
            )
        return blocks_only_source(base, base_file, name, options.get("bottleneck"), options.get("norm"))
    low, high, steps = options.get("dims") or GROW_DIMS
    cfg = GrowConfig(
        GROW_SEED if options.get("seed") is None else options["seed"],
        options.get("distances") or GROW_DISTANCES,
        low,
        high,
        steps,
        GROW_KEEP if options.get("keep") is None else options["keep"],
        options.get("bottleneck") or GROW_BOTTLENECK,
        name,
        options.get("norm"),
    )
    return grow_source(base, cfg, base_file)
