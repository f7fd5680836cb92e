"""The production model a grown space starts from — the base space's baseline arch, after the checks both
`rks grow` (4.2.1) and `--blocks-only` (4.2.4) make — and the widths its choices take."""

from __future__ import annotations

from collections import Counter

from ..core.blocks import BLOCK_NAMES, has_dim
from ..core.errors import RksError
from ..core.names import identifier_problem


def production_widths(space) -> dict:
    """Per dim block, the width a choice gets when its production block has none: the production's most
    common width for that block, else the largest option the base space offers, else N (embedding rows)."""
    arch, widths = space.baseline, {}
    for b in (b for b in BLOCK_NAMES if has_dim(b)):
        used = Counter(ca.dims[b] for ca in arch.choices.values() if b in ca.dims)
        offered = [max(c.dims[b]) for c in space.spec.choices if b in c.dims]
        if used:
            widths[b] = max(used.items(), key=lambda kv: (kv[1], kv[0]))[0]
        else:
            widths[b] = max(offered) if offered else space.spec.embed.count
    return widths


def production_model(space, tool: str, name: str, name_label: str):
    """The base space's baseline, which `rks grow` and `--blocks-only` both start from, after the checks both
    make: the base names one, it assigns one block (and one pair) per choice, and the new name is valid."""
    spec, arch = space.spec, space.baseline
    if arch is None:
        raise RksError(
            f"space `{spec.name}` names no baseline: {tool} starts from the production model, "
            "written as the space's `baseline` arch",
            spec.path,
        )
    problem = identifier_problem(name)
    if problem:
        raise RksError(f"{name_label} `{name}`: {problem} (choose one with --name)")
    for cname, ca in arch.choices.items():
        if len(ca.blocks) != 1 or len(ca.pairs) > 1:
            raise RksError(
                f"the production choice `{cname}` holds several blocks or pairs; {tool} starts from a "
                "production model of one block (and one pair) per choice",
                spec.path,
            )
    return arch
