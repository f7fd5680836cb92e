"""The cost model against independent references: FlopCounterMode, parameter counts, Monte Carlo, finite differences."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import SPACES, run_rks, space_path
from rankitect_dsl import Arch, ChoiceArch, load_source
from rankitect_dsl.core.names import HEAD_PART, choice_part, pair_part


def measured_flops(model, inputs):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops()


def measured_parts(space, arch):
    """FLOPs per cost-model part (choice, shared FC_ij, head) measured by FlopCounterMode on the exported
    subnet's top-level modules: a choice owns its block modules and its stack adaptor. Which module is which
    comes from the subnet plan's attribute names, not from the cost model."""
    model = space.subnet(arch).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*space.example_inputs(1))
    plan = space.plan(arch)
    owner = {plan.head_attr: HEAD_PART}
    owner.update({pp.attr: pair_part(i, j) for (i, j), pp in plan.pairs.items()})
    for cp in plan.choices:
        owner.update({a: choice_part(cp.name) for a in [cp.stack_attr, *(bp.attr for bp in cp.blocks)] if a})
    top, children = type(model).__name__, dict(model.named_children())
    parts = {}
    for key, ops in counter.get_flop_counts().items():
        path = key.split(".")
        if path[0] != top or len(path) < 2:
            continue
        attr = path[1]
        if len(path) != (3 if isinstance(children[attr], torch.nn.ModuleList) else 2):
            continue
        parts[owner[attr]] = parts.get(owner[attr], 0) + sum(ops.values())
    return parts


@pytest.mark.parametrize("name", SPACES)
def test_flops_and_params_equal_flop_counter_and_numel(spaces, name):
    space = spaces[name]
    one, many = space.example_inputs(1, seed=0), space.example_inputs(32, seed=0)
    archs = space.sample_many(100, seed=21) if space.size > 1 else [space.baseline]
    for arch in archs:
        model = space.subnet(arch).eval()
        flops = space.flops(arch)
        assert flops == measured_flops(model, one)
        assert flops * 32 == measured_flops(model, many)
        assert space.params(arch) == sum(p.numel() for p in model.parameters())


def test_merged_arch_cost_matches_flop_counter(spaces):
    space = spaces["tiny"]
    choices = dict(space.baseline.choices)
    choices["c1"] = ChoiceArch(("linear", "gating"), ("dense", "sparse"), (("sparse", "dense"),), {"linear": 4})
    arch = Arch("tiny", choices)
    model = space.subnet(arch)
    assert space.flops(arch) == measured_flops(model, space.example_inputs(1))
    assert space.params(arch) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["tiny", "rankitect", "dhen_dims"])
def test_flops_many_equals_one_by_one(spaces, name):
    space = spaces[name]
    archs = space.sample_many(300, seed=4)
    assert space.flops_many(archs).tolist() == [space.flops(a) for a in archs]
    assert space.params_many(archs).tolist() == [space.params(a) for a in archs]


def test_breakdown_sums_to_total_and_export_header_agrees(spaces):
    space = spaces["rankitect"]
    for arch in space.sample_many(5, seed=2):
        parts = space.cost_breakdown(arch)
        measured = measured_parts(space, arch)
        assert {k: v["flops"] for k, v in parts.items() if v["flops"]} == {k: v for k, v in measured.items() if v}
        model = space.subnet(arch)
        assert sum(v["params"] for v in parts.values()) == sum(p.numel() for p in model.parameters())
        assert f"FLOPs per example: {measured_flops(model, space.example_inputs(1)):,}" in space.subnet_source(arch)
        for name in space.spec.choice_by_name:
            if name not in space.active_choices(arch):
                assert parts[choice_part(name)] == {"flops": 0, "params": 0}


def fixed_connection_rankitect():
    """rankitect_hand.rks with frozen connections (paper 4.2.4): every candidate read, pairs fixed; blocks and
    dims searched."""
    text = open(space_path("rankitect_hand")).read()
    head = text[: text.index("choice r1 .. r24")]
    body = []
    for k in range(1, 25):
        pair = "dense, sparse" if k == 1 else f"r{k - 1}, r{k - 1}"
        body.append(
            f"choice r{k} {{ blocks all  from distance 1, 2, 3, 6, 9  from dense, sparse  fixed inputs  pair {pair} }}"
        )
    return load_source(head + "\n".join(body) + "\noutput from r24\n", "fixed.rks")


