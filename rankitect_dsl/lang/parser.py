"""Parse `.rks` text into the AST (`syntax.py`); syntax errors become positioned diagnostics."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..core import limits as L
from ..core.errors import Diagnostic, RksError, Span
from . import syntax as S

_TOKEN_WORDS = {
    "NAME": "a name",
    "BADNAME": "a name",
    "NUMBER": "a number",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "EQUAL": "`=`",
    "RANGE": "`..`",
    "$END": "end of file",
}


def _grammar_text() -> str:
    return resources.files("rankitect_dsl.grammars").joinpath("rks.lark").read_text()


@lru_cache(maxsize=2)
def _parser(keep_all_tokens: bool = False) -> Lark:
    return Lark(
        _grammar_text(),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        keep_all_tokens=keep_all_tokens,
    )


def _span(tok: Token) -> Span:
    return Span(tok.line, tok.column, max(1, len(str(tok))))


def _meta_span(meta) -> Span:
    return Span(meta.line, meta.column, 1)


def _closing_brace(meta) -> Span:
    """The `}` that ends a braced declaration: where a quick fix inserts a missing statement."""
    return Span(meta.end_line, meta.end_column - 1, 1)


@v_args(inline=True)
class _ToAst(Transformer):
    def name(self, tok):
        return S.Name(str(tok), _span(tok))

    def number(self, tok):
        return S.Number(str(tok), _span(tok))

    def name_list(self, *names):
        return list(names)

    def number_list(self, *nums):
        return list(nums)

    def start(self, *items):
        return S.Module(list(items))

    def space_decl(self, name):
        return S.SpaceDecl(name)

    def input_decl(self, name, typ):
        kind, sizes = typ
        return S.InputDecl(name, kind, sizes)

    def dense_type(self, n):
        return ("dense", [n])

    def embed_type(self, n, d):
        return ("embed", [n, d])

    def keep_stmt(self, value):
        return S.KeepStmt(value, value.span)

    def bottleneck_stmt(self, value):
        return S.BottleneckStmt(value, value.span)

    def norm_stmt(self, value):
        return S.NormStmt(value, value.span)

    def kernel_stmt(self, value):
        return S.ModuleWidthStmt("kernel", value, value.span)

    def rank_stmt(self, value):
        return S.ModuleWidthStmt("rank", value, value.span)

    def ffn_stmt(self, value):
        return S.ModuleWidthStmt("ffn", value, value.span)

    @v_args(meta=True, inline=False)
    def layer_decl(self, meta, children):
        name, *body = children
        return S.LayerDecl(name, list(body), _meta_span(meta), _closing_brace(meta))

    @v_args(meta=True, inline=False)
    def layers_stmt(self, meta, children):
        return S.LayersStmt(children[0], _meta_span(meta))

    @v_args(meta=True, inline=False)
    def modules_stmt(self, meta, children):
        return S.ModulesStmt(children[0], _meta_span(meta))

    def layer_assignment(self, layer, *dims):
        return S.LayerAssignment(layer, list(dims))

    def layer_dim(self, module, dim):
        return (module, dim)

    @v_args(meta=True, inline=False)
    def choice_decl(self, meta, children):
        first, _range, last, *body = children
        return S.ChoiceDecl(first, last, list(body), _meta_span(meta), _closing_brace(meta))

    @v_args(meta=True, inline=False)
    def blocks_stmt(self, meta, children):
        (arg,) = children
        names = None if isinstance(arg, Token) else arg
        return S.BlocksStmt(names, _meta_span(meta))

    def from_distance(self, _kw, numbers):
        return S.FromDistance(numbers)

    def from_names(self, names):
        return S.FromNames(names)

    @v_args(meta=True, inline=False)
    def fixed_stmt(self, meta, children):
        return S.FixedInputs(_meta_span(meta))

    def pair_stmt(self, left, right):
        return S.PairStmt(left, right)

    def dim_list(self, block, options):
        return S.DimList(block, options)

    def dim_scale(self, block, base, low, _range, high, steps):
        return S.DimScale(block, base, low, high, steps)

    @v_args(meta=True, inline=False)
    def output_decl(self, meta, children):
        return S.OutputDecl(children[0], _meta_span(meta))

    def baseline_decl(self, name, *assignments):
        return S.BaselineDecl(name, list(assignments))

    def assignment(self, choice, block, inputs, dim):
        return S.Assignment(choice, block, inputs or [], dim)


def _describe_expected(expected) -> str:
    words = sorted({_TOKEN_WORDS.get(e, f"`{e.lower()}`") for e in expected})
    if len(words) > 6:
        words = words[:6] + ["…"]
    return ", ".join(words)


def _syntax_diagnostic(err: UnexpectedInput) -> Diagnostic:
    if isinstance(err, UnexpectedCharacters):
        char = err.char
        return Diagnostic(f"unexpected character `{char}`", Span(err.line, err.column, 1))
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            return Diagnostic(
                f"unexpected end of file; expected {_describe_expected(err.expected)}",
                Span(max(1, err.line), max(1, err.column), 1),
            )
        return Diagnostic(f"unexpected `{tok}`; expected {_describe_expected(err.expected)}", _span(tok))
    if isinstance(err, UnexpectedEOF):
        return Diagnostic("unexpected end of file", None)
    return Diagnostic(str(err), Span(getattr(err, "line", 1), getattr(err, "column", 1), 1))


CHOICE_KEYWORD = re.compile(r"#[^\n]*|\bchoice\b")


def refuse_too_many_choices(source: str, filename: str) -> None:
    """A file declaring more choices than a space may hold is refused at the first one too many, before the
    parse and the analysis: those take seconds for thousands, and the language server re-checks on every
    keystroke. (`choice` is a keyword, never a name; a comment is skipped.) A range's choices are counted by
    the checker."""
    seen = 0
    for match in CHOICE_KEYWORD.finditer(source):
        if match.group() == "choice":
            seen += 1
            if seen > L.MAX_CHOICES:
                line = source.count("\n", 0, match.start()) + 1
                column = match.start() - source.rfind("\n", 0, match.start())
                limit = f"{L.MAX_CHOICES:,}"
                message = f"the file declares more than {limit} choices; a space may hold at most {limit}"
                hint = "the ceilings are in docs/language.md (Limits)"
                raise RksError([Diagnostic(message, Span(line, column, len("choice")), hint)], filename, source)


def syntax_tree(source: str, filename: str = "<input>", keep_all_tokens: bool = False):
    """The lark parse tree (with every keyword token when `keep_all_tokens`, as the formatter reads it);
    raise RksError with one positioned diagnostic on a syntax error."""
    refuse_too_many_choices(source, filename)
    try:
        return _parser(keep_all_tokens).parse(source)
    except UnexpectedInput as err:
        diag = _syntax_diagnostic(err)
        if diag.span is not None and diag.span.line < 1:
            lines = source.splitlines() or [""]
            diag = Diagnostic(diag.message, Span(len(lines), len(lines[-1]) + 1, 1))
        raise RksError([diag], filename, source) from None


def parse(source: str, filename: str = "<input>") -> S.Module:
    """Parse source text into the AST; raise RksError with one positioned diagnostic on a syntax error."""
    tree = syntax_tree(source, filename)
    try:
        return _ToAst().transform(tree)
    except VisitError as err:  # a bug in the transformer, not bad input
        raise err.orig_exc from None
