"""One-shot search: the policy's two gradient estimators, the reward of Eqs. 4 and 7 as logged, FLOPs
control, kill -9 and resume, and bad input."""

import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from test_data_train import write_criteo

from conftest import RKS, ROOT, read_back_calls, run_argv, run_rks, space_path
from rankitect_dsl import load_space
from rankitect_dsl.cli import main
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.constraints import FlopsObjective
from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch
from rankitect_dsl.search.inplace.policy import Policy

BLOCKS = str(ROOT / "spaces" / "rankitect_blocks.rks")


@pytest.fixture(scope="module")
def blocks():
    return load_space(BLOCKS)


def test_on_policy_reinforce_moves_mass_to_the_lower_reward(blocks):
    policy = Policy(blocks, lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(30):
        vectors = policy.sample(32, gen)
        policy.on_policy_step(vectors, rewards=(vectors[:, 0] != 2).astype(float))  # option 2 costs nothing
    p = policy.log_softmax().detach().exp()[0, :3]
    assert p[2] > 0.9


def test_off_policy_step_with_unchanged_policy_is_the_on_policy_step(blocks):
    # with θ = θ' every importance weight is 1, so Σ w/Σw (R - b) log P = mean (R - b) log P: Eq. 3
    a, b = Policy(blocks, lr=0.1), Policy(blocks, lr=0.1)
    with torch.no_grad():
        logits = torch.randn(a.logits.shape).masked_fill(a.logits.isinf(), -math.inf)
        a.logits.copy_(logits)
        b.logits.copy_(logits)
    vectors = a.sample(16, torch.Generator().manual_seed(1))
    rewards = np.linspace(0, 1, 16)
    old = a.log_prob(vectors).detach().numpy()
    a.on_policy_step(vectors, rewards)
    b.off_policy_step(vectors, rewards, old)
    assert torch.allclose(a.logits, b.logits)


def test_off_policy_weights_are_clipped_importance_ratios(blocks):
    policy = Policy(blocks, lr=0.1)
    vectors = policy.sample(4, torch.Generator().manual_seed(2))
    now = policy.log_prob(vectors).detach().numpy()
    # a sample far less likely under θ' than under θ gets the clip, 1e4; one equally likely gets 1
    old = now - np.array([0.0, 0.0, 50.0, 0.0])
    policy.logits.grad = None
    log_p = policy.log_prob(vectors)
    w = torch.exp(log_p.detach() - torch.as_tensor(old, dtype=torch.float32)).clamp_max(1e4)
    assert w.tolist() == pytest.approx([1.0, 1.0, 1e4, 1.0])


def test_sampled_archs_are_always_valid():
    space = load_space(space_path("rankitect"))
    policy = Policy(space, lr=0.1)
    with torch.no_grad():  # push every connection bit towards off: a plain draw leaves choices without inputs
        for i, d in enumerate(space.decisions):
            if d.kind == "input":
                policy.logits[i, :2] = torch.tensor([4.0, -4.0])
    vectors = policy.sample(64, torch.Generator().manual_seed(0))
    for v in vectors:
        space.validate(space.decode(v.tolist()))
    space.validate(space.decode(policy.most_likely().tolist()))


def test_one_flops_objective_keeps_each_methods_meaning():
    flops = np.array([50.0, 100.0, 200.0])
    # Eq. 7: Cost in multiples of the baseline's FLOPs (here 50), around a target of 100
    assert FlopsObjective(100.0, kind="l1", scale=50.0).cost(flops).tolist() == [1.0, 0.0, 2.0]
    assert FlopsObjective(100.0, kind="relu", scale=50.0).cost(flops).tolist() == [0.0, 0.0, 2.0]
    assert FlopsObjective(100.0, kind="relu", scale=50.0).relative_gap(200.0) == 1.0
    # the sampling searches' penalty: 0.05 · |F/c − 1|, and the cap
    sampling = FlopsObjective(100.0, cap=150.0)
    assert sampling.penalty(flops).tolist() == pytest.approx([0.025, 0.0, 0.05])
    assert sampling.allowed(flops).tolist() == [True, True, False]
    assert FlopsObjective().penalty(flops).tolist() == [0.0, 0.0, 0.0]
    # Eq. 9: E|F(a) − c| / c, differentiable in the expected FLOPs
    expected = torch.tensor([50.0, 300.0], requires_grad=True)
    reg = FlopsObjective(100.0, weight=2.0).cost(expected).mean()
    reg.backward()
    assert float(reg.detach()) == pytest.approx(1.25) and expected.grad.tolist() == pytest.approx([-0.005, 0.005])
    with pytest.raises(ValueError, match="unknown FLOPs penalty"):
        FlopsObjective(1.0, kind="l2")


def _search(space, tmp_path, **kw):
    examples = kw.pop("examples", 256 * 40)
    kw.setdefault("batch_size", 256)
    data = load_data("synthetic", space, examples)
    cfg = OneShotConfig(examples, kw.pop("target", float(space.flops(space.baseline))), **kw)
    return OneShotSearch(space, data, space.baseline, cfg, tmp_path / "s.pt", tmp_path / "s.jsonl")


def test_the_logged_reward_is_eqs_4_and_7(blocks, tmp_path):
    base = blocks.flops(blocks.baseline)
    search = _search(blocks, tmp_path, alpha=0.3, target=1.5 * base, warmup=0.25, rl_batch=4, replay_k=2)
    search.run()
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(40))
    assert any(r["all_on"] for r in records[:10]) and not any(r["all_on"] for r in records[10:])
    sampled = [r for r in records if not r["all_on"]]
    assert len(sampled) >= 30
    for r in sampled:
        flops = blocks.flops(blocks.decode(r["arch"]))
        assert r["flops_ratio"] == pytest.approx(flops / base)
        ne_pct = (r["ne_batch"] - r["ne_batch_baseline"]) / r["ne_batch_baseline"]
        assert r["ne_pct"] == pytest.approx(ne_pct)
        assert r["reward"] == pytest.approx(ne_pct + 0.3 * abs(flops / base - 1.5))
    # the policy learns only after the warm-up: 30 sampled steps at 4 per update, 1 + 2 updates each
    assert records[9]["policy_updates"] == 0 and records[-1]["policy_updates"] == 3 * (30 // 4)


@pytest.mark.slow
@pytest.mark.parametrize("multiple", [0.5, 2.0])
def test_flops_control_lands_near_the_target(blocks, tmp_path, multiple):
    base = blocks.flops(blocks.baseline)
    search = _search(blocks, tmp_path, examples=256 * 300, alpha=1.0, target=multiple * base, ne_weight=0.0, warmup=0.0)
    result = search.run()
    assert abs(result["flops"] / (multiple * base) - 1) <= 0.10, result["flops_ratio"]


def _oneshot_cmd(tmp_path, *extra):
    return [
        str(RKS), "search", BLOCKS, "--method", "oneshot", "--flops-target", "1x",
        "--examples", str(256 * 60), "--batch-size", "256", "--checkpoint-every", "5", "--retrain-seeds", "0", "--json",
        "--storage", f"sqlite:///{tmp_path}/s.db", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_where_it_stopped(tmp_path):
    uninterrupted = tmp_path / "a"
    uninterrupted.mkdir()
    whole = run_argv(_oneshot_cmd(uninterrupted))
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "b"
    killed.mkdir()
    proc = subprocess.Popen(_oneshot_cmd(killed), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 300
    while time.time() < deadline and not list(killed.glob("*.oneshot.pt")):
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    again = run_argv(_oneshot_cmd(killed))
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr
    first, second = json.loads(whole.stdout), json.loads(again.stdout)
    assert second["resumed_from"] and 0 < second["resumed_from"] < 60
    logs = [[json.loads(x) for x in open(r["log"])] for r in (first, second)]
    assert [r["step"] for r in logs[1]] == list(range(60))
    # the resumed run reads the same batches and draws the same archs as the uninterrupted one
    assert [r.get("arch") for r in logs[0]] == [r.get("arch") for r in logs[1]]
    assert second["best"]["arch"] == first["best"]["arch"]


def test_bad_input_is_one_line(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/s.db"
    day = tmp_path / "day.txt"
    write_criteo(day)
    (tmp_path / "nobase.rks").write_text(
        (ROOT / "spaces" / "tiny.rks").read_text().split("baseline hand")[0].rstrip() + "\n"
    )
    cases = [
        ([str(tmp_path / "nobase.rks"), "--flops-target", "1000"], "no baseline arch"),
        ([BLOCKS, "--flops-target", "1x", "--alpha", "-1"], "--alpha must be >= 0"),
        ([BLOCKS, "--flops-target", "1e12"], "no arch in space `rankitect_blocks` meets --flops-target"),
        ([BLOCKS, "--flops-target", "1x", "--data", "criteo:" + str(tmp_path / "none.txt")], "no such file"),
        ([space_path("tiny"), "--flops-target", "1x", "--data", f"criteo:{day}"], "13 dense and 26 categorical"),
        ([BLOCKS], "needs --flops-target"),
    ]
    base = ["search", "--method", "oneshot", "--examples", "512", "--storage", storage]
    proc = run_rks(*base, *cases[0][0])  # one through the installed command: no traceback, exit 1
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert cases[0][1] in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for args, message in cases[1:]:
        assert main([*base, *args]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.glob("*.oneshot.*"))


@pytest.mark.parametrize("blocks_name, production", [("rankitect_blocks", "dlrm"), ("ml100k_blocks", "ml100k_dlrm")])
def test_blocks_spaces_fix_the_production_connections(blocks_name, production):
    space, prod = load_space(space_path(blocks_name)), load_space(space_path(production))
    assert space.baseline.to_dict()["choices"] == prod.baseline.to_dict()["choices"]
    assert space.flops(space.baseline) == prod.flops(prod.baseline)
    for c, p in zip(space.spec.choices, prod.spec.choices):
        assert c.name == p.name and c.candidates == p.candidates and c.fixed_inputs
        assert len(c.blocks) >= 2  # one block is searched per choice
    assert {d.kind for d in space.decisions} == {"block", "dim"}  # no connection or pair decisions


def test_the_adapted_alpha_grows_while_gamma_misses_the_target_and_shrinks_while_it_holds(blocks, tmp_path):
    from rankitect_dsl.search.inplace import oneshot

    base = blocks.flops(blocks.baseline)
    search = _search(blocks, tmp_path, target=0.5 * base)  # alpha left to adapt
    gamma = blocks.flops(blocks.decode(search.policy.most_likely().tolist()))
    gap = abs(gamma / (0.5 * base) - 1)
    assert gap > oneshot.ALPHA_TOLERANCE and search.lam == oneshot.LAMBDA_START
    search.adapt_lambda()
    assert search.lam == pytest.approx(oneshot.LAMBDA_START * math.exp(oneshot.ALPHA_RATE * (gap - 0.05)))
    search.noise = [0.1, -0.1, 0.3, -0.3]
    assert search.alpha == pytest.approx(search.lam * np.std(search.noise) / search.cost_spread)
    held = _search(blocks, tmp_path / "held", target=float(gamma))  # γ(θ) on the target: gap 0
    held.adapt_lambda()
    assert held.lam == pytest.approx(oneshot.LAMBDA_START * math.exp(-oneshot.ALPHA_RATE * 0.05))
    fixed = _search(blocks, tmp_path / "fixed", target=0.5 * base, alpha=0.3)
    fixed.pending = [(v, (0.0, 1.0), 0.0) for v in fixed.policy.sample(16, torch.Generator().manual_seed(0))]
    fixed.update_policy()
    assert fixed.alpha == 0.3 and fixed.lam == oneshot.LAMBDA_START  # a given alpha is held


def test_the_cost_spread_is_that_of_uniform_draws(blocks, tmp_path):
    base = blocks.flops(blocks.baseline)
    search = _search(blocks, tmp_path, target=base)
    archs = blocks.sample_many(3000, 5)
    spread = np.std([abs(blocks.flops(a) / base - 1) for a in archs])
    assert search.cost_spread == pytest.approx(spread, rel=0.1)


def test_replayed_rewards_are_scored_with_the_alpha_of_the_update(blocks, tmp_path):
    search = _search(blocks, tmp_path, target=blocks.flops(blocks.baseline))
    terms = np.array([[0.01, 0.5], [-0.02, 0.1]])
    search.noise, search.lam = [1.0, -1.0], 2.0 * search.cost_spread  # alpha = lam * 1 / spread = 2
    assert search.rewards(terms) == pytest.approx([1.01, 0.18])


def test_a_step_reads_back_twice(blocks, tmp_path, monkeypatch):
    """Between checkpoints a one-shot step reads the device back twice: the drawn arch (the host builds its
    subnet) and, in one transfer, both NEs, the draw's log-probability and the entropy (the reward the
    policy learns from). Counted as the difference between 40 and 80 steps; policy updates add a little."""
    counts = []
    for steps in (40, 80):
        calls = read_back_calls(monkeypatch)
        _search(blocks, tmp_path / str(steps), examples=steps * 64, batch_size=64).run()
        counts.append(len(calls))
        monkeypatch.undo()
    assert (counts[1] - counts[0]) / 40 <= 2.1, counts
