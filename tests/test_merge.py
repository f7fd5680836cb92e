"""Merging archs (paper 4.2.3): the union of blocks, connections and pairs, the largest dims."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import run_rks, space_path
from rankitect_dsl import Arch, ArchError, transfer_weights


def groups(space, n_groups=4, size=3):
    archs = space.sample_many(n_groups * size, seed=11)
    return [archs[k * size : (k + 1) * size] for k in range(n_groups)]


@pytest.mark.parametrize("name", ["tiny", "dhen_dims", "rankitect"])
def test_merged_arch_holds_every_input_and_costs_at_least_each(spaces, name):
    space = spaces[name]
    for archs in groups(space):
        merged = space.merge(archs)
        assert space.flops(merged) >= max(space.flops(a) for a in archs)
        assert space.params(merged) >= max(space.params(a) for a in archs)
        for arch in archs:
            for c in space.active_choices(arch):
                mine, theirs = arch.choices[c], merged.choices[c]
                assert set(mine.blocks) <= set(theirs.blocks)
                assert set(mine.inputs) <= set(theirs.inputs)
                assert set(mine.pairs) <= set(theirs.pairs)
                assert all(theirs.dims[b] >= d for b, d in mine.dims.items())
            assert set(space.active_choices(arch)) <= set(space.active_choices(merged))


def test_merging_one_arch_keeps_its_subnet(spaces):
    space = spaces["rankitect"]
    for arch in space.sample_many(5, seed=2):
        assert space.subnet_key(space.merge([arch])) == space.subnet_key(arch)


@pytest.mark.parametrize("name", ["tiny", "dhen_dims"])
def test_merged_arch_exports_runs_and_matches_the_supernet(spaces, name):
    space = spaces[name]
    net = space.supernet().double().eval()
    for k, archs in enumerate(groups(space, 3)):
        merged = space.merge(archs)
        sub = space.subnet(merged).double().eval()
        transfer_weights(net, sub, merged)
        dense, sparse = (x.double() for x in space.example_inputs(4, seed=k))
        with torch.no_grad():
            want = sub(dense, sparse)
            assert (net(dense, sparse, arch=merged) - want).abs().max().item() < 1e-9
            assert (net(dense, sparse, masks=space.masks(merged, dense)) - want).abs().max().item() < 1e-9
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            space.subnet(merged)(*space.example_inputs(2))
        assert counter.get_total_flops() // 2 == space.flops(merged)


def test_merge_needs_archs_of_the_space(spaces):
    space = spaces["tiny"]
    with pytest.raises(ArchError, match="nothing to merge"):
        space.merge([])
    bad = space.baseline.to_dict()
    bad["choices"]["c1"]["dims"] = {"linear": 999}
    with pytest.raises(ArchError, match="choices.c1.dims.linear"):
        space.merge([space.baseline, Arch.from_dict(bad)])


def test_cli_merge_writes_the_merged_arch(spaces, tmp_path):
    space = spaces["tiny"]
    paths = []
    for k, arch in enumerate(space.sample_many(3, seed=5)):
        paths.append(tmp_path / f"a{k}.json")
        paths[-1].write_text(arch.to_json())
    out = tmp_path / "merged.json"
    run = ["merge", space_path("tiny"), *map(str, paths)]
    done = run_rks(*run, "-o", out)
    assert done.returncode == 0, done.stderr
    merged = Arch.from_json(out.read_text())
    assert merged == space.merge([Arch.from_json(p.read_text()) for p in paths])
    assert f"{space.flops(merged):,} FLOPs" in done.stdout
    missing = run_rks(*run[:2], tmp_path / "none.json", "-o", out)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr and "cannot read" in missing.stderr
    assert json.loads(out.read_text())["space"] == "tiny"
