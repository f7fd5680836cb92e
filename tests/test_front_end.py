"""The language, the checker, the DAG, the arch model and the exact space size."""

import itertools
import json
import math
import re

import networkx as nx
import pytest

from conftest import ROOT, SPACES, run_rks, space_path
from rankitect_dsl import Arch, ArchError, RksError, load_source, load_space
from rankitect_dsl.cli import main as cli_main

MALFORMED = sorted((ROOT / "tests" / "malformed").glob("*.rks"))


def brute_force_count(space) -> int:
    """Distinct archs reachable by decoding every flat vector: independent of the size formula."""
    seen = set()
    for vec in itertools.product(*[range(d.size) for d in space.decisions]):
        try:
            seen.add(space.decode(list(vec)).to_json())
        except ArchError:
            pass
    return len(seen)


SMALL_A = """
space small_a
input dense : dense[3]
input sparse : embed[2, 2]
choice a1 { blocks linear, sum  from dense, sparse  dim linear 2, 3, 4 }
choice a2 { blocks gating, dot_compressed  from distance 1  from dense  dim dot_compressed 1, 2 }
output from a2
"""

SMALL_B = """
space small_b
input x : dense[2]
input e : embed[2, 3]
keep 0.5
choice b1 .. b3 { blocks embed_fc, linear  from distance 1, 2  from e  dim embed_fc 1, 2  dim linear 5 }
output from b3
"""


def test_malformed_corpus_is_large_enough():
    assert len(MALFORMED) >= 40


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_file_reports_position_and_names_the_mistake(path, capsys):
    header = path.read_text().splitlines()[0]
    m = re.match(r"# expect (\d+):(\d+) (.*)", header)
    line, col, fragment = int(m[1]) + 1, int(m[2]), m[3].strip()
    assert cli_main(["check", str(path)]) == 1
    stderr = capsys.readouterr().err
    first = stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{col}: error: "), first
    assert fragment in first, first
    # the source line and a caret under the column follow the message
    lines = stderr.splitlines()
    assert lines[2].index("^") - 4 == col - 1


def test_all_errors_of_a_file_are_reported():
    source = (ROOT / "tests" / "malformed" / "unknown_block.rks").read_text().replace("from dense", "from densse")
    with pytest.raises(RksError) as info:
        load_source(source, "two.rks")
    messages = [d.message for d in info.value.diagnostics]
    assert any("gatting" in m for m in messages) and any("densse" in m for m in messages)


def test_did_you_mean_hint():
    proc = run_rks("check", ROOT / "tests" / "malformed" / "unknown_input_name.rks")
    assert "did you mean `sparse`?" in proc.stderr


def test_missing_file_is_a_clean_error():
    proc = run_rks("check", "no/such/file.rks")
    assert proc.returncode == 1 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_shipped_spaces_check():
    proc = run_rks("check", *[space_path(n) for n in SPACES])
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == len(SPACES)


@pytest.mark.parametrize("source", [SMALL_A, SMALL_B])
def test_size_of_small_spaces_equals_brute_force(source):
    space = load_source(source)
    assert space.size == brute_force_count(space)


def test_size_of_tiny_equals_brute_force(spaces):
    assert spaces["tiny"].size == brute_force_count(spaces["tiny"]) == 900


def test_size_formula_by_hand():
    # a1: linear 3 conns × 3 dims + sum 2² pairs = 13; a2 (candidates a1, dense): gating 4 + dot 3 × 2 = 10
    assert load_source(SMALL_A).size == 13 * 10


def test_hand_grown_rankitect_is_huge_and_log10_is_exact(spaces):
    s = spaces["rankitect_hand"]
    assert s.size > 10**40
    assert math.isclose(s.log10_size, math.log10(s.size), rel_tol=1e-12)
    assert len(s.spec.choices) >= 24


def test_distances_before_the_first_choice_are_dropped(spaces):
    s = spaces["rankitect_hand"].spec
    assert s.choice_by_name["r1"].candidates == ("dense", "sparse")
    assert s.choice_by_name["r4"].candidates == ("r3", "r2", "r1", "dense", "sparse")
    assert s.choice_by_name["r24"].candidates[:5] == ("r23", "r22", "r21", "r18", "r15")


def test_dim_scale_gives_seven_options(spaces):
    c = spaces["rankitect_hand"].spec.choice_by_name["r5"]
    assert c.dims["linear"] == (64, 80, 96, 112, 128, 144, 160)
    assert spaces["dhen_dims"].spec.choice_by_name["mlp1"].dims["linear"] == tuple(range(64, 193, 16))


