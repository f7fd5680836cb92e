"""What the language server knows of one `.rks` text: its diagnostics, its checked space, and where every
name is declared and read. Pure: no protocol, no pygls, no torch; the tests call it directly and the
server calls it on every change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..core import limits as L
from ..core.errors import Diagnostic, RksError, Span
from ..lang import syntax as S
from ..lang.layers import module_choice
from ..lang.parser import parse
from ..space import Space, check_parsed, refuse_large_source


@dataclass(frozen=True)
class Symbol:
    """A declaration: what it is, its name's span, and the span of the whole declaration."""

    name: str  # as the outline shows it (`c2 .. c9` for a range)
    kind: str  # "space" | "input" | "choice" | "layer" | "baseline"
    span: Span
    start: Span
    end: Span
    span_text: str  # the name at `span`


@dataclass(frozen=True)
class Ref:
    """A name read somewhere: a declared name (`kind` "name") or a block (`kind` "block")."""

    name: str
    kind: str
    span: Span


@dataclass
class NameIndex:
    """Declarations and references of one parsed file; names a range or a layer makes point at it."""

    symbols: list[Symbol] = field(default_factory=list)  # the outline, in file order
    defs: dict[str, Symbol] = field(default_factory=dict)  # inputs, choices and layers: what `from` may read
    refs: list[Ref] = field(default_factory=list)
    layer_choices: dict[str, list[str]] = field(default_factory=dict)  # layer name -> the choices it makes

    def at(self, line: int, column: int) -> Optional[Ref]:
        """The name under a 1-based position: a reference, or a declaration (its kind the symbol's)."""
        declared = [Ref(s.span_text, s.kind, s.span) for s in self.symbols]
        for ref in self.refs + declared:
            if ref.span.line == line and ref.span.column <= column < ref.span.column + ref.span.length:
                return ref
        return None

    def references(self, name: str) -> list[Span]:
        return [r.span for r in self.refs if r.kind == "name" and r.name == name]

    @staticmethod
    def of(module: S.Module) -> "NameIndex":
        index = NameIndex()
        for item in module.items:
            index.item(item)
        return index

    def declare(self, name: S.Name, kind: str, start: Span, end: Optional[Span] = None, shown: str = "") -> None:
        symbol = Symbol(shown or name.text, kind, name.span, start, end or name.span, name.text)
        self.symbols.append(symbol)
        if kind in ("input", "choice", "layer"):
            self.defs.setdefault(name.text, symbol)

    def read(self, names, kind: str = "name") -> None:
        self.refs += [Ref(n.text, kind, n.span) for n in names]

    def item(self, item) -> None:
        if isinstance(item, S.SpaceDecl):
            self.declare(item.name, "space", item.name.span)
        elif isinstance(item, S.InputDecl):
            self.declare(item.name, "input", item.name.span, item.sizes[-1].span)
        elif isinstance(item, S.ChoiceDecl):
            self.choice(item)
        elif isinstance(item, S.LayerDecl):
            self.layer(item)
        elif isinstance(item, (S.DimList, S.DimScale)):
            self.read([item.block], "block")
        elif isinstance(item, S.OutputDecl):
            self.read(item.sources)
        elif isinstance(item, S.BaselineDecl):
            self.declare(item.name, "baseline", item.name.span)
            for a in item.assignments:
                if isinstance(a, S.Assignment):
                    self.read([a.choice, *a.inputs])
                    self.read([a.block], "block")
                else:
                    self.read([a.layer])
                    self.read([m for m, _ in a.dims], "block")

    def choice(self, decl: S.ChoiceDecl) -> None:
        end = decl.close or decl.span
        if decl.last is None:
            self.declare(decl.first, "choice", decl.span, end)
        else:
            self.declare(decl.first, "choice", decl.span, end, f"{decl.first.text} .. {decl.last.text}")
            bounds = S.range_bounds(decl.first.text, decl.last.text)
            if bounds is not None and bounds[2] - bounds[1] < L.MAX_CHOICES:
                prefix, lo, hi = bounds
                for k in range(lo, hi + 1):
                    self.defs.setdefault(f"{prefix}{k}", self.symbols[-1])
            last = Symbol(decl.last.text, "choice", decl.last.span, decl.span, end, decl.last.text)
            self.defs.setdefault(decl.last.text, last)
            self.refs.append(Ref(decl.last.text, "name", decl.last.span))
        self.body(decl.body)

    def layer(self, decl: S.LayerDecl) -> None:
        self.declare(decl.name, "layer", decl.span, decl.close or decl.span)
        modules = [m.text for s in decl.body if isinstance(s, S.ModulesStmt) for m in s.names]
        count = next((s.count for s in decl.body if isinstance(s, S.LayersStmt)), None)
        layers = count.int_value if count is not None and count.is_int else 1
        made = [module_choice(decl.name.text, k, m) for k in range(1, min(layers, L.MAX_CHOICES) + 1) for m in modules]
        self.layer_choices[decl.name.text] = made
        for name in made:
            self.defs.setdefault(name, self.symbols[-1])
        self.body(decl.body)

    def body(self, statements) -> None:
        for stmt in statements:
            if isinstance(stmt, S.FromNames):
                self.read(stmt.names)
            elif isinstance(stmt, S.PairStmt):
                self.read([stmt.left, stmt.right])
            elif isinstance(stmt, S.BlocksStmt) and stmt.names:
                self.read(stmt.names, "block")
            elif isinstance(stmt, S.ModulesStmt):
                self.read(stmt.names, "block")
            elif isinstance(stmt, (S.DimList, S.DimScale)):
                self.read([stmt.block], "block")


@dataclass
class Analysis:
    """One text, checked: its diagnostics; its space when it has none; its names when it parses."""

    source: str
    diagnostics: list[Diagnostic]
    space: Optional[Space] = None
    index: Optional[NameIndex] = None


def analyse(source: str, filename: str) -> Analysis:
    """Parse and check a text as `rks check` does, keeping every diagnostic instead of raising."""
    try:
        refuse_large_source(len(source), "characters", filename)
        module = parse(source, filename)
    except RksError as err:
        return Analysis(source, err.diagnostics)
    index = NameIndex.of(module)
    try:
        return Analysis(source, [], check_parsed(module, source, filename), index)
    except RksError as err:
        return Analysis(source, err.diagnostics, None, index)
