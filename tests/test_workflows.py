"""The engineer's loop around a search: scale a model (and its space), write a space back, draw it."""

import json
import re
import shutil

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_rks, space_path
from rankitect_dsl import Arch, load_source, load_space
from rankitect_dsl.core.names import choice_part
from rankitect_dsl.core.scale import extended_spec, scale_arch
from rankitect_dsl.core.spec import spec_to_dict
from rankitect_dsl.lang.writer import spec_source
from test_supernet import SHIPPED, random_weights, three_paths

RANKITECT = load_space(space_path("rankitect"))
HAS_DOT = shutil.which("dot") is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_written_space_lowers_to_the_same_space(name):
    space = load_space(space_path(name))
    again = load_source(spec_source(space.spec, ["written back"]), "again.rks")
    expected, got = spec_to_dict(space.spec), spec_to_dict(again.spec)
    assert got == expected


def scaled_in_extended_space(space, arch, factors, bottleneck=1.0):
    scaled, outside, new_bn = scale_arch(space.spec, arch, factors, bottleneck)
    ext = load_source(spec_source(extended_spec(space.spec, outside, new_bn), []), "ext.rks")
    ext.validate(scaled)
    return scaled, outside, ext


def test_paper_recipe_embed_fc_times_three():
    base = RANKITECT.baseline
    scaled, outside, ext = scaled_in_extended_space(RANKITECT, base, {"embed_fc": 3.0})
    for name, ca in base.choices.items():
        expected = {b: 3 * d if b == "embed_fc" else d for b, d in ca.dims.items()}
        assert scaled.choices[name].dims == expected
    assert {o.path for o in outside} == {
        f"choices.{n}.dims.embed_fc" for n, ca in base.choices.items() if "embed_fc" in ca.dims
    }
    assert ext.flops(scaled) > RANKITECT.flops(base)


def test_paper_recipe_dims_and_bottleneck():
    base = RANKITECT.baseline
    scaled, outside, ext = scaled_in_extended_space(
        RANKITECT, base, {b: 1.5 for b in ("linear", "embed_fc", "dot_compressed")}, bottleneck=2.0
    )
    assert ext.spec.bottleneck == 2 * RANKITECT.spec.bottleneck
    assert scaled.choices["top4"].dims == {"linear": 192} and scaled.choices["compress"].dims == {"embed_fc": 12}
    assert any(o.path == "bottleneck" for o in outside)
    model = ext.subnet(scaled).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*ext.example_inputs(1))
    assert counter.get_total_flops() == ext.flops(scaled)
    assert sum(p.numel() for p in model.parameters()) == ext.params(scaled)


@pytest.mark.parametrize("recipe", [({"embed_fc": 3.0}, 1.0), ({"linear": 1.5, "dot_compressed": 1.5}, 2.0)])
def test_scaled_and_merged_archs_match_the_supernet_mask_path(recipe):
    factors, bottleneck = recipe
    merged = RANKITECT.merge(RANKITECT.sample_many(3, seed=4) + [RANKITECT.baseline])
    for arch in (RANKITECT.baseline, merged):
        scaled, _, ext = scaled_in_extended_space(RANKITECT, arch, factors, bottleneck)
        net = random_weights(ext.supernet().double().eval(), seed=3)
        masked, hard, exported = three_paths(ext, net, scaled)
        assert (masked - exported).abs().max() < 1e-9 and (hard - exported).abs().max() < 1e-9


def test_cli_scale_refuses_values_outside_the_space_and_writes_nothing(tmp_path):
    out = tmp_path / "scaled.json"
    proc = run_rks("scale", space_path("dlrm"), "--baseline", "--embed-fc", "3", "-o", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "choices.compress.dims.embed_fc: 24 is not offered (options 8)" in proc.stderr and "--extend" in proc.stderr
    assert not out.exists()
    nothing = run_rks("scale", space_path("dlrm"), "--baseline", "-o", out)
    assert nothing.returncode == 1 and "nothing to scale" in nothing.stderr
    bad = run_rks("scale", space_path("dlrm"), "--baseline", "--dims", "-2", "-o", out)
    assert bad.returncode == 2 and "must be positive" in bad.stderr


def test_cli_scale_extend_then_flops_in_the_extended_space(tmp_path):
    base = tmp_path / "base.json"
    base.write_text(load_space(space_path("dlrm")).baseline.to_json())
    ext, out = tmp_path / "ext.rks", tmp_path / "scaled.json"
    proc = run_rks("scale", space_path("dlrm"), base, "--dims", "1.5", "--bottleneck", "2", "--extend", ext, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert run_rks("fmt", "--check", ext).returncode == 0
    flops = json.loads(run_rks("flops", ext, out, "--json").stdout)["flops"]
    dlrm = load_space(space_path("dlrm"))
    assert flops > dlrm.flops(dlrm.baseline)
    assert Arch.from_json(out.read_text()).choices["bottom1"].dims == {"linear": 192}


def test_space_graph_names_every_choice_its_dims_and_all_on_flops():
    from rankitect_dsl.compiler.dot import space_dot

    space = load_space(space_path("tiny"))
    dot = space_dot(space)
    all_on = space.cost_breakdown(space.all_on())
    for c in space.spec.choices:
        assert f'"{c.name}" [' in dot and f"all-on {all_on[choice_part(c.name)]['flops']:,} FLOPs" in dot
        for x in c.candidates:
            assert f'"{x}" -> "{c.name}"' in dot
    assert "linear 4..8 (2)" in dot  # c1 offers linear 4, 8


def test_subnet_graph_draws_only_what_reaches_the_output():
    from rankitect_dsl.compiler.dot import arch_dot

    arch = RANKITECT.sample(7)
    dot = arch_dot(RANKITECT, arch)
    active = set(RANKITECT.active_choices(arch))
    drawn = set(re.findall(r'^  "(\w+)" \[shape=box, style="rounded', dot, re.M))
    assert drawn == active
    assert f"{RANKITECT.flops(arch):,} FLOPs" in dot


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` is not installed (apt install graphviz)")
def test_cli_graph_renders_svg_and_png(tmp_path):
    svg, png = tmp_path / "s.svg", tmp_path / "a.png"
    assert run_rks("graph", space_path("tiny"), "--format", "svg", "-o", svg).returncode == 0
    assert "<svg" in svg.read_text()[:1000]
    arch = tmp_path / "a.json"
    arch.write_text(RANKITECT.sample(1).to_json())
    assert run_rks("graph", space_path("rankitect"), "--arch", arch, "-o", png).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_graph_without_graphviz_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    out = tmp_path / "s.svg"
    from rankitect_dsl.cli import main

    assert main(["graph", space_path("tiny"), "--format", "svg", "-o", str(out)]) == 1
    assert not out.exists()
