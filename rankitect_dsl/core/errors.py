"""Diagnostics: every user-facing error carries a position and renders as `file:line:col: error: …`."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Optional


@dataclass(frozen=True)
class Span:
    """A position in a source file (1-based line and column)."""

    line: int
    column: int
    length: int = 1


@dataclass(frozen=True)
class Fix:
    """An edit that resolves a diagnostic, as an editor's quick fix offers it: replace `span` with `text`
    (a span of length 0 inserts at it)."""

    title: str
    span: Span
    text: str


@dataclass
class Diagnostic:
    message: str
    span: Optional[Span] = None
    hint: Optional[str] = None
    fix: Optional[Fix] = None

    def render(self, filename: str, source: Optional[str]) -> str:
        if self.span is None:
            head = f"{filename}: error: {self.message}"
        else:
            head = f"{filename}:{self.span.line}:{self.span.column}: error: {self.message}"
        lines = [head]
        if self.span is not None and source is not None:
            text_lines = source.splitlines()
            if 0 < self.span.line <= len(text_lines):
                text = text_lines[self.span.line - 1].expandtabs(1)
                lines.append(f"    {text}")
                lines.append("    " + " " * (self.span.column - 1) + "^" * max(1, self.span.length))
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class RksError(Exception):
    """Bad user input. Carries one or more diagnostics; `str()` renders all of them. Without a file (a bad
    flag or value) the diagnostics are prefixed with the program, `rks: error: …`."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | str, filename: str = "rks", source: Optional[str] = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        self.diagnostics = list(diagnostics)
        self.filename = filename
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(d.render(self.filename, self.source) for d in self.diagnostics)


class ArchError(RksError):
    """An architecture that does not fit its space; messages name the path of the failing value."""

    def __init__(self, message: str, path: str = ""):
        self.path = path
        super().__init__([Diagnostic(f"{path}: {message}" if path else message)], filename="arch")

    def render(self) -> str:
        return "arch error: " + self.diagnostics[0].message


def close_match(name: str, options: Iterable[str]) -> Optional[str]:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, options: Iterable[str]) -> Optional[str]:
    close = close_match(name, options)
    return f"did you mean `{close}`?" if close else None
