"""Scaling a found model up (paper 4.2.3): multiply its dims, and say which values its space does not offer.

The paper's two recipes are `embed_fc=3` (3× the EmbedFC dims) and `linear = embed_fc = dot_compressed =
1.5` with the pair bottleneck doubled. A scaled value the space does not offer is reported as an
`Outside`; `extended_spec` returns the space that admits every one of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from .arch import Arch
from .blocks import BLOCK_NAMES, EmbedFCBlock, has_dim
from .decisions import validate
from .spec import SpaceSpec


@dataclass(frozen=True)
class Outside:
    """A scaled value the space does not offer; `path` names it as arch errors do."""

    path: str
    value: int
    options: tuple[int, ...]

    def describe(self) -> str:
        if self.path == "bottleneck":
            return f"bottleneck: {self.value} (the space's is {self.options[0]})"
        return f"{self.path}: {self.value} is not offered (options {', '.join(map(str, self.options))})"


def recipe_factors(dims: Optional[float] = None, embed_fc: Optional[float] = None) -> dict:
    """Per dim block, its factor: `dims` for every dim block, times `embed_fc` for EmbedFC."""
    factors = {b: dims for b in BLOCK_NAMES if has_dim(b)} if dims else {}
    if embed_fc:
        factors[EmbedFCBlock.name] = factors.get(EmbedFCBlock.name, 1.0) * embed_fc
    return factors


def scaled(value: int, factor: float) -> int:
    return max(1, int(round(value * factor)))


def scale_arch(
    space: SpaceSpec, arch: Arch, factors: dict, bottleneck: float = 1.0
) -> tuple[Arch, list[Outside], Optional[int]]:
    """The arch with each block's dim times `factors[block]`; what leaves the space; the scaled bottleneck
    (None when unchanged)."""
    validate(space, arch)
    for block in factors:
        if not has_dim(block):
            raise ValueError(f"`{block}` has no dim to scale")
    choices, outside = {}, []
    for c in space.choices:
        ca = arch.choices[c.name]
        dims = {b: scaled(d, factors.get(b, 1.0)) for b, d in ca.dims.items()}
        for b, d in dims.items():
            if d not in c.dims[b]:
                outside.append(Outside(f"choices.{c.name}.dims.{b}", d, c.dims[b]))
        choices[c.name] = dataclasses.replace(ca, dims=dims)
    new_bottleneck = scaled(space.bottleneck, bottleneck) if bottleneck != 1.0 else None
    if new_bottleneck is not None and new_bottleneck != space.bottleneck:
        outside.append(Outside("bottleneck", new_bottleneck, (space.bottleneck,)))
    return Arch(arch.space, choices), outside, new_bottleneck


def extended_spec(space: SpaceSpec, outside: list[Outside], bottleneck: Optional[int]) -> SpaceSpec:
    """The space with every outside dim added to its choice's options, and the new bottleneck."""
    extra: dict = {}
    for o in outside:
        if o.path.startswith("choices."):
            _, choice, _, block = o.path.split(".")
            extra.setdefault(choice, {}).setdefault(block, set()).add(o.value)
    choices = []
    for c in space.choices:
        add = extra.get(c.name, {})
        dims = {b: tuple(sorted(set(opts) | add.get(b, set()))) for b, opts in c.dims.items()}
        choices.append(dataclasses.replace(c, dims=dims))
    return dataclasses.replace(space, choices=choices, bottleneck=bottleneck or space.bottleneck)
