"""The supernet's three paths agree: masks (`space.masks(arch)`), hard (`arch=`) and the exported subnet.

Each path is checked against the others in float64 for sampled, merged and multi-pair archs of every
shipped space; the masks themselves (per example, soft, leading-ones dims), feature order, pair sets and
activation checkpointing are checked on their own.
"""

import random
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import read_back_calls, space_path
from rankitect_dsl import Arch, ArchError, RksError, load_source, load_space, transfer_weights
from rankitect_dsl.core.arch import ChoiceArch
from rankitect_dsl.core.blocks import is_multi_hot

SHIPPED = sorted(p.stem for p in Path(space_path("tiny")).parent.glob("*.rks"))


@pytest.fixture(scope="module")
def shipped():
    return {name: load_space(space_path(name)) for name in SHIPPED}


def three_paths(space, net, arch, batch=4, seed=0):
    """Logits of the mask path, the hard path and the exported subnet (weights transferred), float64."""
    dense, sparse = (x.double() for x in space.example_inputs(batch, seed=seed))
    sub = space.subnet(arch).double().eval()
    transfer_weights(net, sub, arch)
    with torch.no_grad():
        return (
            net(dense, sparse, masks=space.masks(arch, dense)),
            net(dense, sparse, arch=arch),
            sub(dense, sparse),
        )


def worst_gap(space, net, arch, **kw) -> float:
    masked, hard, exported = three_paths(space, net, arch, **kw)
    return max((masked - exported).abs().max().item(), (hard - exported).abs().max().item())