def monte_carlo_mean(space, n=20000, seed=0):
    # uniform sampling with every connection frozen is the product distribution of `sampler_probs`
    return float(space.flops_many(space.sample_many(n, seed)).astype(np.float64).mean())


@pytest.mark.parametrize("which", ["dhen_dims", "fixed_rankitect"])
def test_expected_flops_equals_monte_carlo_mean_where_connections_are_fixed(spaces, which):
    space = fixed_connection_rankitect() if which == "fixed_rankitect" else spaces[which]
    expected = float(space.expected_flops(space.sampler_probs()))
    mean = monte_carlo_mean(space)
    assert abs(expected - mean) / mean < 0.01, (expected, mean)


def test_expected_flops_is_exact_on_a_small_fixed_space():
    """Exact expectation by enumeration (not sampling) on a space with frozen connections."""
    space = load_source("""
space small_fixed
input dense : dense[3]
input sparse : embed[2, 2]
choice a1 { blocks linear, embed_fc, gating  from dense, sparse  fixed inputs  pair sparse, dense
            dim linear 2, 5  dim embed_fc 1, 3 }
choice a2 { blocks dot_compressed, sum, linear  from a1, dense  fixed inputs  pair a1, a1
            dim dot_compressed 1, 2  dim linear 4 }
output from a2
""")
    import itertools

    probs = [torch.softmax(torch.randn(d.size, dtype=torch.float64), 0) for d in space.decisions]
    total = 0.0
    one = space.example_inputs(1)
    for vec in itertools.product(*[range(d.size) for d in space.decisions]):
        weight = float(np.prod([p[v].item() for p, v in zip(probs, vec)]))
        total += weight * measured_flops(space.subnet(space.decode(list(vec))).eval(), one)
    assert abs(float(space.expected_flops(probs)) - total) < 1e-9 * total


def test_expected_flops_gradient_matches_finite_differences(spaces):
    space = spaces["tiny"]
    torch.manual_seed(0)
    logits = [torch.randn(d.size, dtype=torch.float64, requires_grad=True) for d in space.decisions]
    value = space.expected_flops([torch.softmax(l, 0) for l in logits])
    value.backward()
    eps = 1e-6
    for l in logits:
        for k in range(l.numel()):
            with torch.no_grad():
                l[k] += eps
                up = float(space.expected_flops([torch.softmax(x, 0) for x in logits]))
                l[k] -= 2 * eps
                down = float(space.expected_flops([torch.softmax(x, 0) for x in logits]))
                l[k] += eps
            assert abs((up - down) / (2 * eps) - l.grad[k].item()) < 1e-4 * max(1.0, abs(l.grad[k].item()))


def test_expected_flops_on_searched_connections_is_close(spaces):
    """rankitect.rks searches connections, so the expectation is an approximation (independent reachability
    events); benchmarks/bench_cost.py measures its error (about +6% on the sampler's distribution)."""
    space = spaces["rankitect"]
    expected = float(space.expected_flops(space.sampler_probs()))
    mean = monte_carlo_mean(space, n=5000, seed=1)
    assert abs(expected - mean) / mean < 0.10, (expected, mean)


def test_flops_expr_is_sympy_in_decision_indicators(spaces):
    space = spaces["tiny"]
    symbols = {str(s) for s in space.flops_expr.free_symbols}
    assert symbols and all(s.split("[")[0] in {d.name for d in space.decisions} for s in symbols)
    arch = space.sample(3)
    values = dict(zip(space.cost._args, space.cost.one_hot(space.encode(arch))))
    model = space.subnet(arch).eval()
    assert int(space.flops_expr.xreplace(values)) == measured_flops(model, space.example_inputs(1))
    assert int(space.params_expr.xreplace(values)) == sum(p.numel() for p in model.parameters())


def test_cli_flops_json():
    import json

    from rankitect_dsl import load_space

    proc = run_rks("flops", space_path("dlrm"), "--baseline", "--json")
    data = json.loads(proc.stdout)
    space = load_space(space_path("dlrm"))
    model = space.subnet(space.baseline).eval()
    assert data["flops"] == measured_flops(model, space.example_inputs(1))
    assert data["params"] == sum(p.numel() for p in model.parameters())
    parts = [*data["choices"].values(), *data["pairs"], data["head"]]
    assert data["flops"] == sum(v["flops"] for v in parts) and data["params"] == sum(v["params"] for v in parts)


