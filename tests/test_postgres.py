"""A study shared on a real PostgreSQL server (`.ci/run` starts one on loopback and sets RKS_TEST_POSTGRES_URL):
workers die without a word, and Optuna's heartbeats, not a pid on this host, find their trials."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from conftest import ROOT, space_path
from rankitect_dsl import Arch, load_space
from rankitect_dsl.search.store.study import BASELINE, CANDIDATE, StudyStore

URL = os.environ.get("RKS_TEST_POSTGRES_URL")


def _reachable(url):
    """None when a server answers at `url`, else why not."""
    if not url:
        return "no PostgreSQL server: set RKS_TEST_POSTGRES_URL (.ci/run starts one with `.ci/postgres start DIR`)"
    try:
        import sqlalchemy

        with sqlalchemy.create_engine(url).connect():
            return None
    except Exception as err:  # the driver missing, the server down: either way, nothing to test against
        return f"PostgreSQL at {url} does not answer: {str(err).splitlines()[0]}"


pytestmark = [pytest.mark.multiproc, pytest.mark.skipif(_reachable(URL) is not None, reason=str(_reachable(URL)))]


def _cmd(study, *extra):
    return [
        str(Path(sys.executable).parent / "rks"), "search", space_path("tiny"), "--method", "random", "--budget", "6",
        "--round-size", "3", "--proxy-examples", "4000", "--proxy-repeats", "6", "--data", "synthetic:3",
        "--storage", URL, "--study", study, "--heartbeat", "1", "--retrain-seeds", "0", "--json", *extra,
    ]  # fmt: skip


def _running_trial_of(study, pid):
    import optuna

    try:
        trials = optuna.load_study(study_name=study, storage=URL).get_trials(deepcopy=False)
    except KeyError:  # the worker has not created the study yet
        return None
    for t in trials:
        if t.state.name == "RUNNING" and t.user_attrs.get("pid") == pid:
            return t.number
    return None


def test_two_workers_finish_every_trial_once_and_retry_the_one_a_killed_worker_held():
    study = f"pg-{uuid.uuid4().hex[:8]}"
    victim = subprocess.Popen(
        _cmd(study), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        env=dict(os.environ, RKS_SEARCH_WORKER="1"),
    )  # fmt: skip
    deadline, killed = time.time() + 120, None
    while time.time() < deadline and killed is None and victim.poll() is None:
        killed = _running_trial_of(study, victim.pid)
        time.sleep(0.05)
    assert killed is not None, victim.stderr.read().decode()[-1000:]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    proc = subprocess.run(_cmd(study, "--jobs", "2"), capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["evaluated"] == 6

    store = StudyStore(URL, study)
    trials = store.trials()
    states = Counter(t.state.name for t in trials)
    assert states["RUNNING"] == 0 and states["WAITING"] == 0  # nothing left behind
    dead = next(t for t in trials if t.number == killed)
    assert dead.state.name == "FAIL"
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed]  # Optuna's heartbeat callback
    assert retry.state.name == "COMPLETE" and retry.user_attrs["retry_of"] == killed
    assert retry.user_attrs["arch"] == dead.user_attrs["arch"] and retry.user_attrs["pid"] != victim.pid
    space = load_space(space_path("tiny"))
    done = store.completed(CANDIDATE)
    keys = Counter(space.subnet_key(Arch.from_json(t.user_attrs["arch"])) for t in done)
    assert len(done) == 6 and max(keys.values()) == 1  # every candidate once, none twice
    assert len(store.completed(BASELINE)) == 1
    # which of the two workers took which trial is the server's race: the retry above, by a live worker, is
    # what must hold
