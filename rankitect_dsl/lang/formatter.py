"""The canonical layout of a `.rks` file (`rks fmt`): whitespace only, every token and comment kept.

The formatter reads the token stream the parser sees (so `dense` the keyword and `dense` the input
name are told apart by the grammar, not by guessing) and lays it out by rule:
- one top-level item per line, two-space indented bodies, one space between tokens except
  around brackets and before commas;
- a choice written on one line stays on one line (when it fits and holds no comment); any other
  body is one statement per line;
- runs of one-line choices align their `{`, runs of inputs their `:`, baselines their `=`;
- a blank line between items or statements is kept (several become one); a trailing comment sits
  two spaces after its statement, an own-line comment above the statement that follows it.
The result must lex to the same tokens and comments as the input; anything else is a bug.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Optional

from lark import Token

from . import parser as P

MAX_LINE = 100
_TOP = {
    "SPACE",
    "INPUT",
    "KEEP",
    "BOTTLENECK",
    "NORM",
    "KERNEL",
    "RANK",
    "FFN",
    "DIM",
    "LAYER",
    "CHOICE",
    "OUTPUT",
    "BASELINE",
}
_CHOICE_STMT = {"BLOCKS", "FROM", "FIXED", "PAIR", "DIM", "LAYERS", "MODULES"}  # a choice's or a layer's body
_NO_SPACE_BEFORE = {"COMMA", "RSQB", "RPAR", "LSQB", "LPAR"}
_NO_SPACE_AFTER = {"LSQB", "LPAR"}


@dataclass
class _Tok:
    type: str
    text: str
    line: int


@dataclass
class _Comment:
    text: str
    blank_before: bool
    kind = "COMMENT"


@dataclass
class _Stmt:
    """A statement or top-level item: its tokens, a trailing comment, and a body when it has braces."""

    tokens: list
    blank_before: bool
    comment: Optional[str] = None
    body: Optional[list] = None  # units (_Comment | _Stmt) between the braces
    open_comment: Optional[str] = None  # a comment on the `{` line
    one_line: bool = False  # written with `{` and `}` on one line

    @property
    def kind(self) -> str:
        return self.tokens[0].type


def _tokens(source: str, filename: str) -> list[_Tok]:
    """Every token and comment in order, typed as the LALR parser typed them (it also validates).

    `#` occurs in no other token, so a comment is exactly `#` to the end of its line."""
    tree = P.syntax_tree(source, filename, keep_all_tokens=True)
    found = [(t.line, t.column, _Tok(t.type, str(t), t.line)) for t in tree.scan_values(lambda v: isinstance(v, Token))]
    starts = [0] + [m.end() for m in re.finditer("\n", source)]
    for m in re.finditer(r"#[^\n]*", source):
        line = bisect.bisect_right(starts, m.start())
        found.append((line, m.start() - starts[line - 1] + 1, _Tok("COMMENT", m.group().rstrip(), line)))
    found.sort(key=lambda f: (f[0], f[1]))
    return [tok for _, _, tok in found]


class _Reader:
    """Groups the token stream into units: top-level items, their bodies, comments and blank lines."""

    def __init__(self, toks: list[_Tok]):
        self.toks = toks
        self.i = 0
        self.last_line = 0  # line of the previous token or comment

    def peek(self) -> Optional[_Tok]:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        self.last_line = tok.line
        return tok

    def blank(self, tok: _Tok) -> bool:
        return self.last_line > 0 and tok.line - self.last_line > 1

    def units(self, starts, in_baseline: bool = False) -> list:
        """Read units until `}` (left unread) or the end of file."""
        units: list = []
        while (tok := self.peek()) is not None and tok.type != "RBRACE":
            if tok.type == "COMMENT":
                if units and isinstance(units[-1], _Stmt) and tok.line == self.last_line and units[-1].comment is None:
                    units[-1].comment = self.take().text
                else:
                    units.append(_Comment(tok.text, self.blank(tok)))
                    self.take()
                continue
            units.append(self.statement(starts, in_baseline))
        return units

    def statement(self, starts, in_baseline: bool) -> _Stmt:
        stmt = _Stmt([], self.blank(self.peek()))
        stmt.tokens.append(self.take())
        while (tok := self.peek()) is not None:
            if tok.type == "COMMENT":
                if not self.continues(self.i + 1, starts, in_baseline):
                    break
            elif tok.type == "RBRACE" or self.starts_statement(self.i, starts, in_baseline):
                break
            elif tok.type == "LBRACE":
                self.braces(stmt)
                break
            stmt.tokens.append(self.take())
        return stmt

    def continues(self, k: int, starts, in_baseline: bool) -> bool:
        """Whether the next code token from `k` on still belongs to the statement being read."""
        while k < len(self.toks) and self.toks[k].type == "COMMENT":
            k += 1
        if k == len(self.toks):
            return False
        return self.toks[k].type != "RBRACE" and not self.starts_statement(k, starts, in_baseline)

    def starts_statement(self, k: int, starts, in_baseline: bool) -> bool:
        tok = self.toks[k]
        if in_baseline:
            after = next((t for t in self.toks[k + 1 :] if t.type != "COMMENT"), None)
            return tok.type in ("NAME", "BADNAME") and after is not None and after.type == "EQUAL"
        return tok.type in starts

    def braces(self, stmt: _Stmt) -> None:
        open_line = self.take().line
        tok = self.peek()
        if tok is not None and tok.type == "COMMENT" and tok.line == open_line:
            stmt.open_comment = self.take().text
        stmt.body = self.units(_CHOICE_STMT, in_baseline=stmt.kind == "BASELINE")
        if stmt.body:
            stmt.body[0].blank_before = False
        close = self.take()
        stmt.one_line = close.line == open_line
        tok = self.peek()
        if tok is not None and tok.type == "COMMENT" and tok.line == close.line:
            stmt.comment = self.take().text


def _join(tokens: list[_Tok]) -> str:
    """One line of tokens (no comments among them), spaced by the layout rules."""
    out = ""
    prev = None
    for tok in tokens:
        if prev is not None and tok.type not in _NO_SPACE_BEFORE and prev.type not in _NO_SPACE_AFTER:
            out += " "
        out += tok.text
        prev = tok
    return out


def _lines(tokens: list[_Tok]) -> list[str]:
    """A statement's lines: a comment inside a statement ends its line; the rest continues below."""
    lines, run = [], []
    for tok in tokens:
        if tok.type == "COMMENT":
            lines.append(_with_comment(_join(run), tok.text) if run else tok.text)
            run = []
        else:
            run.append(tok)
    if run:
        lines.append(_join(run))
    return lines


