"""The AST of a `.rks` file: plain dataclasses that keep the source span of every name and number."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Optional, Union

from ..core.errors import Span


@dataclass(frozen=True)
class Name:
    text: str
    span: Span


@dataclass(frozen=True)
class Number:
    text: str
    span: Span

    @property
    def value(self) -> float:
        """As a float: `inf` for a literal beyond 1.8e308 (the checker refuses those where it reads one)."""
        return float(self.text)

    @property
    def is_int(self) -> bool:
        """Written as an integer (digits only, no point or exponent), whatever its size."""
        return self.text.lstrip("+-").isdigit()

    @property
    def int_value(self) -> int:
        """The exact integer (a Python int of any size); only for `is_int` numbers."""
        return int(self.text)

    @property
    def is_finite(self) -> bool:
        return math.isfinite(self.value)


@dataclass
class SpaceDecl:
    name: Name


@dataclass
class InputDecl:
    name: Name
    kind: str  # "dense" | "embed"
    sizes: list[Number]


@dataclass
class KeepStmt:
    value: Number
    span: Span


@dataclass
class BottleneckStmt:
    value: Number
    span: Span


@dataclass
class NormStmt:
    value: Name
    span: Span


@dataclass
class ModuleWidthStmt:
    """`kernel N`, `rank N` or `ffn N`: a fixed width of the DHEN modules."""

    setting: str
    value: Number
    span: Span


@dataclass
class DimList:
    block: Name
    options: list[Number]


@dataclass
class DimScale:
    block: Name
    base: Number
    low: Number
    high: Number
    steps: Number


DimStmt = Union[DimList, DimScale]


@dataclass
class BlocksStmt:
    names: Optional[list[Name]]  # None means `all`
    span: Span


@dataclass
class FromDistance:
    distances: list[Number]


@dataclass
class FromNames:
    names: list[Name]


@dataclass
class FixedInputs:
    span: Span


@dataclass
class PairStmt:
    left: Name
    right: Name


_RANGE_NAME = re.compile(r"^(.*?)(\d+)$")


def range_bounds(first: str, last: str) -> Optional[tuple[str, int, int]]:
    """`c2 .. c9` as (prefix, 2, 9); None unless both names are one prefix followed by a number."""
    a, b = _RANGE_NAME.match(first), _RANGE_NAME.match(last)
    if not a or not b or a.group(1) != b.group(1):
        return None
    return a.group(1), int(a.group(2)), int(b.group(2))


@dataclass
class ChoiceDecl:
    first: Name
    last: Optional[Name]
    body: list
    span: Span
    close: Optional[Span] = None  # its `}`


@dataclass
class LayersStmt:
    count: Number
    span: Span


@dataclass
class ModulesStmt:
    names: list[Name]
    span: Span


@dataclass
class LayerDecl:
    """`layer NAME { layers K  modules …  from …  dim … }`: K stacked DHEN layers, lowered to choices."""

    name: Name
    body: list
    span: Span
    close: Optional[Span] = None  # its `}`


@dataclass
class OutputDecl:
    sources: list[Name]
    span: Span


@dataclass
class Assignment:
    choice: Name
    block: Name
    inputs: list[Name]
    dim: Optional[Number]


@dataclass
class LayerAssignment:
    """`NAME = layer(module dim, …)` in a baseline: the same dims in every layer of layer NAME."""

    layer: Name
    dims: list[tuple[Name, Number]]


@dataclass
class BaselineDecl:
    name: Name
    assignments: list[Assignment]


@dataclass
class Module:
    items: list = field(default_factory=list)
