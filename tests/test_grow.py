"""`rks grow`: each rule of paper 4.2.1 checked on the grown dlrm.rks, and the shipped grown spaces reproduced."""

import pytest

from conftest import ROOT, run_rks, space_path
from rankitect_dsl import load_source, load_space
from rankitect_dsl.core.graph import reads
from rankitect_dsl.lang.grow import GrowConfig, grow_source

DLRM = load_space(space_path("dlrm"))
EMBED_GROUP, LINEAR_GROUP = {"dot_compressed", "embed_fc"}, {"linear", "gating", "sum"}


def grown(**kw):
    cfg = GrowConfig(**{"name": "g", **kw})
    return load_source(grow_source(DLRM, cfg, "dlrm.rks"), "g.rks")


def production_reads(name):
    return set(reads(DLRM.baseline, name))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_order_is_a_dag_order_with_a_copy_right_after_each_embed_or_dot_choice(seed):
    order = [c.name for c in grown(seed=seed).spec.choices]
    originals = [n for n in order if not n.endswith("_copy")]
    assert sorted(originals) == sorted(c.name for c in DLRM.spec.choices)
    for k, name in enumerate(originals):
        assert production_reads(name) & set(DLRM.spec.choice_by_name) <= set(originals[:k]), name
    copied = {c.name for c in DLRM.spec.choices if set(c.blocks) & EMBED_GROUP}
    assert copied == {"compress", "dot_comp", "dot_raw"}
    assert len(order) == len(originals) + len(copied)
    for name in copied:
        assert order[order.index(name) + 1] == f"{name}_copy"


def test_the_permutation_depends_on_the_seed():
    orders = {tuple(c.name for c in grown(seed=s).spec.choices) for s in range(6)}
    assert len(orders) > 1


def test_block_groups():
    for c in grown().spec.choices:
        source = DLRM.spec.choice_by_name[c.name.removesuffix("_copy")]
        expected = EMBED_GROUP if set(source.blocks) <= EMBED_GROUP else LINEAR_GROUP
        assert set(c.blocks) == expected, c.name


@pytest.mark.parametrize("distances", [(1, 2, 3, 6, 9), (1, 4)])
def test_connections_are_the_flagged_distances_plus_the_production_inputs(distances):
    spec = grown(distances=distances, seed=5).spec
    order = [c.name for c in spec.choices]
    for k, c in enumerate(spec.choices):
        by_distance = {order[k - d] for d in distances if k - d >= 0}
        production = production_reads(c.name.removesuffix("_copy"))
        assert set(c.candidates) == by_distance | production, c.name
        for name in by_distance:
            assert c.distances[name] == order.index(c.name) - order.index(name)
        assert not c.fixed_inputs and c.fixed_pairs is None


def test_dims_keep_and_bottleneck_as_flagged():
    spec = grown(low=0.5, high=1.5, steps=5, keep=0.7, bottleneck=64).spec
    assert spec.keep == 0.7 and spec.bottleneck == 64
    for c in spec.choices:
        if "linear" in c.blocks:  # production linear width 128: 0.5, 0.75, 1, 1.25, 1.5 × 128
            assert c.dims["linear"] == (64, 96, 128, 160, 192)
        if "embed_fc" in c.blocks:  # production embed_fc / dot_compressed width 8
            assert c.dims["embed_fc"] == (4, 6, 8, 10, 12) and c.dims["dot_compressed"] == (4, 6, 8, 10, 12)


def test_a_width_the_steps_miss_is_still_offered():
    spec = grown(low=0.3, high=1.3, steps=3).spec  # 0.3, 0.8, 1.3 × 128 miss 128 itself
    assert spec.choices[0].dims.get("linear", (128,)) and all(
        128 in c.dims["linear"] for c in spec.choices if "linear" in c.blocks
    )


def test_the_production_model_is_the_baseline_at_the_same_cost():
    space = grown(bottleneck=DLRM.spec.bottleneck)  # same pair bottleneck, and the copies are dead
    space.validate(space.baseline)
    assert space.flops(space.baseline) == DLRM.flops(DLRM.baseline)
    assert space.params(space.baseline) == DLRM.params(DLRM.baseline)
    for name, ca in DLRM.baseline.choices.items():
        got = space.baseline.choices[name]  # inputs listed in the grown choice's candidate order
        assert (got.blocks, set(got.inputs), got.pairs, got.dims) == (ca.blocks, set(ca.inputs), ca.pairs, ca.dims)
    assert space.size > 10**20


def test_figure3_spread_holds_the_baseline():
    from rankitect_dsl.compiler.sample_stats import sample_stats

    stats = sample_stats(load_space(space_path("rankitect")), 2000, seed=0)
    flops = stats["summary"]["flops"]
    assert flops["min"] < stats["baseline"]["flops"] < flops["max"]


@pytest.mark.parametrize(
    "base, out", [("dlrm", "rankitect"), ("avazu_dlrm", "avazu_rankitect"), ("ml100k_dlrm", "ml100k_rankitect")]
)
def test_shipped_grown_spaces_are_the_output_of_rks_grow(tmp_path, base, out):
    target = tmp_path / f"{out}.rks"
    proc = run_rks("grow", space_path(base), "-o", target, "--bottleneck", "32")
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == (ROOT / "spaces" / f"{out}.rks").read_text()


