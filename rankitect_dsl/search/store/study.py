"""Candidates live in an Optuna study (ask/tell): SQLite by default, Optuna's journal file
(`journal:PATH`, for several worker processes on one host) or any Optuna RDB URL (PostgreSQL, MySQL), so a
killed search resumes and several worker processes share one study.

Each trial carries the arch (JSON), its flat vector, its role (candidate, baseline, halving), and the
pid and host of the worker evaluating it. A RUNNING trial whose worker is gone was interrupted: it is marked
FAIL and its arch is enqueued again, so it is retried and nothing finished is re-run. On a database server
(PostgreSQL, MySQL) the workers may sit on several hosts, so Optuna's heartbeats decide: a worker beats for
its running trial every `heartbeat` seconds, and a trial silent for `HEARTBEAT_GRACE` beats is failed by
whichever worker looks next and re-created WAITING by Optuna's `RetryHeartbeatStaleTrialCallback`. On a
journal or SQLite file (one host) a dead pid on this host decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import warnings
from typing import Optional

from ...core.errors import RksError

CANDIDATE, BASELINE, HALVING = "candidate", "baseline", "halving"
GAMMA = "gamma"  # an in-place search's γ(θ) at one of its checkpoints
FIT = "fit"  # a local search's (arch, seed) trained by the final trainer on the rows before the slice


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


JOURNAL = "journal:"  # Optuna's JournalStorage on a file: several processes on one host, no database
HEARTBEAT_SECONDS = 10  # a worker's beat on a database store, by default
HEARTBEAT_GRACE = 3  # beats a running trial may miss before it counts as its worker's death
HEARTBEAT_RETRIES = 3  # times one trial is retried after its worker died


def beats(url: str) -> bool:
    """Whether a store keeps heartbeats: a database server's, where workers on other hosts have no pid here."""
    return not url.startswith(("sqlite", JOURNAL))


def store_file(url: str) -> Optional[str]:
    """The file a store lives in (SQLite or a journal), None for a database server."""
    for prefix in ("sqlite:///", JOURNAL):
        if url.startswith(prefix):
            return url[len(prefix) :]
    return None


def open_storage(url: str, heartbeat: Optional[float] = None):
    """`journal:PATH`: Optuna's journal on a file (appends under a file lock, safe for several processes on
    one host). Otherwise an Optuna RDB storage, with Optuna's heartbeats every `heartbeat` seconds when
    given on a database server (`beats`). Creating a store's tables is not safe when several workers start at once
    (Optuna's schema creation races: `UNIQUE constraint failed: alembic_version.version_num`), so on SQLite it
    runs under an exclusive lock on the store's folder, and elsewhere it is retried."""
    optuna = _optuna()
    if url.startswith(JOURNAL):
        return _journal(optuna, url[len(JOURNAL) :])
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    beating = {}
    folder = None
    if url.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(url[len("sqlite:///") :]))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise RksError(f"cannot open storage `{url}`: {err.strerror}") from None
    if heartbeat is not None and beats(url):
        with warnings.catch_warnings():  # the retry callback is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=HEARTBEAT_RETRIES)
        beat = max(1, round(heartbeat))
        beating = dict(
            heartbeat_interval=beat, grace_period=HEARTBEAT_GRACE * beat, heartbeat_stale_trial_callback=retry
        )
    for attempt in range(5):
        try:
            with _exclusive(folder):
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beating)
        except Exception as err:  # SQLAlchemy and driver errors: all mean an unusable URL, but for the race
            if ("UNIQUE constraint" in str(err) or "already exists" in str(err)) and attempt < 4:
                time.sleep(0.2 * (attempt + 1))
                continue
            raise RksError(f"cannot open storage `{url}`: {str(err).splitlines()[0]}") from None
    raise RksError(f"cannot open storage `{url}`: its tables were still being created after 5 tries")


def _journal(optuna, path: str):
    from optuna.storages.journal import JournalFileBackend

    if not path:
        raise RksError("cannot open storage `journal:`: give a file, like journal:runs/study.journal")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    except OSError as err:
        raise RksError(f"cannot open storage `{JOURNAL}{path}`: {err.strerror}") from None


@contextlib.contextmanager
def _exclusive(folder: Optional[str]):
    """Hold an exclusive flock on `folder` (nothing to hold for a server database, None)."""
    if folder is None:
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HeartbeatThread:
    """Beats for one running trial until stopped: Optuna's `record_heartbeat`, which `study.optimize` calls from
    its own thread, here for the ask/tell loop."""

    def __init__(self, storage, trial_id: int, interval: float):
        self.stopped = threading.Event()
        storage.record_heartbeat(trial_id)
        self.thread = threading.Thread(target=self._beat, args=(storage, trial_id, interval), daemon=True)
        self.thread.start()

    def _beat(self, storage, trial_id: int, interval: float) -> None:
        while not self.stopped.wait(interval):
            storage.record_heartbeat(trial_id)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


