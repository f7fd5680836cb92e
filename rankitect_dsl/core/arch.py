"""Architectures: the decisions of one subnet, as readable JSON keyed by choice name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from .errors import ArchError


@dataclass(frozen=True)
class ChoiceArch:
    blocks: tuple[str, ...]
    inputs: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()  # the (left, right) pairs of a gating/sum block (Eq. 2 sums them)
    dims: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"blocks": list(self.blocks)}
        if self.inputs:
            out["inputs"] = list(self.inputs)
        if len(self.pairs) == 1:
            out["pair"] = list(self.pairs[0])
        elif self.pairs:
            out["pairs"] = [list(p) for p in self.pairs]
        if self.dims:
            out["dims"] = dict(self.dims)
        return out

    @classmethod
    def from_dict(cls, data, path: str) -> "ChoiceArch":
        if not isinstance(data, dict):
            raise ArchError("expected an object with `blocks`", path)
        unknown = set(data) - {"blocks", "inputs", "pair", "pairs", "dims"}
        if unknown:
            raise ArchError(
                f"unknown key(s) {', '.join(sorted(unknown))}; expected blocks, inputs, pair, pairs, dims", path
            )
        blocks = _str_list(data.get("blocks"), f"{path}.blocks")
        inputs = _str_list(data.get("inputs", []), f"{path}.inputs")
        if "pair" in data and "pairs" in data:
            raise ArchError("give `pair` (one) or `pairs` (a list), not both", f"{path}.pairs")
        if "pair" in data:
            pairs = (_pair(data["pair"], f"{path}.pair"),)
        elif "pairs" in data:
            if not isinstance(data["pairs"], list) or not data["pairs"]:
                raise ArchError("expected a non-empty list of [left, right] pairs", f"{path}.pairs")
            pairs = tuple(_pair(p, f"{path}.pairs[{k}]") for k, p in enumerate(data["pairs"]))
        else:
            pairs = ()
        dims = data.get("dims", {})
        if not isinstance(dims, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in dims.values()):
            raise ArchError("dims must map block names to integers", f"{path}.dims")
        return cls(tuple(blocks), tuple(inputs), pairs, dict(dims))


def _pair(value, path) -> tuple[str, str]:
    names = _str_list(value, path)
    if len(names) != 2:
        raise ArchError(f"a pair has two names (left, right), got {len(names)}", path)
    return (names[0], names[1])


def _str_list(value, path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArchError("expected a list of names", path)
    return value


@dataclass(frozen=True)
class Arch:
    space: str
    choices: dict  # choice name -> ChoiceArch, in space order

    def to_dict(self) -> dict:
        return {"space": self.space, "choices": {k: v.to_dict() for k, v in self.choices.items()}}

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data) -> "Arch":
        if not isinstance(data, dict) or not isinstance(data.get("choices"), dict):
            raise ArchError("an arch is an object with `space` and `choices`")
        space = data.get("space", "")
        if not isinstance(space, str):
            raise ArchError("`space` must be a string", "space")
        return cls(space, {k: ChoiceArch.from_dict(v, f"choices.{k}") for k, v in data["choices"].items()})

    @classmethod
    def from_json(cls, text: str) -> "Arch":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ArchError(f"not JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
        except RecursionError:
            raise ArchError("nests too deep to be an arch (an arch is two levels of objects and lists)") from None
        return cls.from_dict(data)
