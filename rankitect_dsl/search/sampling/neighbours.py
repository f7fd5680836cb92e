"""The neighbourhood of an arch, where a tuned model's improvements live: every one-decision move (another
block, one input on or off, another left or right of a pair, one dim step up or down) and the compound
moves that widen one part while another shrinks, so the pair stays under a FLOPs cap that the widening alone
would break. Moves that leave the subnet as it was (a decision the arch does not use) are dropped, and so
are moves to the same subnet as another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..constraints import valid_mask


@dataclass(frozen=True)
class Move:
    """One neighbour: its flat vector, FLOPs, subnet key and what changed, in words."""

    vector: tuple
    flops: int
    key: str
    text: str
    compound: bool = False


def option_text(space, decision, value: int) -> str:
    c = space.spec.choice_by_name[decision.choice]
    if decision.kind == "block":
        return c.blocks[value]
    if decision.kind == "input":
        return "on" if value else "off"
    if decision.kind in ("left", "right"):
        return c.candidates[value]
    return str(c.dims[decision.target][value])


def change_text(space, i: int, old: int, new: int) -> str:
    d = space.decisions[i]
    if d.kind == "input":
        return f"{d.choice} {'reads' if new else 'stops reading'} {d.target}"
    what = f"{d.choice} {d.kind}" + (f" of {d.target}" if d.kind == "dim" else "")
    return f"{what} {option_text(space, d, old)} → {option_text(space, d, new)}"


def single_changes(space, vector) -> list[tuple[int, int]]:
    """(decision, new value) of every one-decision move on a decision that shapes the subnet of `vector`."""
    relevant = space.relevance(np.asarray(vector)[None])[0]
    out = []
    for i, d in enumerate(space.decisions):
        if not relevant[i] or d.size < 2:
            continue
        v = int(vector[i])
        if d.kind == "dim":  # ordered options: one step either way
            out += [(i, w) for w in (v - 1, v + 1) if 0 <= w < d.size]
        else:
            out += [(i, w) for w in range(d.size) if w != v]
    return out


def neighbours(space, vector, cap=None) -> list[Move]:
    """The moves from `vector` within `cap` (FLOPs; None: no cap): the singles, then the compound moves (one
    move that adds FLOPs with one on another decision that removes them), each subnet once."""
    vector = tuple(int(v) for v in vector)
    changes = single_changes(space, vector)
    if not changes:
        return []
    here = int(space.cost.evaluate_many([list(vector)])[0][0])
    singles = np.array([_apply(vector, [c]) for c in changes])
    single_flops = space.cost.evaluate_many(singles)[0]
    up = [k for k, f in enumerate(single_flops) if f > here]
    down = [k for k, f in enumerate(single_flops) if f < here]
    pairs = [(a, b) for a in up for b in down if changes[a][0] != changes[b][0]]
    compounds = np.array([_apply(vector, [changes[a], changes[b]]) for a, b in pairs]).reshape(-1, len(vector))
    compound_flops = space.cost.evaluate_many(compounds)[0] if len(compounds) else np.zeros(0, dtype=np.int64)
    rows = [(singles[k], single_flops[k], [changes[k]], False) for k in range(len(changes))]
    rows += [(compounds[k], compound_flops[k], [changes[a], changes[b]], True) for k, (a, b) in enumerate(pairs)]
    vectors = np.array([r[0] for r in rows])
    ok = valid_mask(space, vectors)
    if cap is not None:
        ok &= np.array([r[1] for r in rows]) <= cap
    seen = {space.subnet_key(space.decode(vector))}
    out = []
    for keep, (vec, flops, moved, compound) in zip(ok, rows):
        if not keep:
            continue
        key = space.subnet_key(space.decode(vec.tolist()))
        if key in seen:
            continue
        seen.add(key)
        text = " and ".join(change_text(space, i, vector[i], w) for i, w in moved)
        out.append(Move(tuple(int(v) for v in vec), int(flops), key, text, compound))
    return out


def _apply(vector: tuple, changes) -> list[int]:
    out = list(vector)
    for i, w in changes:
        out[i] = w
    return out
