"""`norm layer | none`: a space says what follows every block before its ReLU, and every stage agrees.

With `norm none` the blocks own no LayerNorm parameters: the supernet's three paths still agree, the
cost model's params drop by exactly the LayerNorm weights, the export holds no LayerNorm and runs under
`torch.export`, and a one-choice subnet is the hand-written `relu(W x + b)`.
"""

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import test_supernet as paths
from conftest import run_rks, space_path
from rankitect_dsl import RksError, load_source
from rankitect_dsl.core.spec import spec_from_dict, spec_to_dict
from rankitect_dsl.lang.formatter import format_source


def without_norm(name: str) -> str:
    source = open(space_path(name)).read()
    head, sep, rest = source.partition("\nbottleneck ")
    line, nl, tail = rest.partition("\n")
    assert sep, f"{name}.rks has no bottleneck line to put `norm none` after"
    return head + sep + line + "\nnorm none" + nl + tail


@pytest.fixture(scope="module")
def pair():
    """rankitect_hand (all five blocks in every choice) with and without LayerNorm."""
    return load_source(open(space_path("rankitect_hand")).read()), load_source(without_norm("rankitect_hand"))


def test_the_setting_is_read_and_survives_a_round_trip(pair):
    layer, none = pair
    assert (layer.spec.norm, none.spec.norm) == ("layer", "none")
    assert spec_from_dict(spec_to_dict(none.spec)).norm == "none"
    assert "\nnorm none\n" in format_source(without_norm("rankitect_hand"))


@pytest.mark.parametrize(
    "bad, fragment", [("norm batch", "unknown norm `batch`"), ("norm none\nnorm layer", "duplicate")]
)
def test_a_bad_norm_is_refused_at_its_position(bad, fragment):
    source = without_norm("tiny").replace("norm none", bad)
    with pytest.raises(RksError) as info:
        load_source(source, "bad.rks")
    d = info.value.diagnostics[0]
    line = next(
        k
        for k, text in enumerate(source.splitlines(), 1)
        if text.startswith("norm ") and k > 1 and (fragment != "duplicate" or text == "norm layer")
    )
    assert fragment in d.message and d.span.line == line, (d.message, d.span)


def test_three_paths_agree_without_norm(pair):
    space = pair[1]
    net = paths.random_weights(space.supernet().double().eval(), seed=3)
    rng = random.Random(3)
    archs = [space.sample(seed) for seed in range(20)] + [paths.merged_arch(space, rng) for _ in range(4)]
    archs.append(paths.merged_arch(space, rng, everything=True))
    gaps = [relative_gap(space, net, arch, seed=k) for k, arch in enumerate(archs)]
    assert max(gaps) < 1e-9, gaps


def relative_gap(space, net, arch, **kw) -> float:
    """The paths' largest gap over the exported logits' scale: without LayerNorm, weights moved away from
    their init let activations grow through stacked dot products, so an absolute 1e-9 means nothing there."""
    masked, hard, exported = paths.three_paths(space, net, arch, **kw)
    scale = max(1.0, exported.abs().max().item())
    return max((masked - exported).abs().max().item(), (hard - exported).abs().max().item()) / scale


def test_costs_are_exact_and_only_the_norm_weights_go(pair):
    layer, none = pair
    for seed in range(8):
        arch = none.sample(seed)
        sub = none.subnet(arch)
        assert not any(isinstance(m, nn.LayerNorm) for m in sub.modules())
        dense, sparse = none.example_inputs(4)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(dense, sparse)
        assert counter.get_total_flops() // 4 == none.flops(arch) == layer.flops(arch)
        assert sum(p.numel() for p in sub.parameters()) == none.params(arch)
        with_norm = layer.subnet(arch)
        ln = sum(p.numel() for m in with_norm.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters())
        assert ln > 0 and layer.params(arch) - none.params(arch) == ln


def test_expected_cost_drops_the_norm_weights(pair):
    """DNAS's differentiable cost: at a one-hot it is the arch's params, with or without LayerNorm."""
    layer, none = pair
    arch = none.sample(5)
    one_hot = [
        torch.nn.functional.one_hot(torch.tensor(k), d.size).double() for k, d in zip(none.encode(arch), none.decisions)
    ]
    assert none.expected_params(one_hot).item() == none.params(arch) < layer.expected_params(one_hot).item()
    assert none.expected_flops(one_hot).item() == none.flops(arch) == layer.expected_flops(one_hot).item()


def test_export_has_no_layer_norm_and_runs_under_torch_export(tmp_path):
    (tmp_path / "nn.rks").write_text(without_norm("rankitect_hand"))
    proc = run_rks("export", tmp_path / "nn.rks", "--baseline", "-o", tmp_path / "nn.py")
    assert proc.returncode == 0, proc.stderr
    source = (tmp_path / "nn.py").read_text()
    assert "LayerNorm" not in source and "layer_norm" not in source
    namespace = {}
    exec(compile(source, "nn.py", "exec"), namespace)
    model = namespace["RankitectHandSubnet"]().eval()
    space = load_source(without_norm("rankitect_hand"))
    dense, sparse = space.example_inputs(3)
    program = torch.export.export(model, (dense, sparse))
    assert torch.allclose(program.module()(dense, sparse), model(dense, sparse))


def test_one_linear_choice_is_relu_of_an_affine_map():
    space = load_source(
        "space one\ninput dense : dense[3]\ninput sparse : embed[2, 4]\nnorm none\n"
        "choice a { blocks linear from dense, sparse fixed inputs dim linear 5 }\noutput from a\n"
        "baseline b { a = linear(dense, sparse) dim 5 }\n"
    )
    sub = space.subnet(space.baseline).double()
    dense, sparse = (x.double() for x in space.example_inputs(6, seed=1))
    weights = dict(sub.named_parameters())
    w = {k: v for k, v in weights.items() if v.dim() == 2 and v.shape == (5, 11)}
    (name,) = w
    bias = weights[name.replace("weight", "bias")]
    (head_w,) = [v for v in weights.values() if v.shape == (1, 5)]
    (head_b,) = [v for k, v in weights.items() if v.shape == (1,)]
    x = torch.cat([dense, sparse.flatten(1)], 1)
    hand = torch.relu(x @ w[name].T + bias) @ head_w.T + head_b
    assert len(weights) == 4
    assert torch.allclose(sub(dense, sparse).reshape(-1), hand.reshape(-1), atol=1e-12)


def test_grow_keeps_or_sets_the_norm(tmp_path):
    out = tmp_path / "g.rks"
    proc = run_rks("grow", space_path("dlrm"), "-o", out, "--norm", "none", "--blocks-only")
    assert proc.returncode == 0, proc.stderr
    assert "\nnorm none\n" in out.read_text() and "--norm none" in out.read_text()
    assert load_source(out.read_text()).spec.norm == "none"
