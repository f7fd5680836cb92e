"""What every part of the checker shares: diagnostics recorded once each, with hints and quick fixes, and
the small validators of names, numbers and dim options that the settings, the choices and the baseline
all read through."""

from __future__ import annotations

from typing import Optional

from ...core import limits as L
from ...core.blocks import REGISTRY
from ...core.errors import Diagnostic, Fix, Span, close_match
from ...core.names import identifier_problem
from .. import syntax as S


def shown(text: str) -> str:
    """A literal as a message quotes it: a 320-digit number is cut, not pasted whole."""
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} characters)"


class CheckBase:
    """The checker's state and its validators; the parts (`settings.py`, `choices.py`, `baseline.py`) add the
    checks of the file's declarations, and `lang/checker.py` runs them in order."""

    ceiling_hint = "the ceilings are in docs/language.md (Limits)"

    def __init__(self, module: S.Module, filename: str, source: str):
        self.module = module
        self.filename = filename
        self.source = source
        self.diags: list[Diagnostic] = []
        self.reported: set = set()
        self.invalid_names: set[str] = set()  # already reported; references to them stay quiet
        self.spans: dict[str, Span] = {}  # each input's and choice's name, for messages of later stages
        self.input_names: list[str] = []  # the declared inputs, in file order
        self.partial: set[str] = set()  # choices that lost a `from` name to an error: a baseline may name it

    def error(self, message: str, span: Optional[Span], hint: Optional[str] = None, fix: Optional[Fix] = None):
        """Record a diagnostic once: a range's shared body would otherwise repeat it for every choice."""
        if (message, span, hint) not in self.reported:
            self.reported.add((message, span, hint))
            self.diags.append(Diagnostic(message, span, hint, fix))

    def unknown(self, message: str, ref: S.Name, options, otherwise: Optional[str] = None):
        """An unknown name: with one close match, the hint names it and the fix writes it."""
        close = close_match(ref.text, options)
        if close is None:
            self.error(message, ref.span, otherwise)
        else:
            self.error(message, ref.span, f"did you mean `{close}`?", Fix(f"write `{close}`", ref.span, close))

    def insert_statement(self, close: Optional[Span], statement: str) -> Optional[Fix]:
        """A fix that adds `statement` to a braced body just before its `}`: on its own line, indented like
        a body, when the `}` opens its line; else inline."""
        if close is None:
            return None
        line = self.source.splitlines()[close.line - 1]
        before = line[: close.column - 1]
        if before.strip():
            return Fix(f"add `{statement}`", Span(close.line, close.column, 0), f"{statement} ")
        return Fix(f"add `{statement}`", Span(close.line, 1, 0), f"{before}  {statement}\n")

    def singleton(self, items, kind, what):
        found = [i for i in items if isinstance(i, kind)]
        for extra in found[1:]:
            span = extra.name.span if hasattr(extra, "name") else extra.span
            self.error(f"duplicate {what}", span, "write it once")
        return found[0] if found else None

    # -- small validators -------------------------------------------------------------------

    def ident(self, name: S.Name, what: str) -> bool:
        problem = identifier_problem(name.text)
        if problem:
            self.error(f"{what} `{name.text}`: {problem}", name.span)
            return False
        return True

    def positive_int(self, num: S.Number, what: str, limit: int = L.MAX_SIZE) -> Optional[int]:
        if not num.is_int or num.int_value <= 0:
            self.error(f"{what} must be a positive integer, got `{shown(num.text)}`", num.span)
            return None
        if num.int_value > limit:
            self.error(f"{what} must be at most {limit:,}, got `{shown(num.text)}`", num.span, self.ceiling_hint)
            return None
        return num.int_value

    def finite(self, num: S.Number, what: str) -> bool:
        if not num.is_finite:
            self.error(f"{what} `{shown(num.text)}` is not a finite number", num.span)
            return False
        return True

    def block_name(self, name: S.Name) -> bool:
        if name.text not in REGISTRY:  # the registry, not a snapshot of it: a block registered later counts
            self.unknown(f"unknown block `{name.text}`", name, list(REGISTRY), f"blocks are {', '.join(REGISTRY)}")
            return False
        return True

    def dims(self, stmt) -> Optional[tuple[int, ...]]:
        if isinstance(stmt, S.DimList):
            if len(stmt.options) > L.MAX_DIM_OPTIONS:
                self.error(
                    f"{len(stmt.options):,} dim options for `{stmt.block.text}`; a block may offer at most "
                    f"{L.MAX_DIM_OPTIONS}",
                    stmt.options[L.MAX_DIM_OPTIONS].span,
                    self.ceiling_hint,
                )
                return None
            values = [self.positive_int(n, "a dim option") for n in stmt.options]
            if any(v is None for v in values):
                return None
            spans = stmt.options
        else:
            base = self.positive_int(stmt.base, "the dim scale base")
            steps = self.positive_int(stmt.steps, "the number of dim steps", L.MAX_DIM_OPTIONS)
            if not (self.finite(stmt.low, "the dim scale start") and self.finite(stmt.high, "the dim scale end")):
                return None
            low, high = stmt.low.value, stmt.high.value
            if low <= 0:
                self.error(f"the dim scale must be positive, got `{stmt.low.text}`", stmt.low.span)
                return None
            if high < low:
                self.error(
                    f"the dim scale range ends below its start ({stmt.high.text} < {stmt.low.text})", stmt.high.span
                )
                return None
            if base is None or steps is None:
                return None
            if base * high > L.MAX_SIZE + 0.5:
                self.error(
                    f"dim scale {base} × {shown(stmt.high.text)} exceeds the largest dim, {L.MAX_SIZE:,}",
                    stmt.high.span,
                    self.ceiling_hint,
                )
                return None
            factors = [low] if steps == 1 else [low + i * (high - low) / (steps - 1) for i in range(steps)]
            values = [int(round(base * f)) for f in factors]
            if any(v <= 0 for v in values):
                self.error(f"dim scale {base} × {stmt.low.text} rounds to 0", stmt.low.span)
                return None
            spans = [stmt.base] * len(values)
        seen = set()
        for v, num in zip(values, spans):
            if v in seen:
                self.error(f"dim option {v} is repeated", num.span, "each option must be distinct")
                return None
            seen.add(v)
        return tuple(sorted(values))
