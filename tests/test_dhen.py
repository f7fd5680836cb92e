"""The DHEN backbone (paper 4.3): its modules against hand-written PyTorch, the layer construct's lowering
and refusals, and the cost model's exact expectation where a module's cost is quadratic in its rows."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_rks, space_path
from rankitect_dsl import RksError, load_source, load_space
from rankitect_dsl.core.blocks import PAPER_BLOCKS, REGISTRY

D = 4


def one_module_space(module: str, dims: str = "3", extra: str = "") -> str:
    return f"""
space one_{module}
input dense : dense[5]
input sparse : embed[6, {D}]
kernel 3
rank 2
ffn 6
{extra}
layer net {{
  layers 1
  modules {module}
  from dense, sparse
  dim {module} {dims}
}}
output from net
"""


def exported(module: str):
    space = load_source(one_module_space(module))
    arch = space.sample(0)
    sub = space.subnet(arch).double().eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in sub.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    x = torch.randn(3, 7, D, generator=gen, dtype=torch.double)  # the 7 stacked rows: dense's, then 6
    return getattr(sub, f"net1_{module}"), x


def compressed(m, x):
    return torch.einsum("lr,brd->bld", m.compress.weight, x) + m.compress.bias[:, None]


def finish(m, y):
    return torch.relu(nn.functional.layer_norm(y, (D,), m.norm.weight, m.norm.bias))


def test_attention_module_is_a_transformer_encoder_layer_over_the_compressed_rows():
    m, x = exported("attention")
    ref = nn.TransformerEncoderLayer(D, 1, dim_feedforward=6, dropout=0.0, batch_first=True).double().eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(torch.cat([m.query.weight, m.key.weight, m.value.weight]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([m.query.bias, m.key.bias, m.value.bias]))
        ref.self_attn.out_proj.weight.copy_(m.out.weight)
        ref.self_attn.out_proj.bias.copy_(m.out.bias)
        for mine, theirs in ((m.ff1, ref.linear1), (m.ff2, ref.linear2), (m.norm1, ref.norm1), (m.norm2, ref.norm2)):
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
        h = compressed(m, x)
        expected = finish(m, ref(h) + h)
        assert torch.allclose(m(x), expected, atol=1e-12)


def test_conv_module_is_a_same_padded_convolution_of_the_compressed_rows():
    m, x = exported("conv")
    with torch.no_grad():
        h = compressed(m, x)
        k = m.conv.weight[0, 0]
        padded = nn.functional.pad(h, (1, 1, 1, 1))
        conv = sum(k[a, b] * padded[:, a : a + h.shape[1], b : b + D] for a in range(3) for b in range(3))
        expected = finish(m, conv + m.conv.bias + h)
        assert torch.allclose(m(x), expected, atol=1e-12)


def test_cross_module_is_dcn_v2_low_rank_cross_on_the_flattened_rows():
    m, x = exported("cross")
    with torch.no_grad():
        h = compressed(m, x)
        z = h.reshape(3, -1)
        u, v = m.up.weight, m.down.weight  # (l·D, r), (r, l·D)
        assert v.shape[0] == 2  # the space's rank
        crossed = z * (z @ v.T @ u.T + m.up.bias) + z
        expected = finish(m, crossed.reshape(h.shape))
        assert torch.allclose(m(x), expected, atol=1e-12)


def test_dot_module_projects_the_products_of_input_and_compressed_rows():
    m, x = exported("dot")
    with torch.no_grad():
        h = compressed(m, x)
        products = torch.einsum("bnd,bld->bnl", x, h).reshape(3, -1)
        expected = finish(m, (products @ m.project.weight.T + m.project.bias).reshape(h.shape) + h)
        assert torch.allclose(m(x), expected, atol=1e-12)


@pytest.mark.parametrize("module", ["attention", "conv", "cross", "dot"])
def test_one_module_costs_what_flop_counter_counts(module):
    space = load_source(one_module_space(module, "2, 3, 5"))
    for arch in (space.decode([k]) for k in range(3)):
        sub = space.subnet(arch).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(*space.example_inputs(2))
        assert counter.get_total_flops() == 2 * space.flops(arch)
        assert sum(p.numel() for p in sub.parameters()) == space.params(arch)


def test_expected_cost_is_exact_where_rows_enter_squared():
    """Attention's l×l scores and the dot module's N·l → l·D projection: expectation by enumeration."""
    space = load_source(
        """