def random_weights(net, seed):
    """Weights away from their init (LayerNorm ones and zeros included), so no path agrees by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return net


def merged_arch(space, rng: random.Random, everything=False) -> Arch:
    """A merged arch (paper 4.2.3): each choice runs a random non-empty set of its blocks (all of them when
    `everything`), reads a random set of inputs and a set of up to three pairs."""
    choices = {}
    for c in space.spec.choices:
        blocks = list(c.blocks) if everything else [b for b in c.blocks if rng.random() < 0.5] or [rng.choice(c.blocks)]
        inputs, pairs = (), ()
        if any(is_multi_hot(b) for b in blocks):
            inputs = c.candidates if c.fixed_inputs else tuple(x for x in c.candidates if rng.random() < 0.7)
            inputs = inputs or (rng.choice(c.candidates),)
        if any(not is_multi_hot(b) for b in blocks):
            if c.fixed_pairs is not None:
                pairs = c.fixed_pairs
            else:
                every = [(i, j) for i in c.candidates for j in c.candidates]
                pairs = tuple(rng.sample(every, min(len(every), rng.randint(1, 3))))
        dims = {b: rng.choice(c.dims[b]) for b in blocks if b in c.dims}
        choices[c.name] = ChoiceArch(tuple(blocks), tuple(inputs), pairs, dims)
    arch = Arch(space.name, choices)
    space.validate(arch)
    return arch


@pytest.mark.parametrize("name", SHIPPED)
def test_masks_arch_and_export_agree_on_30_sampled_archs(shipped, name):
    space = shipped[name]
    net = random_weights(space.supernet().double().eval(), seed=1)
    gaps = [worst_gap(space, net, space.sample(seed), seed=seed) for seed in range(30)]
    assert max(gaps) < 1e-9, gaps


@pytest.mark.parametrize("name", SHIPPED)
def test_masks_arch_and_export_agree_on_merged_and_multi_pair_archs(shipped, name):
    space = shipped[name]
    net = random_weights(space.supernet().double().eval(), seed=2)
    rng = random.Random(name)
    archs = [merged_arch(space, rng) for _ in range(6)] + [merged_arch(space, rng, everything=True)]
    gaps = [worst_gap(space, net, arch, seed=k) for k, arch in enumerate(archs)]
    assert max(gaps) < 1e-9, gaps


def test_merged_archs_cost_what_flop_counter_counts(shipped):
    for name in ("tiny", "dhen_dims"):
        space, rng = shipped[name], random.Random(7)
        for arch in [merged_arch(space, rng) for _ in range(4)] + [merged_arch(space, rng, everything=True)]:
            sub = space.subnet(arch)
            dense, sparse = space.example_inputs(4)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                sub(dense, sparse)
            assert counter.get_total_flops() // 4 == space.flops(arch)
            assert sum(p.numel() for p in sub.parameters()) == space.params(arch)


@pytest.mark.parametrize("name", ["dhen_dims", "dhen"])
def test_per_example_masks_run_a_different_arch_for_every_example(shipped, name):
    """Row b of (B, size) masks holds arch b's one-hot weights: logit b is arch b's logit on example b."""
    space = shipped[name]
    net = random_weights(space.supernet().double().eval(), seed=3)
    archs = [space.sample(seed) for seed in range(5)]
    dense, sparse = (x.double() for x in space.example_inputs(5, seed=4))
    per_arch = [space.masks(a, dense) for a in archs]
    stacked = {key: torch.stack([m[key] for m in per_arch]) for key in per_arch[0]}
    with torch.no_grad():
        together = net(dense, sparse, masks=stacked)
        alone = torch.stack([net(dense, sparse, arch=a)[b] for b, a in enumerate(archs)])
    assert (together - alone).abs().max().item() < 1e-9


def test_dim_weights_become_a_leading_ones_mask(shipped):
    from rankitect_dsl.runtime.supernet import choice_weights

    space = shipped["tiny"]
    c = next(c for c in space.spec.choices if "linear" in c.dims and len(c.dims["linear"]) > 1)
    opts, key = c.dims["linear"], f"{c.name}.dim.linear"
    like = torch.zeros((), dtype=torch.double)
    for k, opt in enumerate(opts):
        mask = choice_weights(c, {key: torch.eye(len(opts), dtype=torch.double)[k]}, like)["dims"]["linear"]
        assert mask.tolist() == [1.0 if f < opt else 0.0 for f in range(max(opts))]
    soft = torch.full((len(opts),), 1.0 / len(opts), dtype=torch.double)
    mask = choice_weights(c, {key: soft}, like)["dims"]["linear"]
    assert mask[0] == 1.0 and (mask[1:] <= mask[:-1]).all()  # P(dim > k) falls with k
    assert mask[-1] == pytest.approx(1.0 / len(opts))


@pytest.mark.parametrize("name", ["dhen_dims", "dhen"])
def test_soft_masks_carry_gradients_to_every_decision(shipped, name):
    space = shipped[name]
    net = space.supernet().double()
    dense, sparse = (x.double() for x in space.example_inputs(4))
    logits = {d.name: torch.zeros(4, d.size, dtype=torch.double, requires_grad=True) for d in space.decisions}
    out = net(dense, sparse, masks={k: torch.softmax(v, -1) for k, v in logits.items()})
    out.sum().backward()
    dead = [k for k, v in logits.items() if v.grad is None or v.grad.abs().sum() == 0]
    assert not dead, dead


def test_dot_compressed_features_keep_their_supernet_position(shipped):
    """Feature (row n, compressed row m) of a dot_compressed block is the supernet's n·M_max + m on every
    path, n counting the stacked rows of the maximal supernet (each candidate's rows in candidate order).
    dhen_dims' baseline with its dot dims at the minimum: a LayerNorm bias entry trained at an active
    feature's position moves all three paths alike; an entry at m ≥ M, or at a row the arch leaves out,
    moves none."""
    space = shipped["dhen_dims"]
    choices = dict(space.baseline.choices)
    c = space.spec.choice_by_name["dot1"]
    small, m_max = min(c.dims["dot_compressed"]), max(c.dims["dot_compressed"])
    choices["dot1"] = ChoiceArch(("dot_compressed",), c.candidates, (), {"dot_compressed": small})
    compress = space.spec.choice_by_name[c.candidates[0]]
    choices[compress.name] = ChoiceArch(
        ("embed_fc",), compress.candidates, (), {"embed_fc": min(compress.dims["embed_fc"])}
    )
    arch = Arch(space.name, choices)
    space.validate(arch)
    assert "dot1" in space.active_choices(arch)
    rows_max = max(compress.dims["embed_fc"])  # the embed_fc candidate's rows, then dense_mlp's one row
    used_rows = min(compress.dims["embed_fc"])
    net = random_weights(space.supernet().double().eval(), seed=5)
    key = "dot1__dot_compressed__ln_b"
    base = three_paths(space, net, arch)
    cases = [
        (rows_max * m_max + small - 1, True),  # dense_mlp's row, last active m
        ((used_rows - 1) * m_max + 1, True),  # the embed_fc's last active row
        (rows_max * m_max + small, False),  # m = M: outside the arch's dim
        (used_rows * m_max, False),  # an embed_fc row the arch does not compute
    ]
    for position, used in cases:
        saved = net.weights[key][position].item()
        with torch.no_grad():
            net.weights[key][position] += 3.0
        moved = three_paths(space, net, arch)
        with torch.no_grad():
            net.weights[key][position] = saved  # exactly: adding and taking back 3.0 can round
        deltas = [(after - before).abs().max().item() for after, before in zip(moved, base)]
        if used:
            assert min(deltas) > 1e-6, (position, deltas)
            assert max((m - moved[2]).abs().max().item() for m in moved) < 1e-9
        else:
            assert max(deltas) == 0.0, (position, deltas)


def test_checkpointed_supernet_gives_the_same_outputs_and_gradients(shipped):
    space = shipped["dhen_dims"]
    plain = random_weights(space.supernet().double(), seed=6)
    saved = space.supernet(checkpoint_activations=True).double()
    saved.load_state_dict(plain.state_dict())
    dense, sparse = (x.double() for x in space.example_inputs(4))
    probs = {d.name: torch.softmax(torch.randn(4, d.size, dtype=torch.double), -1) for d in space.decisions}
    for masks in ({}, probs):
        grads = []
        for net in (plain, saved):
            net.zero_grad()
            out = net(dense, sparse, masks=masks)
            out.sum().backward()
            grads.append({k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
        assert grads[0].keys() == grads[1].keys()
        assert max((grads[0][k] - grads[1][k]).abs().max().item() for k in grads[0]) < 1e-9


def test_pair_sets_in_arch_json(shipped):
    space = shipped["tiny"]
    d = space.baseline.to_dict()
    d["choices"]["c1"] = {"blocks": ["gating"], "pairs": [["dense", "sparse"], ["sparse", "sparse"]]}
    arch = Arch.from_dict(d)
    space.validate(arch)
    assert Arch.from_json(arch.to_json()) == arch
    assert arch.to_dict()["choices"]["c1"]["pairs"] == [["dense", "sparse"], ["sparse", "sparse"]]
    with pytest.raises(ArchError, match="no flat encoding"):
        space.encode(arch)
    one = dict(d, choices=dict(d["choices"], c1={"blocks": ["gating"], "pairs": [["dense", "sparse"]]}))
    assert Arch.from_dict(one).to_dict()["choices"]["c1"] == {"blocks": ["gating"], "pair": ["dense", "sparse"]}
    for bad, where in [
        ({"blocks": ["gating"], "pair": ["dense", "sparse"], "pairs": [["dense", "sparse"]]}, "choices.c1.pairs"),
        ({"blocks": ["gating"], "pairs": []}, "choices.c1.pairs"),
        ({"blocks": ["gating"], "pairs": [["dense", "sparse"], ["dense", "sparse"]]}, "choices.c1.pairs"),
        ({"blocks": ["gating"], "pairs": [["dense", "sparse"], ["dense", "nope"]]}, "choices.c1.pairs[1]"),
    ]:
        with pytest.raises(ArchError) as err:
            space.validate(Arch.from_dict(dict(d, choices=dict(d["choices"], c1=bad))))
        assert where in str(err.value)


FIXED_PAIRS = """
space fixed_pairs
input dense : dense[5]
input sparse : embed[3, 4]
choice mix {
  blocks gating, sum
  from dense, sparse
  fixed inputs
}
choice top {
  blocks linear
  from mix, sparse
  dim linear 6, 8
}
output from top
"""


def test_pair_block_over_fixed_inputs_sums_every_pair():
    """No `pair` statement: Eq. 2 over all K² pairs, no left/right decisions, and every path agrees."""
    space = load_source(FIXED_PAIRS, "fixed_pairs.rks")
    mix = space.spec.choice_by_name["mix"]
    assert len(mix.fixed_pairs) == 4
    assert not [d for d in space.decisions if d.choice == "mix" and d.kind in ("left", "right")]
    # blocks 2 × top's (3 input sets × 2 dims): the pairs add no factor
    assert space.size == 2 * 3 * 2
    net = random_weights(space.supernet().double().eval(), seed=8)
    for arch in space.sample_many(6, seed=0):
        assert len(arch.choices["mix"].pairs) == 4
        assert space.decode(space.encode(arch)) == arch
        assert worst_gap(space, net, arch) < 1e-9
        sub = space.subnet(arch)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            sub(*space.example_inputs(2))
        assert counter.get_total_flops() // 2 == space.flops(arch)


def test_fixed_pair_sets_over_choices_are_refused_with_a_position():
    text = FIXED_PAIRS.replace(
        "output from top", "choice late {\n  blocks sum\n  from top, dense\n  fixed inputs\n}\noutput from late"
    )
    with pytest.raises(RksError) as err:
        load_source(text, "late.rks")
    assert "must be the raw inputs" in err.value.render() and "late.rks:" in err.value.render()


def test_mask_layout_errors_name_the_key(shipped):
    space = shipped["tiny"]
    net = space.supernet()
    dense, sparse = space.example_inputs(2)
    with pytest.raises(ValueError, match="unknown mask `c1.blocks`"):
        net(dense, sparse, masks={"c1.blocks": torch.ones(2)})
    name = space.decisions[0].name
    with pytest.raises(ValueError, match=f"mask `{name}`"):
        net(dense, sparse, masks={name: torch.ones(space.decisions[0].size + 1)})


def test_a_mask_path_forward_reads_back_once_on_every_device(shipped, monkeypatch):
    """Which fixed weights are all zero or all one is read back in one transfer per forward, on the CPU as on
    an accelerator (no device branch: the CPU runs the GPU's code). Counted by patching the Tensor methods
    that read a value back, calls from `runtime/supernet.py` only."""
    space = shipped["rankitect_blocks"]
    net = space.supernet().eval()
    arch = space.sample(seed=3)
    masks = space.masks(arch)
    dense, sparse = space.example_inputs(8)
    calls = read_back_calls(monkeypatch, "runtime/supernet.py")
    with torch.no_grad():
        net(dense, sparse, masks=masks)
    assert calls == ["tolist"]
