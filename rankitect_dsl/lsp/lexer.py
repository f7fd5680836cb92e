"""A Pygments lexer for `.rks` (entry point `pygments.lexers`), so docs, `pygmentize` and reports highlight
spaces. Token classes follow the TextMate grammar in `editors/vscode/`: keywords, block names, numbers,
comments."""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, Text

from ..core.blocks import BLOCK_NAMES
from .completion import CHOICE_KEYWORDS, LAYER_KEYWORDS, TOP_KEYWORDS

KEYWORDS = tuple(sorted(set(TOP_KEYWORDS + CHOICE_KEYWORDS + LAYER_KEYWORDS + ("inputs", "distance", "all"))))
TYPES = ("dense", "embed")
SETTINGS = ("scale", "by", "steps")


class RksLexer(RegexLexer):
    name = "Rankitect space"
    aliases = ["rks"]
    filenames = ["*.rks"]
    url = "https://pypi.org/project/rankitect-dsl/"

    tokens = {
        "root": [
            (r"\s+", Text.Whitespace),
            (r"#.*$", Comment.Single),
            (r"(choice|layer|baseline|space|input)(\s+)([A-Za-z_]\w*)", bygroups(Keyword, Text.Whitespace, Name.Class)),
            (r"(:)(\s*)(dense|embed)\b", bygroups(Punctuation, Text.Whitespace, Keyword.Type)),
            (words(BLOCK_NAMES, suffix=r"\b"), Name.Builtin),
            (words(KEYWORDS + SETTINGS, suffix=r"\b"), Keyword),
            (r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", Number),
            (r"\.\.", Operator),
            (r"=", Operator),
            (r"[{}()\[\],:]", Punctuation),
            (r"[A-Za-z_]\w*", Name),
            (r"[^\s#]", Text),
        ]
    }
