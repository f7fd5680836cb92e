"""The categorical decisions of a space, the flat encoding, validation, sampling and the exact size."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Optional, Sequence

from .arch import Arch, ChoiceArch
from .blocks import has_dim, is_multi_hot
from .errors import ArchError, did_you_mean
from .graph import reachable
from .names import decision_name
from .spec import ChoiceSpec, SpaceSpec


@dataclass(frozen=True)
class Decision:
    """One categorical decision; `kind` is block | input | left | right | dim, `target` the block or input."""

    name: str
    size: int
    choice: str
    kind: str
    target: Optional[str] = None


def choice_decisions(c: ChoiceSpec) -> list[Decision]:
    out = []
    if len(c.blocks) > 1:
        out.append(Decision(decision_name(c.name, "block"), len(c.blocks), c.name, "block"))
    if c.multi_hot_blocks and not c.fixed_inputs and len(c.candidates) > 1:
        out += [Decision(decision_name(c.name, "input", i), 2, c.name, "input", i) for i in c.candidates]
    if c.pair_blocks and c.fixed_pairs is None and len(c.candidates) > 1:
        out += [Decision(decision_name(c.name, side), len(c.candidates), c.name, side) for side in ("left", "right")]
    for b in c.blocks:
        if has_dim(b) and len(c.dims[b]) > 1:
            out.append(Decision(decision_name(c.name, "dim", b), len(c.dims[b]), c.name, "dim", b))
    return out


def all_decisions(space: SpaceSpec) -> list[Decision]:
    return [d for c in space.choices for d in choice_decisions(c)]


def choice_count(c: ChoiceSpec) -> int:
    k = len(c.candidates)
    total = 0
    for b in c.blocks:
        if is_multi_hot(b):
            conn = 1 if c.fixed_inputs else 2**k - 1
        else:
            conn = 1 if c.fixed_pairs is not None else k * k
        total += conn * (len(c.dims[b]) if has_dim(b) else 1)
    return total


def space_size(space: SpaceSpec) -> int:
    return math.prod(choice_count(c) for c in space.choices)


def log10_size(size: int) -> float:
    return math.log10(size)  # exact for ints of any size, where a float conversion overflows past 1e308


def validate(space: SpaceSpec, arch: Arch) -> None:
    """Raise ArchError naming the path of the first value that does not fit the space."""
    if arch.space and arch.space != space.name:
        raise ArchError(f"arch is for space `{arch.space}`, not `{space.name}`", "space")
    for name in arch.choices:
        if name not in space.choice_by_name:
            raise ArchError(f"unknown choice `{name}`" + _hint(name, space.choice_by_name), f"choices.{name}")
    for c in space.choices:
        if c.name not in arch.choices:
            raise ArchError(f"missing choice `{c.name}`", "choices")
        _validate_choice(c, arch.choices[c.name], f"choices.{c.name}")


def _hint(name, options) -> str:
    h = did_you_mean(name, options)
    return f" ({h})" if h else ""


def _validate_choice(c: ChoiceSpec, ca: ChoiceArch, path: str) -> None:
    if not ca.blocks:
        raise ArchError("no block chosen", f"{path}.blocks")
    for b in ca.blocks:
        if b not in c.blocks:
            raise ArchError(f"block `{b}` is not offered (offered: {', '.join(c.blocks)})", f"{path}.blocks")
    if len(set(ca.blocks)) != len(ca.blocks):
        raise ArchError("a block is listed twice", f"{path}.blocks")
    multi = [b for b in ca.blocks if is_multi_hot(b)]
    pair_blocks = [b for b in ca.blocks if not is_multi_hot(b)]
    if multi:
        if not ca.inputs:
            raise ArchError("at least one input must be on", f"{path}.inputs")
        for i in ca.inputs:
            if i not in c.candidates:
                raise ArchError(f"`{i}` is not among the candidates ({', '.join(c.candidates)})", f"{path}.inputs")
        if len(set(ca.inputs)) != len(ca.inputs):
            raise ArchError("an input is listed twice", f"{path}.inputs")
        if c.fixed_inputs and set(ca.inputs) != set(c.candidates):
            raise ArchError(f"inputs are fixed to {', '.join(c.candidates)}", f"{path}.inputs")
    elif ca.inputs:
        raise ArchError(
            f"a {'/'.join(pair_blocks)} block takes a `pair`, not a multi-hot `inputs` list", f"{path}.inputs"
        )
    if pair_blocks:
        if not ca.pairs:
            raise ArchError(f"a {'/'.join(pair_blocks)} block needs a `pair` (left, right) or `pairs`", f"{path}.pair")
        key = "pair" if len(ca.pairs) == 1 else "pairs"
        for k, pair in enumerate(ca.pairs):
            where = f"{path}.pair" if key == "pair" else f"{path}.pairs[{k}]"
            for i in pair:
                if i not in c.candidates:
                    raise ArchError(f"`{i}` is not among the candidates ({', '.join(c.candidates)})", where)
        if len(set(ca.pairs)) != len(ca.pairs):
            raise ArchError("a pair is listed twice", f"{path}.pairs")
        if c.fixed_pairs is not None and set(ca.pairs) != set(c.fixed_pairs):
            fixed = "; ".join(", ".join(p) for p in c.fixed_pairs)
            raise ArchError(f"the pairs are fixed to {fixed}", f"{path}.{key}")
    elif ca.pairs:
        raise ArchError("only gating and sum blocks take a `pair`", f"{path}.pair")
    wanted = [b for b in ca.blocks if has_dim(b)]
    for b in ca.dims:
        if b not in wanted:
            raise ArchError(f"a dim for `{b}`, which is not chosen", f"{path}.dims.{b}")
    for b in wanted:
        if b not in ca.dims:
            raise ArchError(f"missing the dim of `{b}`", f"{path}.dims")
        if ca.dims[b] not in c.dims[b]:
            raise ArchError(
                f"dim {ca.dims[b]} is not offered (options: {', '.join(map(str, c.dims[b]))})", f"{path}.dims.{b}"
            )


def sample_choice(c: ChoiceSpec, keep: float, rng: random.Random) -> ChoiceArch:
    """The paper's sampler: one block; each connection on with the keep-probability, at least one;
    uniform pair and dims."""
    block = rng.choice(c.blocks)
    inputs, pairs, dims = (), (), {}
    if is_multi_hot(block):
        if c.fixed_inputs:
            inputs = c.candidates
        else:
            while not inputs:
                inputs = tuple(i for i in c.candidates if rng.random() < keep)
        dims = {block: rng.choice(c.dims[block])}
    else:
        pairs = c.fixed_pairs or ((rng.choice(c.candidates), rng.choice(c.candidates)),)
    return ChoiceArch((block,), inputs, pairs, dims)


def sample(space: SpaceSpec, rng: random.Random) -> Arch:
    return Arch(space.name, {c.name: sample_choice(c, space.keep, rng) for c in space.choices})


def encode(space: SpaceSpec, decisions: Sequence[Decision], arch: Arch) -> list[int]:
    """Flat categorical vector; decisions the arch does not use (e.g. dims of unchosen blocks) encode as 0."""
    values = encode_values(space, decisions, arch)
    for d in decisions:
        ca = arch.choices[d.choice]
        if len(ca.blocks) != 1:
            raise ArchError("a merged (multi-block) choice has no flat encoding", f"choices.{d.choice}.blocks")
        if d.kind in ("left", "right") and len(ca.pairs) > 1:
            raise ArchError("a set of pairs has no flat encoding (it holds one pair)", f"choices.{d.choice}.pairs")
    return [v[0] for v in values]


def encode_values(space: SpaceSpec, decisions: Sequence[Decision], arch: Arch) -> list[list[int]]:
    """Per decision, the option indices the arch takes: one each, except a merged choice's blocks (several)
    and the left/right of a set of pairs (its first pair; the mask layout carries the whole set)."""
    validate(space, arch)
    out = []
    for d in decisions:
        ca, c = arch.choices[d.choice], space.choice_by_name[d.choice]
        if d.kind == "block":
            out.append([c.blocks.index(b) for b in ca.blocks])
        elif d.kind == "input":
            out.append([1 if d.target in ca.inputs else 0])
        elif d.kind in ("left", "right"):
            out.append([c.candidates.index(ca.pairs[0][0 if d.kind == "left" else 1]) if ca.pairs else 0])
        else:
            out.append([c.dims[d.target].index(ca.dims[d.target]) if d.target in ca.dims else 0])
    return out


def decode(space: SpaceSpec, decisions: Sequence[Decision], vector: Sequence[int]) -> Arch:
    if len(vector) != len(decisions):
        raise ArchError(f"the vector has {len(vector)} entries, the space has {len(decisions)} decisions")
    values = {}
    for d, v in zip(decisions, vector):
        v = int(v)
        if not 0 <= v < d.size:
            raise ArchError(f"value {v} is out of range 0..{d.size - 1}", d.name)
        values[d.name] = v
    choices = {}
    for c in space.choices:
        block = c.blocks[values.get(decision_name(c.name, "block"), 0)]
        inputs, pairs, dims = (), (), {}
        if is_multi_hot(block):
            if c.fixed_inputs or len(c.candidates) == 1:
                inputs = c.candidates
            else:
                inputs = tuple(i for i in c.candidates if values[decision_name(c.name, "input", i)])
                if not inputs:
                    raise ArchError(
                        "every connection bit is off; at least one must be on", decision_name(c.name, "input")
                    )
            dims = {block: c.dims[block][values.get(decision_name(c.name, "dim", block), 0)]}
        else:
            pairs = c.fixed_pairs or (
                (
                    c.candidates[values.get(decision_name(c.name, "left"), 0)],
                    c.candidates[values.get(decision_name(c.name, "right"), 0)],
                ),
            )
        choices[c.name] = ChoiceArch((block,), inputs, pairs, dims)
    return Arch(space.name, choices)


def relevance(space: SpaceSpec, decisions: Sequence[Decision], vectors) -> list[list[bool]]:
    """Per flat vector, which decisions shape its subnet: those of choices that reach the output, and
    of those only the ones their chosen block reads (connection bits of a multi-hot block, the pair of
    a pair block, the dim of the chosen block). Flipping any other decision leaves the subnet as it is."""
    col = {(d.choice, d.kind, d.target): i for i, d in enumerate(decisions)}
    out = []
    for vector in vectors:
        blocks, reads = {}, {}
        for c in space.choices:
            block_col = col.get((c.name, "block", None))
            block = c.blocks[int(vector[block_col])] if block_col is not None else c.blocks[0]
            blocks[c.name] = block
            if is_multi_hot(block):
                reads[c.name] = [
                    i for i in c.candidates if (c.name, "input", i) not in col or vector[col[(c.name, "input", i)]]
                ]
            elif c.fixed_pairs is not None:
                reads[c.name] = list(dict.fromkeys(x for pair in c.fixed_pairs for x in pair))
            elif (c.name, "left", None) not in col:
                reads[c.name] = list(c.candidates)
            else:
                reads[c.name] = [c.candidates[int(vector[col[(c.name, side, None)]])] for side in ("left", "right")]
        active = reachable(space, reads)
        row = []
        for d in decisions:
            block = blocks[d.choice]
            if d.choice not in active:
                row.append(False)
            elif d.kind == "input":
                row.append(is_multi_hot(block))
            elif d.kind in ("left", "right"):
                row.append(not is_multi_hot(block))
            elif d.kind == "dim":
                row.append(block == d.target)
            else:
                row.append(True)
        out.append(row)
    return out