def test_graph_nodes_edges_and_shapes(spaces):
    g = spaces["tiny"].graph
    assert isinstance(g, nx.DiGraph) and nx.is_directed_acyclic_graph(g)
    assert g.nodes["c1"]["kind"] == "choice" and g.nodes["c1"]["blocks"] == ("linear", "gating")
    assert g.edges["c1", "c2"]["distance"] == 1 and g.edges["c1", "c3"]["distance"] == 2
    assert g.edges["sparse", "c2"]["distance"] is None
    # c1 at maximal dims: linear 8 wide; gating's output is its right input's flat width (sparse 3×4 = 12)
    assert g.nodes["c1"]["width2d"] == 12
    # c2 stacks c1 (one 2D row) and sparse (3 rows): 4 rows × dim 2 = 8 for dot_compressed
    assert g.nodes["c2"]["block_out"]["dot_compressed"] == 8
    assert g.nodes["output"]["sources"] == ("c3",)


@pytest.mark.parametrize("name", SPACES)
def test_thousand_samples_validate_and_round_trip(spaces, name):
    space = spaces[name]
    for arch in space.sample_many(1000, seed=7):
        space.validate(arch)
        assert Arch.from_json(arch.to_json()) == arch
        vec = space.encode(arch)
        assert len(vec) == len(space.decisions)
        assert space.decode(vec) == arch


def test_sampler_follows_keep_probability():
    space = load_source(SMALL_B)
    archs = space.sample_many(4000, seed=1)
    on = [len(a.choices["b3"].inputs) for a in archs if a.choices["b3"].blocks != ("x",)]
    # b3 has 3 candidates; with p = 0.5 and at least one on, E[#on] = 1.5 / (1 - 0.125)
    assert abs(sum(on) / len(on) - 1.5 / 0.875) < 0.05


def test_baselines_validate(spaces):
    for name in SPACES:
        if spaces[name].baseline is not None:
            spaces[name].validate(spaces[name].baseline)
    assert spaces["dlrm"].size == 1 and spaces["dlrm"].decode([]) == spaces["dlrm"].baseline


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["choices"]["c2"].update(inputs=["c3"]), "choices.c2.inputs: `c3` is not among the candidates"),
        (lambda d: d["choices"]["c1"]["dims"].update(linear=5), "choices.c1.dims.linear: dim 5 is not offered"),
        (lambda d: d["choices"].pop("c3"), "missing choice `c3`"),
        (
            lambda d: d["choices"].update(c1={"blocks": ["gating"], "inputs": ["dense", "sparse"]}),
            "not a multi-hot `inputs` list",
        ),
        (lambda d: d["choices"]["c1"].update(blocks=["sum"]), "choices.c1.blocks: block `sum` is not offered"),
        (lambda d: d.update(space="other"), "not `tiny`"),
    ],
)
def test_validate_names_the_failing_path(spaces, mutate, message):
    data = spaces["tiny"].baseline.to_dict()
    data = json.loads(json.dumps(data))
    mutate(data)
    with pytest.raises(ArchError) as info:
        spaces["tiny"].validate(Arch.from_dict(data))
    assert message in str(info.value)


def test_decode_rejects_all_connections_off(spaces):
    space = spaces["tiny"]
    vec = space.encode(space.baseline)
    for i, d in enumerate(space.decisions):
        if d.choice == "c1" and d.kind == "input":
            vec[i] = 0
    with pytest.raises(ArchError, match="at least one must be on"):
        space.decode(vec)


def test_cli_stats_json_and_sample(tmp_path):
    proc = run_rks("stats", space_path("rankitect"), "--json")
    info = json.loads(proc.stdout)
    assert int(info["size"]) == load_space(space_path("rankitect")).size
    # dlrm.rks's 12 choices plus a copy of each of its 3 embed_fc/dot_compressed choices; its 9 other choices
    # get the {linear, gating, sum} group
    assert info["choices"] == 15 and info["blocks"]["gating"] == 9 and info["blocks"]["embed_fc"] == 6
    proc = run_rks("sample", space_path("tiny"), "--seed", "3", "-n", "4")
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4 and len(set(lines)) > 1
    space = load_space(space_path("tiny"))
    for line in lines:
        space.validate(Arch.from_json(line))


def test_cli_graph_writes_dot(tmp_path):
    out = tmp_path / "g.dot"
    proc = run_rks("graph", space_path("tiny"), "-o", out)
    assert proc.returncode == 0
    text = out.read_text()
    assert text.startswith('digraph "tiny"') and '"c1" -> "c2" [label="1"]' in text and "gating" in text


def test_cli_wrong_flag_is_clean():
    proc = run_rks("stats", space_path("tiny"), "--no-such-flag")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
