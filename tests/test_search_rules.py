"""The search's decision rules, checked with a proxy whose scores are known in advance: successive halving,
the FLOPs cap and target, the study's identity, what `--export` writes, and the weight-sharing schedule."""

import json
import subprocess
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import run_argv, run_rks, search_cmd, space_path
from rankitect_dsl.search.sampling.loop import Search, SearchConfig
from rankitect_dsl.search.sampling.predictor import Predictor
from rankitect_dsl.search.sampling.rl_sampler import PredictorProposer
from rankitect_dsl.search.store.study import HALVING, StudyStore


class ScriptedProxy:
    """Scores an arch by a fixed function of its JSON, so the test knows the ranking at every budget; with
    `reverse`, budgets above the search's own reverse the ranking (what looked best on little data is worst)."""

    def __init__(self, space, reverse=False):
        self.space, self.reverse, self.calls = space, reverse, []

    def value(self, arch, examples):
        base = (sum(map(ord, arch.to_json())) % 997) / 997
        return 1 - base if self.reverse and examples > 500 else base

    def __call__(self, arch, examples):
        self.calls.append((arch.to_json(), examples))
        return SimpleNamespace(
            window_ne=self.value(arch, examples),
            examples=examples,
            seconds=0.0,
            extra={"flops": self.space.flops(arch), "params": self.space.params(arch)},
        )


def run_search(space, tmp_path, proxy, **cfg):
    store = StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
    return Search(space, proxy, store, SearchConfig("random", progress=False, proxy_examples=500, **cfg)).run(), store


def test_successive_halving_keeps_the_best_half_per_rung_at_double_the_examples(spaces, tmp_path):
    space = spaces["tiny"]
    proxy = ScriptedProxy(space, reverse=True)
    summary, store = run_search(space, tmp_path, proxy, budget=8, halving=4)
    done = sorted(store.completed(), key=lambda t: t.value)
    finalists = [t.user_attrs["arch"] for t in done[:4]]
    from rankitect_dsl import Arch

    rung1 = sorted(finalists, key=lambda k: proxy.value(Arch.from_json(k), 1000))[:2]
    winner = min(rung1, key=lambda k: proxy.value(Arch.from_json(k), 2000))
    halving = store.completed(HALVING)
    assert (
        sorted((t.user_attrs["rung"], t.user_attrs["examples"]) for t in halving) == [(1, 1000)] * 4 + [(2, 2000)] * 2
    )
    assert {t.user_attrs["arch"] for t in halving if t.user_attrs["rung"] == 2} == set(rung1)
    assert json.dumps(summary["best"]["arch"]) == json.dumps(json.loads(winner))
    # the reversed ranking at larger budgets makes the last finalist win: halving, not round 1, decided it
    assert winner == finalists[3]


def test_flops_cap_and_target_shape_the_candidates_and_their_scores(spaces, tmp_path):
    """The cap sits at the median FLOPs of the sampler, so it binds: about half the random archs break it."""
    space = spaces["tiny"]
    base = space.flops(space.baseline)
    cap = float(sorted(space.flops_many(space.sample_many(201, seed=0)))[100])
    summary, store = run_search(space, tmp_path, ScriptedProxy(space), budget=10, flops_cap=cap, flops_target=base)
    assert len(store.completed()) == 10
    for t in store.completed():
        flops = t.user_attrs["flops"]
        assert flops <= cap
        assert t.value == pytest.approx(t.user_attrs["window_ne"] + 0.05 * abs(flops / base - 1))


@pytest.mark.slow
def test_a_study_refuses_another_space_method_or_data(tmp_path):
    db = f"sqlite:///{tmp_path}/id.db"
    common = ["--budget", "1", "--proxy-examples", "500", "--retrain-seeds", "0", "--storage", db, "--study", "s"]
    first = run_rks("search", space_path("tiny"), "--method", "random", "--data", "synthetic:1", *common)
    assert first.returncode == 0, first.stderr[-400:]
    for args, key in [
        (["--method", "predictor", "--data", "synthetic:1"], "method"),
        (["--method", "random", "--data", "synthetic:2"], "data"),
    ]:
        proc = run_rks("search", space_path("tiny"), *args, *common)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr and f"started with {key}" in proc.stderr
    other = run_rks("search", space_path("dlrm"), "--method", "random", "--data", "synthetic:1", *common)
    assert other.returncode == 1 and "started with space" in other.stderr


