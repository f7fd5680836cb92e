"""Sampling-based search: the study store's kill-and-resume and sharing, the predictor, proxies, bad input."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
import sqlalchemy.exc
import torch

from conftest import run_argv, run_rks, search_cmd, space_path
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.constraints import FlopsObjective, flops_range, parse_flops, valid_mask
from rankitect_dsl.search.sampling.pareto import pareto
from rankitect_dsl.search.sampling.predictor import Predictor
from rankitect_dsl.search.sampling.proxies import WeightSharingProxy
from rankitect_dsl.search.sampling.rl_sampler import centre_shares, rl_propose


def trials(db):
    """The study's trials, read through the store's own opening, which waits while a starting search is still
    creating the tables (reading beside it raced Optuna's schema creation: `UNIQUE constraint failed`)."""
    from rankitect_dsl.search.store.study import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{db}")).get_trials(deepcopy=False)


def candidates(db, state):
    return [t for t in trials(db) if t.user_attrs.get("role") == "candidate" and t.state == state]


@pytest.mark.slow
def test_kill_and_resume_loses_nothing_and_reruns_nothing(tmp_path):
    db = tmp_path / "study.db"
    # slow evaluations (20k examples) leave a wide window in which a candidate is running
    proc = subprocess.Popen(
        search_cmd(db, 5, examples=20000), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300  # generous: a loaded machine trains slowly
    S = optuna.trial.TrialState
    try:
        while time.time() < deadline:
            time.sleep(0.1)
            assert proc.poll() is None, "the search ended before it could be killed"
            if not db.exists():
                continue
            try:
                done, running = candidates(db, S.COMPLETE), candidates(db, S.RUNNING)
            except (KeyError, sqlalchemy.exc.OperationalError):  # the study or its tables are being created
                continue
            if len(done) >= 2 and running:
                break
        else:
            pytest.fail("the search never reached two finished candidates")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    before = {t.number: (t.user_attrs["arch"], t.value) for t in candidates(db, S.COMPLETE)}
    interrupted = [t.number for t in candidates(db, S.RUNNING)]
    assert before and interrupted
    done = run_argv(search_cmd(db, 5, examples=20000), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-500:]
    after = candidates(db, S.COMPLETE)
    assert len(after) == 5
    # nothing finished was lost or re-run: the same trials, values and archs, each arch evaluated once
    for number, (arch, value) in before.items():
        match = [t for t in after if t.number == number]
        assert match and match[0].value == value and match[0].user_attrs["arch"] == arch
    assert len({t.user_attrs["arch"] for t in after}) == len(after)
    # the interrupted trial was marked failed and its arch retried
    all_trials = trials(db)
    for number in interrupted:
        assert all_trials[number].state == S.FAIL
        retried = [t for t in after if t.user_attrs.get("retry_of") == number]
        assert retried and retried[0].user_attrs["arch"] == all_trials[number].user_attrs["arch"]


@pytest.mark.multiproc
def test_two_workers_share_one_study(tmp_path):
    db = tmp_path / "shared.db"
    # create the study first so both workers find it
    first = run_argv(search_cmd(db, 1), cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-500:]
    workers = [
        subprocess.Popen(search_cmd(db, 8), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-400:] for o in outs]
    done = candidates(db, optuna.trial.TrialState.COMPLETE)
    assert 8 <= len(done) <= 9
    assert len({t.user_attrs["arch"] for t in done}) == len(done)
    pids = {t.user_attrs["pid"] for t in done if t.number > 1}
    assert {w.pid for w in workers} <= pids


def test_predictor_learns_and_rl_sampler_respects_cap_and_exclusions(spaces):
    from rankitect_dsl.search.sampling.predictor import one_hot

    space = spaces["tiny"]
    archs = space.sample_many(300, seed=0)
    vectors = np.array([space.encode(a) for a in archs])
    weights = np.random.default_rng(5).normal(0, 1, one_hot(space, vectors[:1]).shape[1])
    subnet_codes = one_hot(space, vectors, space.relevance(vectors)).numpy()
    target = subnet_codes @ weights  # a hidden linear function of the decisions that shape the subnet
    predictor = Predictor(space, epochs=300, members=3).fit(vectors[:200], target[:200])
    held = predictor.predict(vectors[200:], optimistic=False)
    assert np.corrcoef(held, target[200:])[0, 1] > 0.9
    flops = space.flops_many(vectors).astype(float)
    cap = float(np.median(flops))
    exclude = {space.subnet_key(a) for a in archs[:20]}
    proposals = rl_propose(space, predictor, FlopsObjective(cap=cap), set(exclude), 5, np.random.default_rng(0))
    assert len(proposals) == 5
    for arch in proposals:
        assert space.flops(arch) <= cap and space.subnet_key(arch) not in exclude
        space.validate(arch)
    # the policy minimises the predicted value: its picks score better than random archs on the hidden function
    picked_vectors = np.array([space.encode(a) for a in proposals])
    picked = one_hot(space, picked_vectors, space.relevance(picked_vectors)).numpy() @ weights
    assert picked.mean() < target.mean() - 0.5 * target.std()


@pytest.mark.parametrize("name", ["tiny", "rankitect"])
def test_relevance_marks_exactly_the_decisions_that_change_the_subnet(spaces, name):
    """Brute force: flip each decision of sampled archs to every other value; the subnet (its key, and
    its exported source) changes exactly when the decision is marked relevant."""
    space = spaces[name]
    vectors = np.array([space.encode(a) for a in space.sample_many(12, seed=4)])
    relevant = space.relevance(vectors)
    checked = 0
    for vector, row in zip(vectors, relevant):
        before = space.decode(vector)
        for i, d in enumerate(space.decisions):
            for value in range(d.size):
                if value == vector[i]:
                    continue
                flipped = vector.copy()
                flipped[i] = value
                if not valid_mask(space, flipped)[0]:
                    continue
                after = space.decode(flipped)
                assert (space.subnet_key(after) != space.subnet_key(before)) == row[i], space.decisions[i].name
                checked += 1
    assert checked > 100 and 0 < relevant.mean() < 1
    # archs that differ only in irrelevant decisions export the same source
    exported = 0
    for vector, row in zip(vectors, relevant):
        for i in np.flatnonzero(~row):
            flipped = vector.copy()
            flipped[i] = (vector[i] + 1) % space.decisions[i].size
            a, b = space.decode(vector), space.decode(flipped) if valid_mask(space, flipped)[0] else None
            if b is not None and a != b:
                assert space.subnet_source(a) == space.subnet_source(b)
                exported += 1
                break
    assert exported >= 1


def test_rl_sampler_centred_on_the_incumbent_stays_near_it(spaces):
    """Untrained (zero steps) and ranked by a predictor that is pure noise, the centred policy changes about
    `mutations` of the incumbent's relevant decisions per proposal (at least one: the proposals are new
    subnets, none the incumbent's)."""
    space = spaces["rankitect"]
    incumbent = np.array(space.encode(space.sample(11)))
    relevant = space.relevance([incumbent])[0]
    noise = np.random.default_rng(1)
    blind = SimpleNamespace(predict=lambda v, cost=None: noise.random(len(v)))
    proposals = rl_propose(
        space,
        blind,
        FlopsObjective(),
        {space.subnet_key(space.decode(incumbent))},
        40,
        np.random.default_rng(0),
        steps=0,
        incumbent=incumbent,
        mutations=2.0,
    )
    assert len(proposals) == 40
    changed = [int(((np.array(space.encode(a)) != incumbent) & relevant).sum()) for a in proposals]
    assert all(c >= 1 for c in changed) and 1.5 <= np.mean(changed) <= 3.5
    far = [int((np.array(space.encode(a)) != incumbent)[relevant].sum()) for a in space.sample_many(40, seed=2)]
    assert np.mean(far) > 5 * np.mean(changed)


@pytest.mark.parametrize(
    "n, evaluated, shares",
    [(8, 8, [4, 2, 2]), (7, 9, [4, 2, 1]), (3, 5, [2, 1]), (5, 1, [5]), (1, 4, [1]), (6, 2, [3, 3])],
)
def test_round_proposals_are_split_over_the_best_archs(n, evaluated, shares):
    assert centre_shares(n, evaluated) == shares


def test_valid_mask_flags_all_connections_off(spaces):
    space = spaces["tiny"]
    vec = space.encode(space.baseline)
    bad = list(vec)
    for i, d in enumerate(space.decisions):
        if d.choice == "c1" and d.kind == "input":
            bad[i] = 0
    assert valid_mask(space, [vec, bad]).tolist() == [True, False]


def test_weight_sharing_proxy_does_not_write_back(spaces):
    space = spaces["tiny"]
    data = load_data("synthetic:1", space, 4000)
    proxy = WeightSharingProxy(space, data, pretrain_examples=2000)
    before = {k: v.clone() for k, v in proxy.model.state_dict().items()}
    result = proxy(space.sample(3), 1000)
    assert 0 < result.window_ne < 2
    assert all(torch.equal(before[k], v) for k, v in proxy.model.state_dict().items())


@pytest.mark.slow
def test_weight_sharing_search_runs(tmp_path):
    proc = run_rks(
        "search",
        space_path("tiny"),
        "--method",
        "predictor",
        "--proxy",
        "weight-sharing",
        "--data",
        "synthetic:2",
        "--budget",
        "4",
        "--proxy-examples",
        "1000",
        "--pretrain-examples",
        "3000",
        "--storage",
        f"sqlite:///{tmp_path}/ws.db",
        "--json",
        "--export",
        tmp_path / "out",
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        out["evaluated"] == 4
        and (tmp_path / "out" / "tiny_best.py").exists()
        and (tmp_path / "out" / "pareto.png").exists()
    )
    assert (tmp_path / "ws.supernet.pt").exists() is False  # the checkpoint is named after the study
    assert list(tmp_path.glob("*.supernet.pt"))


def test_pareto_front():

    def t(n, f, ne):
        return SimpleNamespace(number=n, user_attrs={"flops": f, "window_ne": ne})

    front = pareto([t(0, 100, 0.9), t(1, 50, 0.95), t(2, 200, 0.85), t(3, 150, 0.92), t(4, 60, 0.99)])
    assert [p["trial"] for p in front] == [1, 0, 2]


def test_relative_flops_and_range(spaces):
    space = spaces["rankitect"]
    assert parse_flops("2.5x", space, "--flops-max") == 2.5 * space.flops(space.baseline)
    low, high = flops_range(spaces["tiny"], samples=300)
    all_flops = spaces["tiny"].flops_many(spaces["tiny"].sample_many(3000, seed=9))
    assert low <= all_flops.min() and high >= all_flops.max()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "annealing"], "invalid choice"),
        (["--method", "random", "--flops-max", "3"], "no arch in space `tiny` meets --flops-max"),
        (["--method", "random", "--flops-target", "10x"], "meets --flops-target"),
        (["--method", "random", "--storage", "bogus://nowhere"], "cannot open storage"),
        (["--method", "random", "--data", "criteo:/no/such/file"], "no such file"),
    ],
)
def test_bad_search_input_is_one_clean_line(args, message, tmp_path):
    proc = run_rks(
        "search",
        space_path("tiny"),
        "--budget",
        "2",
        "--data",
        "synthetic:1",
        *args,
        *([] if "--storage" in args else ["--storage", f"sqlite:///{tmp_path}/b.db"]),
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert message in proc.stderr


def test_data_that_does_not_fit_is_refused(tmp_path):
    crit = tmp_path / "c.txt"
    crit.write_text("".join("\t".join(["0"] + ["1"] * 13 + ["a"] * 26) + "\n" for _ in range(20)))
    proc = run_rks(
        "search",
        space_path("tiny"),
        "--method",
        "random",
        "--budget",
        "2",
        "--data",
        f"criteo:{crit}",
        "--storage",
        f"sqlite:///{tmp_path}/d.db",
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "dense[4]" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_study_show(tmp_path):
    db = tmp_path / "show.db"
    assert run_argv(search_cmd(db, 3), cwd=tmp_path).returncode == 0
    proc = run_rks("study", "show", f"sqlite:///{db}")
    assert proc.returncode == 0 and "study s:" in proc.stdout and "baseline" in proc.stdout
    assert len([l for l in proc.stdout.splitlines() if l.strip()[:1].isdigit()]) == 3


def test_kendall_tau_equals_scipy():
    from scipy.stats import kendalltau

    from rankitect_dsl.search.sampling.proxy_study import kendall_tau

    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 40).astype(float), rng.integers(0, 6, 40).astype(float)
    assert abs(kendall_tau(x, y) - kendalltau(x, y).statistic) < 1e-12


def test_early_stop_proxy_decays_its_rate_over_its_own_budget_as_the_final_trainer(spaces, monkeypatch):
    """The proxy trains as the final retrain does, only shorter: the body rate falls linearly to zero over the
    proxy's budget (a constant rate ranked archs for a trainer nobody ships)."""
    from rankitect_dsl.runtime import engine as trainer
    from rankitect_dsl.search.sampling.proxies import early_stop_proxy

    rates = []
    real = trainer.logloss_step

    def spy(optimizers, logits, labels):
        rates.append(optimizers[0].param_groups[0]["lr"])
        real(optimizers, logits, labels)

    monkeypatch.setattr(trainer, "logloss_step", spy)
    space = spaces["tiny"]
    data = load_data("synthetic:4", space, 3000)
    early_stop_proxy(space, space.sample(1), data, 1024, batch_size=128, lr=0.01)
    assert rates == pytest.approx([0.01 * (1 - k / 8) for k in range(8)])


@pytest.mark.slow
def test_cli_proxy_study(tmp_path):
    proc = run_rks(
        "proxy-study",
        space_path("tiny"),
        "--data",
        "synthetic:1",
        "--models",
        "4",
        "--examples",
        "1500",
        "--budgets",
        "500,1000",
        "--plot",
        tmp_path / "ps.png",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-400:]
    out = json.loads(proc.stdout)
    assert [r["budget"] for r in out["rows"]] == [500, 1000] and len(out["final_val_ne"]) == 4
    assert all(-1 <= r["early_stop_tau"] <= 1 for r in out["rows"])
    assert (tmp_path / "ps.png").read_bytes()[:4] == b"\x89PNG"


def test_a_dead_workers_last_trial_is_retried_by_the_finishing_worker(tmp_path, spaces):
    from rankitect_dsl.search.sampling.loop import Search, SearchConfig
    from rankitect_dsl.search.sampling.proxies import EarlyStopProxy
    from rankitect_dsl.search.store.study import CANDIDATE, StudyStore

    space = spaces["tiny"]
    data = load_data("synthetic:1", space, 600)
    store = StudyStore(f"sqlite:///{tmp_path}/r.db", "r")
    cfg = SearchConfig("random", 2, proxy_examples=600, progress=False)
    Search(space, EarlyStopProxy(space, data), store, cfg).run()
    # a worker that died while evaluating the third candidate: a pid no process can have
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1
    arch = next(
        a
        for a in space.sample_many(50, seed=99)
        if a.to_json() not in {t.user_attrs["arch"] for t in store.completed()}
    )
    trial, _ = store.start(
        {"arch": arch.to_json(), "vector": space.encode(arch), "role": CANDIDATE, "round": 1, "examples": 600}
    )
    trial.set_user_attr("pid", dead_pid)
    Search(
        space, EarlyStopProxy(space, data), store, SearchConfig("random", 3, proxy_examples=600, progress=False)
    ).run()
    done = store.completed()
    assert len(done) == 3 and arch.to_json() in {t.user_attrs["arch"] for t in done}
    assert not store.pending(role=None)
