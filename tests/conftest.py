"""Shared helpers and fixtures. Tiers (docs/architecture.md, "Tests"): the default run deselects `slow` and
`multiproc` (pyproject's addopts); `device` tests skip unless RKS_TEST_DEVICE names an accelerator."""

import io
import os
import subprocess
import sys
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share the cores: torch in each (and its children) takes its part
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))

ROOT = Path(__file__).resolve().parent.parent
SPACES = ["tiny", "dlrm", "rankitect", "rankitect_hand", "dhen_dims", "dhen"]
DATA = ROOT.parent / "shared" / "data"
RKS = Path(sys.executable).parent / "rks"


def space_path(name: str) -> str:
    return str(ROOT / "spaces" / f"{name}.rks")


@contextmanager
def _working_directory(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_rks(*args, timeout=600, cwd=ROOT):
    """`rks ARGS` as a finished process (returncode, stdout, stderr), run in this interpreter through
    `cli.main`: a fresh interpreter costs two seconds of imports and proves nothing the command's own code
    does not. Use `run_rks_process` where the process is what is tested (torchrun, signals, pipes, imports);
    `timeout` bounds only such a process (`--nproc` goes to one)."""
    import torch

    from rankitect_dsl.cli import main

    argv = [str(a) for a in args]
    if "--nproc" in argv:  # torchrun replaces the calling process
        return run_rks_process(*argv, timeout=timeout, cwd=cwd)
    threads = torch.get_num_threads()  # `--jobs` sets the calling process's threads
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err), _working_directory(cwd):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's refusals, `--version`, `--help`
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
    finally:
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["rks", *argv], code, out.getvalue(), err.getvalue())


def run_rks_process(*args, timeout=600, cwd=ROOT):
    """`rks ARGS` in a fresh interpreter."""
    return subprocess.run([str(RKS), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_argv(argv, cwd=ROOT, timeout=600):
    """An argv that starts with the `rks` executable (as `search_cmd` builds it), run in-process."""
    assert Path(argv[0]) == RKS, argv[0]
    return run_rks(*argv[1:], cwd=cwd, timeout=timeout)


FUZZED_FAST = ("tiny", "dlrm", "dhen")  # a small space, a production model, layers: the fast tier's fuzz


def fuzzed(paths):
    """Shipped spaces as fuzz parameters: three in the fast tier, every other one in the slow tier."""
    return [pytest.param(p, id=p.stem, marks=() if p.stem in FUZZED_FAST else pytest.mark.slow) for p in sorted(paths)]


@pytest.fixture(scope="session")
def spaces():
    from rankitect_dsl import load_space

    return {n: load_space(space_path(n)) for n in SPACES}


@pytest.fixture
def device():
    """The accelerator the `device`-marked tests compare with the CPU: RKS_TEST_DEVICE. Unset (or `cpu`), they
    skip: the CPU against the CPU proves nothing."""
    name = os.environ.get("RKS_TEST_DEVICE", "")
    if name in ("", "cpu"):
        pytest.skip("RKS_TEST_DEVICE names no accelerator (set RKS_TEST_DEVICE=cuda; benchmarks/gpu_check.sh does)")
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"RKS_TEST_DEVICE={name} but no CUDA device is available here")
    return name


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache (and subprocesses inherit it)."""
    monkeypatch.setenv("RKS_CACHE", str(tmp_path_factory.mktemp("rks-cache")))


def search_cmd(db, budget, *extra, examples=3000):
    return [
        str(RKS),
        "search",
        space_path("tiny"),
        "--method",
        "random",
        "--data",
        "synthetic:1",
        "--budget",
        str(budget),
        "--proxy-examples",
        str(examples),
        "--storage",
        f"sqlite:///{db}",
        "--study",
        "s",
        "--json",
        "--retrain-seeds",  # the final retraining is tested on its own (test_quality.py); `extra` may ask for it
        "0",
        "--batch-size",  # these tests check the study store, not training: a quarter of the default batch's steps
        "256",
        *extra,
    ]


def read_back_calls(monkeypatch, where: str = "rankitect_dsl") -> list:
    """Calls from the project's code (files whose path holds `where`) that read a tensor back to the host
    (each a device sync on an accelerator), recorded by patching the Tensor methods that do."""
    import sys

    import torch

    calls = []
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):
            if where in sys._getframe(1).f_code.co_filename:
                calls.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return calls
