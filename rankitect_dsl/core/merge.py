"""Merging architectures (paper 4.2.3): one model holding every block, connection and pair of its inputs."""

from __future__ import annotations

from typing import Sequence

from .arch import Arch, ChoiceArch
from .blocks import is_multi_hot
from .decisions import validate
from .errors import ArchError
from .graph import active_choices
from .spec import SpaceSpec


def merge_archs(space: SpaceSpec, archs: Sequence[Arch]) -> Arch:
    """Per choice, the union of what the input archs that reach it use: blocks, inputs and pairs (in the
    space's order), and each block's largest dim. A choice no input arch reaches keeps the first arch's."""
    if not archs:
        raise ArchError("nothing to merge: give one or more archs")
    for arch in archs:
        validate(space, arch)
    reached = [set(active_choices(space, arch)) for arch in archs]
    choices = {}
    for c in space.choices:
        parts = [arch.choices[c.name] for arch, active in zip(archs, reached) if c.name in active]
        if not parts:
            choices[c.name] = archs[0].choices[c.name]
            continue
        blocks = tuple(b for b in c.blocks if any(b in p.blocks for p in parts))
        inputs, pairs = (), ()
        if any(is_multi_hot(b) for b in blocks):
            inputs = tuple(x for x in c.candidates if any(x in p.inputs for p in parts))
        if any(not is_multi_hot(b) for b in blocks):
            taken = {pair for p in parts for pair in p.pairs}
            pairs = tuple(pair for pair in c.pairs if pair in taken)
        dims = {b: max(p.dims[b] for p in parts if b in p.dims) for b in blocks if b in c.dims}
        choices[c.name] = ChoiceArch(blocks, inputs, pairs, dims)
    merged = Arch(space.name, choices)
    validate(space, merged)
    return merged
