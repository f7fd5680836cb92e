"""Completion from the text before the cursor: block names after `blocks`, `modules` and `dim`; the names a
choice may read after `from` and `pair`; the keywords a statement may start with where one begins. The
text being typed rarely parses, so the context is read off its tokens, and the names come from the last
version of the file that parsed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..core.blocks import NORMS, REGISTRY
from ..lang.layers import MODULE_BLOCKS
from .document import NameIndex

TOP_KEYWORDS = (
    "space",
    "input",
    "keep",
    "bottleneck",
    "norm",
    "kernel",
    "rank",
    "ffn",
    "dim",
    "layer",
    "choice",
    "output",
    "baseline",
)
CHOICE_KEYWORDS = ("blocks", "from", "dim", "fixed", "pair")
LAYER_KEYWORDS = ("layers", "modules", "from", "dim")
_TOKEN = re.compile(r"#[^\n]*|\.\.|[A-Za-z_][A-Za-z0-9_]*|[-+0-9.eE]+|[{}()\[\],:=]|\S")


@dataclass(frozen=True)
class Item:
    label: str
    kind: str  # "keyword" | "block" | "input" | "choice" | "layer" | "value"
    detail: str = ""


def _blocks(names) -> list[Item]:
    return [Item(n, "block", REGISTRY[n].summary) for n in names]


def _keywords(words) -> list[Item]:
    return [Item(w + (" inputs" if w == "fixed" else ""), "keyword") for w in words]


def _names(index: Optional[NameIndex], exclude: str = "") -> list[Item]:
    if index is None:
        return []
    return [Item(name, s.kind, s.kind) for name, s in index.defs.items() if name != exclude]


def _scope(tokens: list[str]) -> tuple[list[str], list[str]]:
    """Where the cursor is: the declaration whose `{` is still open (its keyword and name; empty at the
    top level), and the tokens since that `{` (or since the last `}` at the top level)."""
    braces = [k for k, t in enumerate(tokens) if t in ("{", "}")]
    last = braces[-1] if braces else -1
    if last < 0 or tokens[last] == "}":
        return [], tokens[last + 1 :]
    starts = [k for k in range(last) if tokens[k] in ("choice", "layer", "baseline")]
    return (tokens[starts[-1] : last] if starts else []), tokens[last + 1 :]


def complete(source_before: str, index: Optional[NameIndex]) -> list[Item]:
    """What may follow the text up to the cursor (a partly typed word is left for the editor to filter)."""
    tokens = [t for t in _TOKEN.findall(source_before) if not t.startswith("#")]
    if source_before and not source_before[-1].isspace() and tokens and re.match(r"\w", tokens[-1]):
        tokens = tokens[:-1]  # the word being typed
    opener, body = _scope(tokens)
    kind = opener[0] if opener else "top"
    current = opener[1] if len(opener) > 1 else ""
    if kind == "baseline":
        return _baseline(body, index)
    keywords = {"choice": CHOICE_KEYWORDS, "layer": LAYER_KEYWORDS, "top": TOP_KEYWORDS}[kind]
    stmt_at = max((k for k, t in enumerate(body) if t in keywords), default=None)
    if stmt_at is None:
        return _keywords(keywords)
    stmt, args, last = body[stmt_at], body[stmt_at + 1 :], body[-1]
    continuing = last == stmt or last == "," or (stmt == "output" and args == ["from"])
    if not continuing:
        return _keywords(keywords) + (_names(index, current) if stmt == "from" else [])
    if stmt == "blocks":
        return [Item("all", "keyword", "the blocks of paper 3.1")] + _blocks(REGISTRY)
    if stmt == "modules":
        return _blocks(MODULE_BLOCKS)
    if stmt == "dim" and not args:
        return _blocks(n for n, b in REGISTRY.items() if b.searched_dim)
    if stmt == "from" and kind != "top":
        distance = [Item("distance", "keyword", "read earlier choices by distance")] if kind == "choice" else []
        return distance + _names(index, current)
    if stmt in ("pair", "output"):
        return _names(index, current)
    if stmt == "norm":
        return [Item(n, "value") for n in NORMS]
    return []


def _baseline(body: list[str], index: Optional[NameIndex]) -> list[Item]:
    if body and body[-1] == "=":
        return [Item("layer", "keyword", "a layer's dims")] + _blocks(REGISTRY)
    if "(" in body and body[::-1].index("(") < (body[::-1].index(")") if ")" in body else len(body)):
        return _names(index)
    return [i for i in _names(index) if i.kind in ("choice", "layer")]
