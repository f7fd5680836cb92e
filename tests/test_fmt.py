"""`rks fmt`: idempotent, comment-keeping, and the formatted file lowers to the same space."""

import re
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, run_rks
from rankitect_dsl import RksError, load_source
from rankitect_dsl.core.spec import spec_to_dict
from rankitect_dsl.lang.formatter import format_source

SHIPPED = sorted((ROOT / "spaces").glob("*.rks"))
DIM_BLOCKS = ("linear", "embed_fc", "dot_compressed")
ALL_BLOCKS = ("linear", "gating", "sum", "dot_compressed", "embed_fc")


def same_space(a: str, b: str) -> None:
    sa, sb = load_source(a), load_source(b)
    assert spec_to_dict(sa.spec) == spec_to_dict(sb.spec)
    assert nx.utils.graphs_equal(sa.graph, sb.graph)
    assert sa.size == sb.size


def comments(text: str) -> list[str]:
    return [c.rstrip() for c in re.findall(r"#[^\n]*", text)]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_spaces_are_formatted(path):
    source = path.read_text()
    assert format_source(source, str(path)) == source, f"run `rks fmt {path}`"


@st.composite
def statements(draw):
    """A random valid space as a list of statements, each a list of tokens (comments as `# …`)."""
    n_dense, n_embed, d = draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    items = [["space", "gen"], ["input", "x", ":", "dense", "[", str(n_dense), "]"]]
    items.append(["input", "e", ":", "embed", "[", str(n_embed), ",", str(d), "]"])
    if draw(st.booleans()):
        items.append(["keep", draw(st.sampled_from(["0.5", "0.8", "1"]))])
    if draw(st.booleans()):
        items.append(["bottleneck", str(draw(st.integers(1, 16)))])
    if draw(st.booleans()):
        items.append(["dim", "linear", "scale", "8", "by", "0.5", "..", "1.25", "steps", "4"])
    names = []
    for k in range(draw(st.integers(1, 5))):
        name = f"c{k}"
        blocks = draw(st.lists(st.sampled_from(ALL_BLOCKS), min_size=1, max_size=5, unique=True))
        body = [["blocks", *_commas(blocks)]]
        raw = draw(st.lists(st.sampled_from(["x", "e"]), min_size=1, max_size=2, unique=True))
        body.append(["from", *_commas(raw)])
        if names and draw(st.booleans()):
            dists = draw(st.lists(st.integers(1, len(names)), min_size=1, max_size=3, unique=True))
            body.append(["from", "distance", *_commas([str(x) for x in sorted(dists)])])
        for b in blocks:
            if b in DIM_BLOCKS:
                opts = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
                body.append(["dim", b, *_commas([str(o) for o in sorted(opts)])])
        items.append(["choice", name, "{", *[t for s in body for t in s], "}"])
        names.append(name)
    items.append(["output", "from", names[-1]])
    return items


def _commas(values):
    out = []
    for v in values:
        out += [v, ","]
    return out[:-1]


@st.composite
def messy_sources(draw):
    """A random space written with random spacing, line breaks, blank lines and comments."""
    items = draw(statements())
    out = []
    n = 0
    for item in items:
        for tok in item:
            sep = draw(st.sampled_from([" ", " ", "  ", "\n", "\n\n   ", "\t", "  # note\n"]))
            if "#" in sep:
                n += 1
                sep = sep.replace("note", f"note {n}")
            out.append(tok + sep)
        out.append(draw(st.sampled_from(["\n", "\n\n", "\n\n\n", "  # end of item\n", "\n# own line\n"])))
    return "".join(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messy_sources())
def test_fmt_is_idempotent_keeps_comments_and_the_space(source):
    once = format_source(source)
    assert format_source(once) == once
    assert comments(once) == comments(source)
    same_space(source, once)
    for line in once.splitlines():
        assert line == line.rstrip() and "\t" not in line
    assert "\n\n\n" not in once and once.endswith("\n") and not once.endswith("\n\n")


def test_layout_rules():
    source = (
        "# head\nspace s\ninput dense:dense[3]\ninput longer_name : embed[2,4]\n\n\n"
        "choice a{blocks linear from dense dim linear 4}\nchoice bb {blocks linear from a dim linear 4}  # short\n"
        "choice c {\n blocks linear,sum # two\n   from distance 1,2\n  dim linear 2,4\n}\n"
        "output from c\nbaseline b {\na = linear(dense) dim 4\nbb=linear(a) dim 4\n c = sum(a, bb)\n}\n"
    )
    assert format_source(source) == (
        "# head\nspace s\ninput dense       : dense[3]\ninput longer_name : embed[2, 4]\n\n"
        "choice a  { blocks linear from dense dim linear 4 }\n"
        "choice bb { blocks linear from a dim linear 4 }  # short\n"
        "choice c {\n  blocks linear, sum  # two\n  from distance 1, 2\n  dim linear 2, 4\n}\n"
        "output from c\nbaseline b {\n  a  = linear(dense) dim 4\n  bb = linear(a) dim 4\n  c  = sum(a, bb)\n}\n"
    )


def test_fmt_refuses_a_syntax_error_with_its_position():
    with pytest.raises(RksError, match=r"x\.rks:2:9: error: unexpected `dense`"):
        format_source("space s\ninput x dense[3]\n", "x.rks")


def test_cli_fmt_rewrites_checks_and_leaves_bad_files_alone(tmp_path):
    messy = tmp_path / "messy.rks"
    source = (ROOT / "spaces" / "tiny.rks").read_text().replace("\n", "\n\n   ")
    messy.write_text(source)
    check = run_rks("fmt", "--check", messy)
    assert check.returncode == 1 and "messy.rks" in check.stderr
    assert messy.read_text() == source
    assert run_rks("fmt", messy).returncode == 0
    assert run_rks("fmt", "--check", messy).returncode == 0
    same_space(source, messy.read_text())
    bad = tmp_path / "bad.rks"
    bad.write_text("space s\nchoice {\n")
    r = run_rks("fmt", bad)
    assert r.returncode == 1 and "bad.rks:2:8" in r.stderr and "Traceback" not in r.stderr
    assert bad.read_text() == "space s\nchoice {\n"
    assert not list(Path(tmp_path).glob(".*.tmp"))
