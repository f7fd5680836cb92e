"""Editor support without a server: the exact per-choice FLOPs extremes against brute force, hover facts
against the compiler's plan, the in-process fuzz, the TextMate grammar on VS Code's engine, and the
Pygments lexer."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_cost import measured_parts
from test_lsp import SHIPPED, mutations

from conftest import fuzzed, space_path
from rankitect_dsl import load_source, load_space
from rankitect_dsl.compiler.choice_costs import arch_costs, flops_extremes
from rankitect_dsl.core.arch import Arch, ChoiceArch
from rankitect_dsl.core.blocks import BLOCK_NAMES, REGISTRY, is_multi_hot
from rankitect_dsl.core.names import choice_part
from rankitect_dsl.lang.parser import syntax_tree
from rankitect_dsl.lsp.completion import complete
from rankitect_dsl.lsp.document import analyse
from rankitect_dsl.lsp.hover import choice_text, hover

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"

MIXED = """
space mixed
input dense : dense[5]
input sparse : embed[3, 4]
bottleneck 4
ffn 8
choice a { blocks gating, sum  from dense, sparse  fixed inputs }
choice b { blocks attention, linear  from a, sparse  dim attention 2, 4  dim linear 9 }
choice e { blocks dot, dot_compressed  from sparse, b  fixed inputs  dim dot 1, 2  dim dot_compressed 3 }
choice c { blocks linear, sum  from a, b  pair b, a  dim linear 7 }
choice d { blocks embed_fc, gating  from b, c, sparse  dim embed_fc 2 }
choice f { blocks cross  from d, e  fixed inputs  dim cross 1, 2 }
output from f, e
"""


def every_arch(space):
    """Every arch of a small space, one block per choice, enumerated from the spec."""

    def configs(c):
        for b in c.blocks:
            dims = [{b: v} for v in c.dims[b]] if b in c.dims else [{}]
            if is_multi_hot(b):
                k = len(c.candidates)
                sels = (
                    [c.candidates]
                    if c.fixed_inputs
                    else [tuple(x for i, x in enumerate(c.candidates) if m >> i & 1) for m in range(1, 2**k)]
                )
                yield from (ChoiceArch((b,), s, (), dm) for s in sels for dm in dims)
            else:
                pairs = [c.fixed_pairs] if c.fixed_pairs else [((i, j),) for i in c.candidates for j in c.candidates]
                yield from (ChoiceArch((b,), (), p, {}) for p in pairs)

    choices = space.spec.choices
    for combo in itertools.product(*[list(configs(c)) for c in choices]):
        yield Arch(space.name, {c.name: x for c, x in zip(choices, combo)})


@pytest.mark.parametrize("source", [MIXED, Path(space_path("tiny")).read_text()], ids=["mixed", "tiny"])
def test_choice_flops_extremes_equal_brute_force(source):
    space = load_source(source)
    low, high, n = {}, {}, 0
    for arch in every_arch(space):
        n += 1
        parts = space.cost_breakdown(arch)  # the plan's costs, as `rks flops` prints them
        mine = arch_costs(space.spec, arch)
        for name in space.active_choices(arch):
            flops = parts[choice_part(name)]["flops"]
            assert mine[name].flops == flops, (name, arch)
            low[name], high[name] = min(low.get(name, flops), flops), max(high.get(name, flops), flops)
    assert n == space.size
    assert flops_extremes(space.spec) == {name: (low[name], high[name]) for name in low}


@pytest.mark.parametrize("name", ["rankitect_hand", "dhen", "rankitect"])
def test_choice_hover_agrees_with_the_flop_counter_and_the_plan(name):
    """What the hover says of each choice: its baseline FLOPs as FlopCounterMode measures the exported subnet,
    and its input's shape as the subnet plan lays it out."""
    space = load_space(space_path(name))
    plan = space.plan(space.baseline)
    measured = measured_parts(space, space.baseline)
    d = space.spec.embed_dim
    text = Path(space_path(name)).read_text()
    analysis = analyse(text, name)
    spans = list(space.spec.spans.values())
    hovered = 0
    for cp in plan.choices:
        span = space.spec.spans[cp.name]
        if spans.count(span) == 1:  # a range's choices share its first name's position: ask for them by name
            shown = hover(analysis, analysis.space, span.line, span.column).markdown
            hovered += 1
        else:
            shown = choice_text(space, cp.name)
        assert f"baseline {measured.get(choice_part(cp.name), 0):,} ·" in shown, (cp.name, shown)
        port = cp.port
        shape = " and ".join(
            ([f"B×{port.width2d}"] if port.width2d else []) + ([f"B×{port.rows3d}×{d}"] if port.rows3d else [])
        )
        assert f"; {shape} in baseline" in shown, (cp.name, shown)
    assert hovered or name == "rankitect_hand"  # its choices are all ranges


