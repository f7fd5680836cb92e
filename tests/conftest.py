import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPACES = ["tiny", "dlrm", "rankitect", "rankitect_hand", "dhen_dims", "dhen"]
DATA = ROOT.parent / "shared" / "data"


def space_path(name: str) -> str:
    return str(ROOT / "spaces" / f"{name}.rks")


def run_rks(*args, timeout=600):
    exe = Path(sys.executable).parent / "rks"
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def spaces():
    from rankitect_dsl import load_space

    return {n: load_space(space_path(n)) for n in SPACES}


@pytest.fixture
def device():
    """The device the `device`-marked tests train on: RKS_TEST_DEVICE, the CPU unless set."""
    name = os.environ.get("RKS_TEST_DEVICE", "cpu")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip("RKS_TEST_DEVICE=cuda but no CUDA device is available here")
    return name


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own preprocessing cache (and subprocesses inherit it)."""
    monkeypatch.setenv("RKS_CACHE", str(tmp_path_factory.mktemp("rks-cache")))


def search_cmd(db, budget, *extra, examples=3000):
    return [
        str(Path(sys.executable).parent / "rks"),
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