space quadratic
input dense : dense[3]
input sparse : embed[4, 2]
ffn 4
layer q {
  layers 2
  modules attention, dot
  from dense, sparse
  dim attention 1, 3, 4
  dim dot 2, 3
}
choice top { blocks linear from q fixed inputs dim linear 2, 5 }
output from top
"""
    )
    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(d.size, generator=gen, dtype=torch.float64), 0) for d in space.decisions]
    one = space.example_inputs(1)
    flops_total = params_total = 0.0
    for vec in itertools.product(*[range(d.size) for d in space.decisions]):
        weight = float(np.prod([p[v].item() for p, v in zip(probs, vec)]))
        sub = space.subnet(space.decode(list(vec))).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(*one)
        flops_total += weight * counter.get_total_flops()
        params_total += weight * sum(p.numel() for p in sub.parameters())
    assert abs(float(space.expected_flops(probs)) - flops_total) < 1e-9 * flops_total
    assert abs(float(space.expected_params(probs)) - params_total) < 1e-9 * params_total


def test_a_layer_is_lowered_to_fixed_choices_reading_the_layer_before():
    space = load_space(space_path("dhen"))
    spec = space.spec
    modules = ("embed_fc", "dot", "attention", "conv", "cross")
    first = [f"dhen1_{m}" for m in modules]
    second = [f"dhen2_{m}" for m in modules]
    for name, m in zip(first, modules):
        c = spec.choice_by_name[name]
        assert c.blocks == (m,) and c.candidates == ("dense", "sparse") and c.fixed_inputs
        assert c.dims[m] == (4, 5, 6, 7, 8, 9, 10, 11, 12)
    for name in second:
        assert spec.choice_by_name[name].candidates == tuple(first)
    assert spec.choice_by_name["top1"].candidates == (*second, "dense")
    assert space.baseline.choices["dhen2_attention"].dims == {"attention": 8}
    assert [d.name for d in space.decisions] == [f"{n}.dim.{n.split('_', 1)[1]}" for n in first + second] + [
        "top1.dim.linear",
        "top2.dim.linear",
    ]
    assert space.size == 9**12


@pytest.mark.parametrize("layers, choices", [("dhen1", 7), ("dhen", 12), ("dhen4", 22)])
def test_shipped_dhen_spaces_search_their_dims_only(layers, choices):
    space = load_space(space_path(layers))
    assert len(space.spec.choices) == choices
    assert all(len(c.blocks) == 1 and c.fixed_inputs for c in space.spec.choices)
    assert all(d.kind == "dim" and d.size == 9 for d in space.decisions)


def test_blocks_all_means_the_paper_blocks():
    space = load_space(space_path("rankitect"))
    assert set(b for c in space.spec.choices for b in c.blocks) == set(PAPER_BLOCKS)
    assert not {"attention", "conv", "cross", "dot"} & set(PAPER_BLOCKS)
    assert {"attention", "conv", "cross", "dot"} <= set(REGISTRY)


@pytest.mark.parametrize(
    "body, message, line",
    [
        ("modules linear\n  from dense, sparse", "`linear` cannot be a layer module", 7),
        ("modules atention\n  from dense, sparse", "unknown block `atention`", 7),
        ("modules conv", "layer `net` has no `from` statement", 6),
        ("from dense, sparse", "layer `net` has no `modules` statement", 6),
        ("modules conv\n  from dense, sparse\n  dim dot 2", "dims for `dot`, which layer `net` does not use", 9),
        ("layers 0\n  modules conv\n  from dense, sparse\n  dim conv 2", "a layer count must be a positive", 7),
        ("modules conv\n  from dense, nowhere\n  dim conv 2", "unknown name `nowhere`", 8),
    ],
)
def test_layer_mistakes_are_refused_at_their_position(body, message, line):
    head = "space bad\ninput dense : dense[5]\ninput sparse : embed[6, 4]\n\n\n"
    source = f"{head}layer net {{\n  {body}\n}}\noutput from net\n"
    with pytest.raises(RksError) as err:
        load_source(source, "bad.rks")
    text = str(err.value)
    assert message in text, text
    assert f"bad.rks:{line}:" in text, text


def test_baseline_layer_assignment_is_checked_against_the_layer():
    source = one_module_space("conv", "2, 3") + "baseline b {\n  net = layer(conv 3, dot 2)\n}\n"
    with pytest.raises(RksError, match="layer `net` has no module `dot`"):
        load_source(source)
    source = one_module_space("conv", "2, 3") + "baseline b {\n  net = layer(conv 4)\n}\n"
    with pytest.raises(RksError, match="dim 4 is not offered for `conv`"):
        load_source(source)
    assert load_source(one_module_space("conv", "2, 3") + "baseline b { net = layer(conv 3) }\n").baseline.choices[
        "net1_conv"
    ].dims == {"conv": 3}


def test_module_widths_are_checked():
    with pytest.raises(RksError, match="the convolution kernel must be odd, got 4"):
        load_source(one_module_space("conv", extra="kernel 4").replace("kernel 3\n", ""))
    with pytest.raises(RksError, match="duplicate `rank` setting"):
        load_source(one_module_space("cross", extra="rank 3"))
    assert load_source(one_module_space("attention").replace("ffn 6\n", "")).spec.modules.ffn == 4 * D


def test_export_reads_like_the_layer_formula(tmp_path):
    out = tmp_path / "dhen_subnet.py"
    proc = run_rks("export", space_path("dhen"), "--baseline", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    for cls in ("Attention", "Conv", "Cross", "Dot", "EmbedFC"):
        assert f"\nclass {cls}(nn.Module):" in text
    assert "self.dhen2_attention = Attention(40, 8, 16, 32)" in text  # layer 2 reads 5 modules × 8 rows
    # the ensemble: layer 1's modules concatenated along the rows once, read by every module of layer 2
    assert text.count("torch.cat([dhen1_embed_fc, dhen1_dot, dhen1_attention, dhen1_conv, dhen1_cross]") == 1
    for module in ("embed_fc", "dot", "attention", "conv", "cross"):
        assert f"dhen2_{module} = self.dhen2_{module}(dhen2_embed_fc_rows)" in text


def test_written_back_dhen_space_is_the_same_space():
    """`rks scale --extend` and `rks merge` write a space back from its checked form: the module widths too."""
    from rankitect_dsl.core.spec import spec_to_dict
    from rankitect_dsl.lang.writer import spec_source

    space = load_source(one_module_space("cross", "2, 3").replace("rank 2", "rank 5"))
    again = load_source(spec_source(space.spec, ["written back"]))
    assert spec_to_dict(again.spec) == spec_to_dict(space.spec)
    assert again.spec.modules.rank == 5