class StudyStore:
    def __init__(self, url: str, name: str, meta: Optional[dict] = None, heartbeat: Optional[float] = None):
        optuna = _optuna()
        self.optuna = optuna
        self.storage = open_storage(url, heartbeat)
        self.heartbeat = heartbeat if heartbeat is not None and beats(url) else None
        self._beating: dict = {}  # trial number → its HeartbeatThread
        self.url = url
        self.study = optuna.create_study(
            study_name=name, storage=self.storage, direction="minimize", load_if_exists=True
        )
        self.name = name
        if meta:
            existing = self.study.user_attrs
            for key, value in meta.items():
                if key in existing and existing[key] != value:
                    raise RksError(
                        f"study `{name}` in {url} was started with {key} = {existing[key]!r}, not {value!r}; "
                        f"use another --study name"
                    )
            for key, value in meta.items():
                if key not in existing:
                    self.study.set_user_attr(key, value)

    def record_run(self, space, command: str, seconds: float, examples: int, summary: dict, train_flags: list) -> None:
        """What a report needs beyond the trials: the space's source, how the search was run, its cost, its
        result, and the data flags that make `rks train` rebuild its data. Runs of a resumed study add up;
        the latest summary wins."""
        attrs = self.study.user_attrs
        self.study.set_user_attr("train_flags", train_flags)
        self.study.set_user_attr("space_file", space.path)
        self.study.set_user_attr("space_source", space.source)
        self.study.set_user_attr("commands", [*attrs.get("commands", []), command])
        self.study.set_user_attr("wall_seconds", attrs.get("wall_seconds", 0.0) + seconds)
        self.study.set_user_attr("pretrain_examples", attrs.get("pretrain_examples", 0) + examples)
        self.study.set_user_attr("summary", summary)

    @property
    def meta(self) -> dict:
        return dict(self.study.user_attrs)

    def trials(self, role: Optional[str] = None, states=None) -> list:
        out = self.study.get_trials(deepcopy=False, states=states)
        return [t for t in out if role is None or t.user_attrs.get("role") == role]

    def completed(self, role: str = CANDIDATE) -> list:
        return self.trials(role, (self.optuna.trial.TrialState.COMPLETE,))

    def pending(self, role: Optional[str] = CANDIDATE) -> list:
        S = self.optuna.trial.TrialState
        return self.trials(role, (S.RUNNING, S.WAITING))

    def waiting(self) -> list:
        return self.trials(states=(self.optuna.trial.TrialState.WAITING,))

    def recover_interrupted(self) -> int:
        """Fail the RUNNING trials of dead workers and enqueue their archs again: by Optuna's heartbeats on a
        database server (any host), else by dead pids on this host."""
        S = self.optuna.trial.TrialState
        if self.heartbeat is not None:
            before = len(self.trials(states=(S.FAIL,)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", self.optuna.exceptions.ExperimentalWarning)
                self.optuna.storages.fail_stale_trials(self.study)
            return len(self.trials(states=(S.FAIL,))) - before
        host, n = socket.gethostname(), 0
        for t in self.trials(states=(S.RUNNING,)):
            attrs = t.user_attrs
            if attrs.get("host") == host and "pid" in attrs and not _alive(attrs["pid"]):
                self.storage.set_trial_state_values(t._trial_id, state=S.FAIL)
                if "arch" in attrs:
                    retry = {k: v for k, v in attrs.items() if k not in ("pid", "host")}
                    retry["retry_of"] = t.number
                    self.study.enqueue_trial({}, user_attrs=retry)
                n += 1
        return n

    def start(self, attrs: dict):
        """Ask for a trial: an enqueued retry if one waits (its own attrs win), else a new one with `attrs`."""
        trial = self.study.ask()
        given = dict(trial.user_attrs)
        chosen = given if "arch" in given else attrs
        retried = self.storage.get_trial_system_attrs(trial._trial_id).get("failed_trial")
        if retried is not None:  # re-created by Optuna's heartbeat callback
            chosen = {**chosen, "retry_of": retried}
        for key, value in {**chosen, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}.items():
            trial.set_user_attr(key, value)
        if self.heartbeat is not None:
            self._beating[trial.number] = HeartbeatThread(self.storage, trial._trial_id, self.heartbeat)
        return trial, chosen

    def _end(self, trial) -> None:
        beating = self._beating.pop(trial.number, None)
        if beating is not None:
            beating.stop()

    def finish(self, trial, value: float, extra: dict) -> None:
        for key, value_ in extra.items():
            trial.set_user_attr(key, value_)
        self._end(trial)
        self.study.tell(trial, value)

    def record(self, role: str, value: float, attrs: dict) -> None:
        """A finished trial measured elsewhere (an in-place search's γ(θ) at a checkpoint)."""
        trial = self.study.ask()
        for key, value_ in {**attrs, "role": role}.items():
            trial.set_user_attr(key, value_)
        self.study.tell(trial, value)

    def fail(self, trial, reason: str) -> None:
        trial.set_user_attr("failure", reason)
        self._end(trial)
        self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)


def list_studies(url: str) -> list[str]:
    return _optuna().get_all_study_names(open_storage(url))


def open_study(url: str, study: Optional[str] = None) -> StudyStore:
    """An existing study to read: the named one, or the store's only one. A missing SQLite file is an
    error here, not a new empty store."""
    path = store_file(url)
    if path is not None and not os.path.isfile(path):
        raise RksError(f"no study store at {path}")
    names = list_studies(url)
    if not names:
        raise RksError(f"no study in {url}")
    if study is None and len(names) > 1:
        raise RksError(f"{url} holds several studies ({', '.join(names)}); pick one with --study")
    name = study or names[0]
    if name not in names:
        raise RksError(f"no study `{name}` in {url} (it holds {', '.join(names)})")
    return StudyStore(url, name)
