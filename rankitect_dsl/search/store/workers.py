"""`rks search --jobs N`: this process and N − 1 helper workers of the same command on one study store. The
helpers are the same command run again with `RKS_SEARCH_WORKER` set: they evaluate candidates until the
budget is spent and exit; this process also evaluates, waits for theirs, then halves, selects and reports.
The store decides who takes what (`study_store.py`), so nothing is queued here.

SQLite is refused for N > 1, as Optuna's FAQ advises ("database is locked" under parallel writers): a
journal file (`journal:PATH`, the default for N > 1) serves one host, PostgreSQL or MySQL several."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile

from ...core.errors import RksError

WORKER_ENV = "RKS_SEARCH_WORKER"


def is_worker() -> bool:
    return os.environ.get(WORKER_ENV) == "1"


def check_storage(url: str, jobs: int) -> None:
    if jobs > 1 and url.startswith("sqlite"):
        raise RksError(
            f"--jobs {jobs} on SQLite ({url}): SQLite locks under parallel writers; use --storage journal:PATH "
            "(one machine; the default with --jobs) or a PostgreSQL URL (several machines)"
        )


def threads_per_job(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def start_workers(command_line: str, url: str, study: str, jobs: int) -> list:
    """Start `jobs − 1` helpers of `command_line` on store `url`, study `study`: (process, stderr file) each."""
    argv = shlex.split(command_line)[1:]
    env = dict(os.environ, **{WORKER_ENV: "1"})
    env.setdefault("OMP_NUM_THREADS", str(threads_per_job(jobs)))
    workers = []
    for _ in range(jobs - 1):
        err = tempfile.TemporaryFile()
        cmd = [sys.executable, "-m", "rankitect_dsl.cli", *argv, "--storage", url, "--study", study, "--json"]
        workers.append((subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env), err))
    return workers


def wait_for_workers(workers: list) -> None:
    """Wait for every helper; one that failed is one error with the end of what it said."""
    failed = []
    for proc, err in workers:
        code = proc.wait()
        if code != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["(nothing)"]
            failed.append(f"worker {proc.pid} exited {code}: {tail[0][:300]}")
        err.close()
    if failed:
        raise RksError("; ".join(failed))