@pytest.mark.slow
def test_export_writes_the_best_trial(tmp_path):
    db = tmp_path / "e.db"
    cmd = search_cmd(db, 4, "--export", tmp_path / "out", examples=600)
    proc = run_argv(cmd, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-400:]
    store = StudyStore(f"sqlite:///{db}", "s")
    best = min(store.completed(), key=lambda t: t.value)
    written = json.loads((tmp_path / "out" / "best_arch.json").read_text())
    assert written == json.loads(best.user_attrs["arch"])
    assert (tmp_path / "out" / "tiny_best.py").exists()


def test_weight_sharing_pretraining_follows_its_schedule(spaces, monkeypatch):
    """All masks on for the first 10% of pretraining batches; then a sampled subnet with probability 0.75."""
    from rankitect_dsl.data.loading import load_data
    from rankitect_dsl.search.sampling import proxies

    space = spaces["tiny"]
    data = load_data("synthetic:1", space, 100 * 64)
    seen = []
    real_train = proxies.train

    def spy(model, data_, cfg, forward=None, evaluate=True):
        def wrapped(m, dense, cats, step):
            out = forward(m, dense, cats, step)
            seen.append(step)
            return out

        return real_train(model, data_, cfg, forward=wrapped if forward else None, evaluate=evaluate)

    calls = []
    monkeypatch.setattr(proxies, "train", spy)
    original = type(space).sample
    monkeypatch.setattr(type(space), "sample", lambda self, seed=0: calls.append(len(seen)) or original(self, seed))
    proxies.WeightSharingProxy(space, data, 100 * 64, batch_size=64)
    assert len(seen) == 100
    sampled_steps = set(calls)
    assert not sampled_steps & set(range(10))
    share = len(sampled_steps) / 90
    assert 0.6 < share < 0.9, share


def test_a_dead_worker_with_an_impossible_pid_is_recovered_without_hanging(spaces, tmp_path):
    from rankitect_dsl.search.store.study import CANDIDATE

    space = spaces["tiny"]
    store = StudyStore(f"sqlite:///{tmp_path}/r.db", "r")
    arch = space.sample(5)
    trial, _ = store.start(
        {"arch": arch.to_json(), "vector": space.encode(arch), "role": CANDIDATE, "round": 0, "examples": 500}
    )
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    trial.set_user_attr("pid", pid_max + 1)  # never a live process
    search = Search(space, ScriptedProxy(space), store, SearchConfig("random", 2, proxy_examples=500, progress=False))
    worker = threading.Thread(target=search.run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the search hung on the dead worker's trial"
    assert arch.to_json() in {t.user_attrs["arch"] for t in store.completed()}


@pytest.mark.slow
def test_the_readme_main_job_runs_end_to_end(tmp_path):
    """The README's first command, after its install steps, run as written (in a scratch folder that sees
    the shipped spaces): it compiles, searches, prints the winner and writes the winner's source."""
    import os
    import re
    import sys
    from pathlib import Path

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```\n(.*?)\n```", readme, re.S).group(1)
    job = first.split("pip install -e . && ", 1)[1]
    (tmp_path / "spaces").symlink_to(ROOT / "spaces")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", job], cwd=tmp_path, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "winner" in proc.stdout
    winner = list((tmp_path / "build" / "winner").glob("*_best.py"))
    assert len(winner) == 1 and "class RankitectSubnet" in winner[0].read_text()
    assert (tmp_path / "build" / "rankitect_supernet.py").exists()


def test_predictor_search_counts_the_flops_penalty_once(spaces, tmp_path, monkeypatch):
    """The trial value already holds window NE + penalty; the RL sampler adds the exact penalty to the
    predictor's output, so the predictor must learn window NE alone (fitted on the value, the penalty
    would count twice)."""
    space = spaces["tiny"]
    fitted = []
    original_fit = Predictor.fit

    def spy(self, vectors, values):
        fitted.append(np.asarray(values, dtype=float).copy())
        return original_fit(self, vectors, values)

    monkeypatch.setattr(Predictor, "fit", spy)
    store = StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
    cfg = SearchConfig("predictor", budget=8, round_size=4, progress=False, proxy_examples=500)
    cfg.flops_target = float(space.flops(space.baseline)) / 3
    Search(space, ScriptedProxy(space), store, cfg, PredictorProposer()).run()
    assert fitted, "the predictor round never ran"
    done = store.completed()
    ne = np.array([t.user_attrs["window_ne"] for t in done])
    values = np.array([t.value for t in done])
    assert (values - ne > 1e-6).all(), "the target should put a penalty on every arch"
    first_round = sorted(done, key=lambda t: t.number)[: len(fitted[0])]
    assert np.allclose(fitted[0], [t.user_attrs["window_ne"] for t in first_round])