def test_a_second_row_block_is_refused_where_it_is_named():
    source = MIXED.replace("blocks attention, linear", "blocks attention, embed_fc, linear")
    (diag,) = analyse(source, "m.rks").diagnostics
    line = source.splitlines()[diag.span.line - 1]
    assert line[diag.span.column - 1 :].startswith("embed_fc") and "both emit rows" in diag.message


@pytest.mark.parametrize("path", fuzzed(SHIPPED))
def test_analysis_hover_and_completion_never_raise_on_seeded_edits(path):
    text = path.read_text()
    rng = random.Random(path.stem + "-in-process")
    good = analyse(text, path.name)
    clean = 0
    for edited in mutations(text, rng, 60):
        analysis = analyse(edited, path.name)
        lines = edited.splitlines() or [""]
        for d in analysis.diagnostics:
            assert d.message and (d.span is None or 1 <= d.span.line <= len(lines) + 1), (d, edited)
        if not analysis.diagnostics:  # an edit that still checks: the analysis holds the space the loader makes
            clean += 1
            assert analysis.space.size == load_source(edited, path.name).size, edited
        for _ in range(3):
            line = rng.randrange(len(lines)) + 1
            column = rng.randrange(len(lines[line - 1]) + 1) + 1
            shown = hover(analysis, analysis.space or good.space, line, column)
            assert shown is None or shown.markdown.strip(), (line, column, edited)
            before = "\n".join(lines[: line - 1] + [lines[line - 1][: column - 1]])
            labels = [item.label for item in complete(before, analysis.index or good.index)]
            assert all(isinstance(label, str) and label.strip() for label in labels), labels
    assert clean < 60  # the edits did break the text


def test_the_grammar_and_the_lexer_know_every_block_and_keyword():
    grammar = json.loads((VSCODE / "syntaxes" / "rks.tmLanguage.json").read_text())
    blocks = grammar["repository"]["block"]["match"]
    assert blocks == r"\b(" + "|".join(BLOCK_NAMES) + r")\b"
    words = set(grammar["repository"]["keyword"]["match"][3:-3].split("|"))
    words |= set(grammar["repository"]["declaration"]["match"][3:].split(")")[0].split("|"))
    keywords = {t.pattern.value for t in _lark_keywords()}
    assert keywords - {"dense", "embed"} <= words, keywords - words
    package = json.loads((VSCODE / "package.json").read_text())
    assert package["contributes"]["languages"][0]["extensions"] == [".rks"]
    assert package["contributes"]["grammars"][0]["path"] == "./syntaxes/rks.tmLanguage.json"


def _lark_keywords():
    from rankitect_dsl.lang.parser import _parser

    return [t for t in _parser().terminals if t.pattern.type == "str" and t.pattern.value.isalpha()]


EXPECTED_SCOPES = {  # lark token type -> the TextMate scope of its text
    "NUMBER": "constant.numeric.rks",
    "COMMENT": "comment.line.number-sign.rks",
}


def _expected_scope(tok) -> str | None:
    if tok.type in EXPECTED_SCOPES:
        return EXPECTED_SCOPES[tok.type]
    if tok.type in ("DENSE", "EMBED"):
        return "storage.type.rks"
    if tok.type in ("SPACE", "INPUT", "CHOICE", "LAYER", "BASELINE"):
        return "keyword.declaration.rks"
    if tok.type.isupper() and str(tok).isalpha() and tok.type == str(tok).upper():
        return "keyword.other.rks"
    if tok.type == "NAME" and str(tok) in REGISTRY:
        return "support.function.block.rks"
    return None