def _has_inner_comment(stmt: _Stmt) -> bool:
    return any(t.type == "COMMENT" for t in stmt.tokens)


def _with_comment(text: str, comment: Optional[str]) -> str:
    return f"{text}  {comment}" if comment else text


@dataclass
class _Writer:
    lines: list = field(default_factory=list)

    def blank(self):
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def units(self, units: list, indent: str, in_baseline: bool = False) -> None:
        widths = _alignment(units, in_baseline)
        for k, unit in enumerate(units):
            if unit.blank_before:
                self.blank()
            if isinstance(unit, _Comment):
                self.lines.append(indent + unit.text)
            else:
                self.statement(unit, indent, widths.get(k), in_baseline)

    def statement(self, stmt: _Stmt, indent: str, width: Optional[int], in_baseline: bool) -> None:
        if stmt.body is None:
            split = _split(stmt, in_baseline)
            lines = [f"{split[0].ljust(width)} {split[1]}"] if width is not None else _lines(stmt.tokens)
            self.emit(indent, lines, stmt.comment)
            return
        if _fits_one_line(stmt, indent):
            header = _join(stmt.tokens)
            head = header.ljust(width) if width is not None else header
            self.emit(indent, [f"{head} {{ {_inline_body(stmt)} }}"], stmt.comment)
            return
        lines = _lines(stmt.tokens)
        if stmt.tokens[-1].type == "COMMENT":
            self.emit(indent, lines, None)
            lines = ["{"]
        else:
            lines[-1] += " {"
        self.emit(indent, lines, stmt.open_comment)
        self.units(stmt.body, indent + "  ", in_baseline=stmt.kind == "BASELINE")
        self.emit(indent, ["}"], stmt.comment)

    def emit(self, indent: str, lines: list[str], comment: Optional[str]) -> None:
        """A statement's lines: continuation lines hang four spaces deeper; the trailing comment ends the last."""
        lines = [indent + lines[0]] + [indent + "    " + line for line in lines[1:]]
        lines[-1] = _with_comment(lines[-1], comment)
        self.lines.extend(lines)


def _inline_body(stmt: _Stmt) -> str:
    return " ".join(_join(s.tokens) for s in stmt.body)


def _fits_one_line(stmt: _Stmt, indent: str) -> bool:
    if not stmt.one_line or stmt.open_comment or stmt.kind != "CHOICE" or _has_inner_comment(stmt):
        return False
    if any(isinstance(u, _Comment) or u.comment or _has_inner_comment(u) for u in stmt.body):
        return False
    return len(f"{indent}{_join(stmt.tokens)} {{ {_inline_body(stmt)} }}") <= MAX_LINE


def _split(stmt: _Stmt, in_baseline: bool) -> Optional[tuple[str, str]]:
    """(head, rest) of a statement whose head aligns with its neighbours', else None."""
    toks = stmt.tokens
    if _has_inner_comment(stmt):
        return None
    if in_baseline:
        return toks[0].text, _join(toks[1:])
    if stmt.kind == "INPUT":
        colon = next(k for k, t in enumerate(toks) if t.type == "COLON")
        return _join(toks[:colon]), _join(toks[colon:])
    if stmt.kind == "DIM":
        return _join(toks[:2]), _join(toks[2:])
    if stmt.kind == "CHOICE" and stmt.body is not None and _fits_one_line(stmt, ""):
        return _join(toks), ""
    return None


def _alignment(units: list, in_baseline: bool) -> dict:
    """Unit index -> padded head width, for runs (two or more, same kind, no blank line) of alignable statements."""
    widths: dict = {}
    run: list = []

    def close():
        if len(run) > 1:
            width = max(len(head) for _, head in run)
            widths.update({k: width for k, _ in run})
        run.clear()

    kind = None
    for k, unit in enumerate(units):
        split = _split(unit, in_baseline) if isinstance(unit, _Stmt) else None
        if split is None or unit.blank_before or unit.kind != kind:
            close()
        if split is not None:
            run.append((k, split[0]))
            kind = unit.kind
    close()
    return widths


def format_source(source: str, filename: str = "<input>") -> str:
    """The canonical text of a `.rks` file; raises RksError (positioned) when it does not parse."""
    toks = _tokens(source, filename)
    writer = _Writer()
    writer.units(_Reader(toks).units(_TOP), "")
    text = "\n".join(writer.lines) + "\n" if writer.lines else ""
    _same_tokens(toks, _tokens(text, filename))
    return text


def _same_tokens(before: list[_Tok], after: list[_Tok]) -> None:
    if [(t.type, t.text.rstrip()) for t in before] != [(t.type, t.text.rstrip()) for t in after]:
        raise AssertionError("rks fmt changed the tokens of the file; this is a bug in the formatter")