def test_cli_stats_plot(tmp_path):
    out = tmp_path / "fig.png"
    proc = run_rks("stats", space_path("tiny"), "--sample", "500", "--plot", out)
    assert proc.returncode == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_comments_carry_the_cost_model_per_line(spaces):
    import re

    space = spaces["rankitect"]
    for arch in space.sample_many(3, seed=8):
        source = space.subnet_source(arch)
        body = source[source.index("    def forward(self, dense, sparse)") :]
        per_line = [int(m.replace(",", "")) for m in re.findall(r"# B[^,\n]*, ([\d,]+) FLOPs", body)]
        measured = measured_parts(space, arch)
        assert sorted(per_line) == sorted(v for v in measured.values() if v)


COLLIDING = """space coll

input dense  : dense[3]
input sparse : embed[2, 4]

choice a   { blocks linear from dense fixed inputs dim linear 5 }
choice b_c { blocks linear from a fixed inputs dim linear 6 }
choice a_b { blocks linear from a fixed inputs dim linear 7 }
choice c   { blocks linear from b_c fixed inputs dim linear 8 }
choice g1  { blocks gating from a_b, c pair a_b, c }
choice g2  { blocks gating from a, b_c pair a, b_c }
choice fc_a { blocks sum from b_c, c pair b_c, c }
choice a_  { blocks linear from dense fixed inputs dim linear 3 }
choice g3  { blocks gating from a_, b_c pair a_, b_c }
choice head { blocks linear from g1, g2, fc_a, g3 fixed inputs dim linear 4 }

output from head

baseline production {
  a    = linear(dense) dim 5
  b_c  = linear(a) dim 6
  a_b  = linear(a) dim 7
  c    = linear(b_c) dim 8
  g1   = gating(a_b, c)
  g2   = gating(a, b_c)
  fc_a = sum(b_c, c)
  a_   = linear(dense) dim 3
  g3   = gating(a_, b_c)
  head = linear(g1, g2, fc_a, g3) dim 4
}
"""


def test_names_built_to_collide_keep_their_own_costs():
    """(a_b, c) and (a, b_c) both joined to `fc_a_b_c`, and a choice `head` beside the classifier, made the
    breakdown (and so the totals and the export's docstring) lose parts; keys are structural now. `a_` ends in
    the separator the joined keys used (its pair's stem is `fc_a__b_c`)."""
    space = load_source(COLLIDING, "coll.rks")
    model = space.subnet(space.baseline).eval()
    flops = space.flops(space.baseline)
    assert flops == measured_flops(model, space.example_inputs(1))
    assert space.params(space.baseline) == sum(p.numel() for p in model.parameters())
    parts = space.cost_breakdown(space.baseline)
    expected = {pair_part("a_b", "c"), pair_part("a", "b_c"), pair_part("a_", "b_c"), choice_part("head"), HEAD_PART}
    assert expected <= set(parts)
    assert {k: v for k, v in measured_parts(space, space.baseline).items() if v} == {
        k: v["flops"] for k, v in parts.items() if v["flops"]
    }
    assert f"{flops:,} FLOPs per example" in space.subnet_source(space.baseline)


KEY_NAMES = """space keys

input dense  : dense[3]
input sparse : embed[2, 4]

choice a     { blocks linear from dense fixed inputs dim linear 5 }
choice stack { blocks linear from a fixed inputs dim linear 6 }
choice fc    { blocks embed_fc from a, sparse fixed inputs dim embed_fc 2 }
choice g     { blocks gating from stack, a pair stack, a }
choice head  { blocks linear from g, fc fixed inputs dim linear 4 }

output from head

baseline production {
  a     = linear(dense) dim 5
  stack = linear(a) dim 6
  fc    = embed_fc(a, sparse) dim 2
  g     = gating(stack, a)
  head  = linear(g, fc) dim 4
}
"""


def test_supernet_keys_of_choices_named_fc_stack_and_head_stay_apart():
    """`fc`'s stack adaptor over `a` and the pair (stack, a) share the key stem `fc__stack__a`; a choice `head`
    sits beside the classifier. Merged keys would drop parameters from the supernet."""
    space = load_source(KEY_NAMES, "keys.rks")
    net = space.supernet()
    assert sum(p.numel() for p in net.parameters()) == space.params(space.all_on())
    model = space.subnet(space.baseline)
    assert space.params(space.baseline) == sum(p.numel() for p in model.parameters())
    assert space.flops(space.baseline) == measured_flops(model.eval(), space.example_inputs(1))