def test_textmate_grammar_tokenises_every_shipped_space():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node is not on this machine: the TextMate grammar runs on vscode-textmate")
    if not (VSCODE / "node_modules" / "vscode-textmate").exists():
        pytest.skip("vscode-textmate is not installed: run `npm ci` in editors/vscode (.ci/run does)")
    files = [str(p) for p in SHIPPED]
    out = subprocess.run([node, str(VSCODE / "test" / "tokenize.js"), *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    tokens = json.loads(out.stdout)
    for path in files:
        scopes = {(line, col): (text, scope) for line, col, text, scope in tokens[path]}
        assert not [t for t in tokens[path] if t[3] in ("source.rks", "invalid.illegal.rks")], path
        source = Path(path).read_text()
        lexed = list(syntax_tree(source, keep_all_tokens=True).scan_values(lambda v: v is not None))
        comments = [(k + 1, line.index("#")) for k, line in enumerate(source.splitlines()) if "#" in line]
        for line, col in comments:
            assert scopes[(line, col)][1] == "comment.line.number-sign.rks", (path, line)
        checked = 0
        for tok in lexed:
            want = _expected_scope(tok)
            if want is not None:
                assert scopes[(tok.line, tok.column - 1)] == (str(tok), want), (path, tok.line, str(tok))
                checked += 1
        assert checked > 20, path


def test_pygments_finds_the_lexer_for_rks_files():
    pytest.importorskip("pygments")
    from pygments.lexers import get_lexer_for_filename
    from pygments.token import Comment, Keyword, Name, Number

    lexer = get_lexer_for_filename("space.rks")
    tokens = [(t, v) for t, v in lexer.get_tokens("choice c1 { blocks linear  dim linear 16 }  # a comment\n")]
    assert (Keyword, "choice") in tokens and (Name.Class, "c1") in tokens
    assert (Name.Builtin, "linear") in tokens and (Number, "16") in tokens
    assert (Comment.Single, "# a comment") in tokens


def test_the_server_never_imports_torch():
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import rankitect_dsl.lsp.server\n"
        "from rankitect_dsl.lsp.document import analyse\n"
        "from rankitect_dsl.lsp.hover import hover\n"
        f"text = Path({space_path('rankitect_hand')!r}).read_text()\n"
        "a = analyse(text, 'x.rks')\n"
        "for name, span in a.space.spec.spans.items():\n"
        "    hover(a, a.space, span.line, span.column)\n"
        "assert 'torch' not in sys.modules and 'sympy' not in sys.modules\n"
    )
    pytest.importorskip("pygls")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "typed, expected, absent",
    [
        ("", {"space", "input", "choice", "layer"}, {"blocks", "linear"}),
        ("choice z { blocks ", {"all", "linear", "attention"}, {"dense", "from"}),
        ("choice z { blocks linear  dim ", {"linear", "embed_fc"}, {"gating", "sum"}),
        ("layer h { modules ", {"attention", "embed_fc"}, {"linear", "gating"}),
        ("layer h { modules conv ", {"layers", "from"}, {"blocks", "pair"}),
        ("choice z { blocks linear } ", {"choice", "output"}, {"blocks"}),
        ("norm ", {"layer", "none"}, {"choice"}),
        ("output from ", {"top4", "dense"}, {"choice"}),
        ("baseline b { top1 = ", {"linear", "layer"}, {"top1"}),
        ("baseline b { top1 = linear(", {"bottom2", "sparse"}, {"linear"}),
        ("baseline b { top1 = linear(bottom2) dim 128 ", {"top1", "gate1"}, {"dense", "linear"}),
        ("choice z { blocks linear from bottom1, ", {"bottom2", "sparse"}, {"z", "linear"}),
    ],
)
def test_completion_follows_the_statement_being_typed(typed, expected, absent):
    index = analyse(Path(space_path("dlrm")).read_text(), "dlrm.rks").index
    labels = {item.label for item in complete(typed, index)}
    assert expected <= labels and not (absent & labels), labels