def test_grow_errors_are_one_clean_line_and_write_nothing(tmp_path):
    no_baseline = tmp_path / "nb.rks"
    no_baseline.write_text(
        "space nb\ninput d : dense[2]\ninput e : embed[2, 2]\n"
        "choice c { blocks linear from d dim linear 4 }\noutput from c\n"
    )
    cases = [
        ([no_baseline], "names no baseline"),
        ([space_path("dlrm"), "--dims", "1.5..0.5:3"], "LOW..HIGH:STEPS"),
        ([space_path("dlrm"), "--distances", "1,0"], "distinct positive integers"),
        ([space_path("dlrm"), "--keep", "1.5"], "keep probability"),
        ([space_path("dlrm"), "--name", "class"], "grown space name `class`"),
    ]
    for args, words in cases:
        out = tmp_path / "out.rks"
        proc = run_rks("grow", *args, "-o", out)
        assert proc.returncode != 0 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not out.exists()


def test_grown_choices_read_their_production_inputs_first_in_production_order():
    for c in grown(seed=3).spec.choices:
        production = reads(DLRM.baseline, c.name.removesuffix("_copy"))
        assert c.candidates[: len(production)] == production, c.name


def test_the_baseline_trains_to_the_same_numbers_in_the_production_and_the_grown_space():
    """One model: same weights at the start, the same steps in the same order, so the same trained weights
    (bit for bit) after a short pass; independent of the permutation's seed."""
    import torch

    from rankitect_dsl.data.synthetic import SyntheticSource
    from rankitect_dsl.runtime.engine import TrainConfig, train
    from rankitect_dsl.runtime.model import build_model

    data = SyntheticSource(0).dataset(13, 26, 1024, 256)
    trained = []
    for space in (DLRM, grown(seed=4, bottleneck=DLRM.spec.bottleneck), grown(seed=1, bottleneck=32)):
        model = build_model(space, space.baseline, data, seed=7)
        train(model, data, TrainConfig(1024, 64, progress=False), evaluate=False)
        trained.append(model.state_dict())
    for other in trained[1:]:
        assert sorted(other) == sorted(trained[0])
        assert all(torch.equal(other[k], trained[0][k]) for k in trained[0]), "the grown baseline trained apart"


BLOCKS_ONLY = [("dlrm", "rankitect_blocks"), ("ml100k_dlrm", "ml100k_blocks")]


@pytest.mark.parametrize("base, out", BLOCKS_ONLY)
def test_shipped_blocks_spaces_are_the_output_of_rks_grow_blocks_only(tmp_path, base, out):
    target = tmp_path / f"{out}.rks"
    proc = run_rks("grow", space_path(base), "--blocks-only", "-o", target)
    assert proc.returncode == 0, proc.stderr
    assert target.read_text() == (ROOT / "spaces" / f"{out}.rks").read_text()


@pytest.mark.parametrize("base, out", BLOCKS_ONLY)
def test_blocks_only_rules(base, out):
    """4.2.4: connections fixed to the production ones, one block per choice from the production block's
    group (the production block first), the production pair or the first and last 2D choice read, dims
    from 0.5x to 2x the production width (multiples of 4, the production width always)."""
    production, space = load_space(space_path(base)), load_space(space_path(out))
    arch = production.baseline
    assert [c.name for c in space.spec.choices] == [c.name for c in production.spec.choices]
    for c in space.spec.choices:
        ca = arch.choices[c.name]
        block = ca.blocks[0]
        group = EMBED_GROUP if block in EMBED_GROUP else LINEAR_GROUP
        assert c.fixed_inputs and c.candidates == reads(arch, c.name)
        assert c.blocks[0] == block and set(c.blocks) == group
        if group is LINEAR_GROUP:
            ((left, right),) = c.fixed_pairs
            if ca.pairs:
                assert (left, right) == ca.pairs[0]
            else:
                twod = [x for x in c.candidates if x in arch.choices and arch.choices[x].blocks[0] != "embed_fc"]
                assert (left, right) == ((twod[0], twod[-1]) if twod else ("dense", "dense"))
        width = next(iter(ca.dims.values()), 128)
        for b, options in c.dims.items():
            assert width in options and min(options) >= width / 2 and max(options) <= 2 * width, (c.name, b)
            assert all(v % 4 == 0 or v == width for v in options), (c.name, b)
    assert space.baseline.to_dict()["choices"] == arch.to_dict()["choices"]
    assert space.flops(space.baseline) == production.flops(arch)


def test_blocks_only_refuses_the_grow_flags_it_does_not_use(tmp_path):
    for flag, value in [("--seed", "1"), ("--distances", "1,2"), ("--dims", "0.5..2:4"), ("--keep", "0.5")]:
        out = tmp_path / "b.rks"
        proc = run_rks("grow", space_path("dlrm"), "--blocks-only", flag, value, "-o", out)
        assert proc.returncode == 1 and "--blocks-only" in proc.stderr and flag in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()
