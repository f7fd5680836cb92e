"""Refusals a security and reliability probe asked for (issue 26), one section per finding: checkpoints that
never run code, positioned limits, numbers that do not fit, data that does not parse, schema holes, the
shared study store, and what the commands print when their output goes away."""

import pickle

import pytest
import torch

from conftest import ROOT
from rankitect_dsl import RksError, load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.oneshot import OneShotConfig, OneShotSearch

BLOCKS = str(ROOT / "spaces" / "rankitect_blocks.rks")


@pytest.fixture(scope="module")
def blocks():
    return load_space(BLOCKS)


def _oneshot(space, folder, steps=6):
    data = load_data("synthetic", space, 256 * steps)
    cfg = OneShotConfig(256 * steps, float(space.flops(space.baseline)), batch_size=256, rl_batch=2, replay_k=2)
    cfg.warmup, cfg.checkpoint_every = 0.0, 3
    return OneShotSearch(space, data, space.baseline, cfg, folder / "s.oneshot.pt", folder / "s.jsonl")


class _WritesAFile:
    """Unpickling this calls `open(path, "w")`: what a crafted checkpoint would do with `os.system`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- 1. a checkpoint never runs code ------------------------------------------------------------
def test_a_crafted_checkpoint_does_not_run_its_code(blocks, tmp_path):
    search = _oneshot(blocks, tmp_path)
    victim = tmp_path / "written-by-the-pickle"
    torch.save({"step": _WritesAFile(victim)}, search.checkpoint)
    with pickle.loads(pickle.dumps(_WritesAFile(tmp_path / "control"))):  # the payload does work when trusted
        pass
    assert (tmp_path / "control").exists()
    with pytest.raises(RksError) as err:
        search.run()
    assert not victim.exists()
    message = err.value.render()
    assert str(search.checkpoint) in message and "delete" in message and len(message.splitlines()) == 1


def test_the_weight_sharing_supernet_refuses_a_crafted_file(tmp_path):
    from rankitect_dsl.search.proxies import WeightSharingProxy

    space = load_space(str(ROOT / "spaces" / "tiny.rks"))
    victim, checkpoint = tmp_path / "written", tmp_path / "w.supernet.pt"
    torch.save({"x": _WritesAFile(victim)}, checkpoint)
    with pytest.raises(RksError, match="delete .* to pretrain the supernet again"):
        WeightSharingProxy(space, load_data("synthetic", space, 1000), 500, checkpoint=checkpoint)
    assert not victim.exists()


def test_a_checkpoint_of_one_shot_holds_only_tensors_and_plain_values(blocks, tmp_path):
    """The replay buffer and the pending samples were NumPy arrays (the reason for weights_only=False)."""
    search = _oneshot(blocks, tmp_path)
    search.run()
    state = torch.load(search.checkpoint, weights_only=True)
    assert len(state["replay"]["rewards"]) > 0 and isinstance(state["replay"]["vectors"], torch.Tensor)
    resumed = _oneshot(blocks, tmp_path)
    resumed.resume()
    assert resumed.step == search.step and (resumed.replay.vectors == search.replay.vectors).all()
    assert resumed.np_rng.bit_generator.state == search.np_rng.bit_generator.state


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a state"])
def test_a_checkpoint_that_does_not_load_is_one_line_naming_it(blocks, tmp_path, damage):
    search = _oneshot(blocks, tmp_path)
    search.run()
    data = search.checkpoint.read_bytes()
    if damage == "empty":
        search.checkpoint.write_bytes(b"")
    elif damage == "truncated":
        search.checkpoint.write_bytes(data[: len(data) // 2])
    else:
        torch.save([1, 2, 3], search.checkpoint)
    with pytest.raises(RksError) as err:
        _oneshot(blocks, tmp_path).run()
    message = err.value.render()
    assert str(search.checkpoint) in message and "start the search over" in message
    assert len(message.splitlines()) == 1


def test_a_log_cut_mid_line_resumes_and_a_damaged_one_names_its_line(blocks, tmp_path):
    whole = _oneshot(blocks, tmp_path / "a")
    whole.run()
    folder = tmp_path / "b"
    first = _oneshot(blocks, folder, steps=6)
    first.steps = 3  # stop after the first checkpoint, as a killed run would
    first.run()
    with open(first.log, "a") as log:
        log.write('{"step": 3, "examples": 10')  # killed while writing a step the checkpoint does not hold
    resumed = _oneshot(blocks, folder).run()
    assert resumed["resumed_from"] == 3
    assert first.log.read_text().splitlines() == whole.log.read_text().splitlines()
    lines = first.log.read_text().splitlines()
    first.log.write_text("\n".join(lines[:1] + ["{not json"] + lines[1:]) + "\n")
    with pytest.raises(RksError, match=rf"{first.log}:2: not a step record"):
        _oneshot(blocks, folder).resume()
