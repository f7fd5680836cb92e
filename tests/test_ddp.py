"""Data parallelism on torchrun (gloo on the CPU): K ranks on each one's slice of the global batch take the
steps one process takes on the whole batch, so a 2-rank search ends where a 1-process search ends."""

import glob
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from conftest import RKS, space_path
from rankitect_dsl import load_space

pytestmark = pytest.mark.multiproc  # torchrun

STEPS = 40


def _torchrun(nproc: int) -> list:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]


def _env(**extra) -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def _search(method: str, *extra) -> list:
    return [
        "search", space_path("tiny"), "--method", method, "--flops-target", "1x", "--examples", str(64 * STEPS),
        "--batch-size", "64", "--warmup", "0.25", "--data", "synthetic:2", "--checkpoint-every", "10",
        "--retrain-seeds", "0", "--json", *extra,
    ]  # fmt: skip


def _run(cmd: list, cwd: Path, nproc: int = 1, **env) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [*_torchrun(nproc), "-m", "rankitect_dsl.cli", *cmd] if nproc > 1 else [str(RKS), *cmd]
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=600, env=_env(**env))


def _files(folder: Path) -> tuple[dict, list]:
    (checkpoint,) = glob.glob(f"{folder}/runs/*.pt")
    (log,) = glob.glob(f"{folder}/runs/*.jsonl")
    return torch.load(checkpoint, weights_only=True), [json.loads(line) for line in open(log)]


def _assert_same_model(one: dict, two: dict, opts: dict) -> None:
    """Every weight agrees to float rounding, but those whose gradient is zero up to rounding (Adam's second
    moment below 1e-12 in the 1-process run): Adam normalises such a gradient's noise into steps of its full
    rate, so those weights wander in both runs without changing the model (EmbedFC's bias, added before the
    LayerNorm over the embedding axis, is one)."""
    body = [k for k in one if k not in ("offsets", "embedding.weight")]
    second_moments = opts[0]["state"]
    checked = 0
    for i, key in enumerate(body):
        if i in second_moments and second_moments[i]["exp_avg_sq"].max() < 1e-12:
            continue
        assert torch.allclose(one[key], two[key], atol=1e-5), key
        checked += 1
    assert checked >= len(body) - 2
    # row-wise Adagrad does the same to a table row whose gradient cancels over the batch: its first step is
    # the full rate whatever the gradient's size; so nearly every entry, not every one, agrees to rounding
    table = (one["embedding.weight"] - two["embedding.weight"]).abs()
    assert float((table < 1e-4).float().mean()) >= 0.95 and float(table.max()) < 1e-2


def _assert_same_log(one: list, two: list) -> None:
    assert [r["step"] for r in two] == list(range(STEPS)) == [r["step"] for r in one]
    for a, b in zip(one, two):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float) and math.isfinite(value):
                assert b[key] == pytest.approx(value, abs=1e-4), (a["step"], key)
            elif isinstance(value, list) and value and isinstance(value[0], float):
                assert b[key] == pytest.approx(value, abs=1e-4), (a["step"], key)
            elif not isinstance(value, float):
                assert b[key] == value, (a["step"], key)  # the drawn archs, the flags of each step


@pytest.mark.parametrize("method", ["oneshot", "dnas"])
def test_two_ranks_train_what_one_process_trains_on_the_same_global_batch(tmp_path, method):
    one = _run(_search(method), tmp_path / "one")
    two = _run(_search(method), tmp_path / "two", nproc=2, RKS_DDP_CHECK="1")  # and the ranks agree throughout
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    assert two.stdout.count('"best"') == 1  # rank 0 alone reports
    assert json.loads(two.stdout)["best"]["arch"] == json.loads(one.stdout)["best"]["arch"]
    (a, log_a), (b, log_b) = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert a["step"] == b["step"] == STEPS
    _assert_same_model(a["supernet"], b["supernet"], a["supernet_opts"])
    distribution = "policy" if method == "oneshot" else "theta"
    finite = torch.isfinite(a[distribution]["logits"])
    assert torch.allclose(a[distribution]["logits"][finite], b[distribution]["logits"][finite], atol=1e-4)
    assert (a[distribution]["logits"][finite] != a[distribution]["logits"][finite][0]).any()  # it learned
    if method == "oneshot":
        _assert_same_model(a["reference"], b["reference"], a["reference_opts"])
    _assert_same_log(log_a, log_b)


def test_ranks_that_draw_their_own_archs_are_caught_by_the_check(tmp_path):
    """Each rank seeds its draws with its own rank: DDP raises nothing (it averages the gradients of two
    different subnets), and RKS_DDP_CHECK stops the run at the first step with both ranks' checksums."""
    script = tmp_path / "disagree.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            from rankitect_dsl import load_space
            from rankitect_dsl.core.errors import RksError
            from rankitect_dsl.data.loading import load_data
            from rankitect_dsl.runtime.engine import start
            from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

            start("cpu")
            space = load_space({space_path("tiny")!r})
            data = load_data("synthetic:2", space, 64 * 20)
            seed = int(os.environ["RANK"]) if sys.argv[1] == "own" else 0
            cfg = OneShotConfig(64 * 20, float(space.flops(space.baseline)), batch_size=64, warmup=0.0, seed=seed)
            search = OneShotSearch(space, data, space.baseline, cfg, "s.pt", "s.jsonl")
            try:
                search.run()
            except RksError as err:
                print(err, file=sys.stderr)
                sys.exit(3)
            """
        )
    )
    runs = {}
    for mode in ("shared", "own"):
        (tmp_path / mode).mkdir()
        runs[mode] = subprocess.run(
            [*_torchrun(2), str(script), mode], capture_output=True, text=True, cwd=tmp_path / mode, timeout=300,
            env=_env(RKS_DDP_CHECK="1"),
        )  # fmt: skip
    assert runs["shared"].returncode == 0, runs["shared"].stderr[-2000:]
    own = runs["own"]
    assert own.returncode != 0
    assert "RKS_DDP_CHECK: the ranks disagree at step 0 on drawn arch" in own.stderr
    assert "rank 0" in own.stderr and "rank 1" in own.stderr


def _rank_pid(launcher: int, rank: int):
    """The pid of torchrun's worker of `rank`, once it is running."""
    out = subprocess.run(["pgrep", "-P", str(launcher)], capture_output=True, text=True).stdout.split()
    for pid in out:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    return None


def test_kill_9_of_one_rank_then_the_same_command_resumes_from_rank_0s_checkpoint(tmp_path):
    folder = tmp_path / "killed"
    folder.mkdir()
    argv = [*_torchrun(2), "-m", "rankitect_dsl.cli", *_search("oneshot")]
    launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder, env=_env())
    deadline = time.time() + 300
    while time.time() < deadline and not glob.glob(f"{folder}/runs/*.pt"):
        time.sleep(0.05)
    victim = _rank_pid(launcher.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    launcher.communicate(timeout=300)
    assert launcher.returncode != 0  # torchrun ends the survivor and fails
    checkpoint, _ = _files(folder)
    assert 0 < checkpoint["step"] < STEPS
    again = _run(_search("oneshot"), folder, nproc=2)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("resuming from") == 1  # rank 0 says it; both ranks loaded
    resumed = json.loads(again.stdout)
    assert 0 < resumed["resumed_from"] < STEPS
    whole = _run(_search("oneshot"), tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    (a, log_a), (b, log_b) = _files(tmp_path / "whole"), _files(folder)
    _assert_same_log(log_a, log_b)
    _assert_same_model(a["supernet"], b["supernet"], a["supernet_opts"])
    assert resumed["best"]["arch"] == json.loads(whole.stdout)["best"]["arch"]


def test_rks_train_on_two_ranks_with_uneven_slices_matches_one_process(tmp_path):
    """A 63-row batch splits 31 / 32 and the pass's last batch is shorter: each rank's loss is its slice's sum
    times ranks / rows, so the average of the ranks' gradients is still the global batch's mean gradient. A
    validation slice is held out, so that its NE is compared across the ranks too."""
    cmd = ["train", space_path("tiny"), "--baseline", "--data", "synthetic:2", "--examples", "2000",
           "--batch-size", "63", "--val-fraction", "0.1", "--json"]  # fmt: skip
    one = _run([*cmd, "--save", "m1"], tmp_path)
    two = _run([*cmd, "--save", "m2", "--nproc", "2"], tmp_path)  # the shortcut that execs torchrun
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a, b = json.loads(one.stdout), json.loads(two.stdout)
    assert two.stdout.count("{") == 1
    for key in ("window_ne", "train_ne", "eval_ne", "auc", "val_ne"):
        assert b[key] == pytest.approx(a[key], abs=1e-4), key
    assert a["examples"] == b["examples"] == 2000
    wa = torch.load(tmp_path / "m1" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "m2" / "weights.pt", weights_only=True)
    ignored = _weights_the_body_ignores(tmp_path / "m1", wa)
    assert ignored <= {"body.c3.linear.bias"}  # tiny's EmbedFC bias, added before the LayerNorm over D
    assert max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa if k not in ignored) < 1e-3


def _weights_the_body_ignores(saved, weights: dict) -> set:
    """The saved subnet's weights whose change moves no output: Adam turns their zero-up-to-rounding gradient
    into full-rate steps, so they wander apart in any two runs without changing the model."""
    namespace = {}
    exec(compile((saved / "model.py").read_text(), "model.py", "exec"), namespace)
    (cls,) = [v for k, v in namespace.items() if k.endswith("Subnet")]
    body_weights = {k[len("body.") :]: v for k, v in weights.items() if k.startswith("body.")}
    return {f"body.{name}" for name in _parameters_nothing_reads(cls(), body_weights)}


def _supernet_weights_nothing_reads(weights: dict) -> set:
    """The all-on supernet's weights whose change moves no output."""
    return _parameters_nothing_reads(load_space(space_path("tiny")).supernet(), weights)


def _parameters_nothing_reads(module: torch.nn.Module, weights: dict) -> set:
    """`module`'s parameters, loaded from `weights`, whose change moves no output of tiny's example inputs: each
    moved at random in float64 (random: LayerNorm undoes a uniform shift), the outputs compared, moved back."""
    module = module.double().eval()
    module.load_state_dict({k: v.double() for k, v in weights.items()})
    inputs = [x.double() for x in load_space(space_path("tiny")).example_inputs(16, seed=1)]
    gen = torch.Generator().manual_seed(0)
    ignored = set()
    with torch.no_grad():
        before = module(*inputs)
        for name, p in module.named_parameters():
            step = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            p.add_(step)
            if torch.allclose(module(*inputs), before, atol=1e-9):
                ignored.add(name)
            p.sub_(step)
    return ignored


def test_weight_sharing_pretraining_runs_on_the_ranks_and_the_trials_on_rank_0(tmp_path):
    cmd = ["search", space_path("tiny"), "--method", "random", "--proxy", "weight-sharing", "--budget", "3",
           "--proxy-examples", "640", "--pretrain-examples", "2560", "--batch-size", "64", "--data", "synthetic:2",
           "--retrain-seeds", "0", "--json"]  # fmt: skip
    one = _run(cmd, tmp_path / "one")
    two = _run(cmd, tmp_path / "two", nproc=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr
    a = torch.load(next((tmp_path / "one" / "runs").glob("*.supernet.pt")), weights_only=True)
    b = torch.load(next((tmp_path / "two" / "runs").glob("*.supernet.pt")), weights_only=True)
    assert torch.equal(a["offsets"], b["offsets"])
    ignored = _supernet_weights_nothing_reads({k[len("body.") :]: v for k, v in a.items() if k.startswith("body.")})
    assert len(ignored) <= 2, ignored  # EmbedFC's bias before a LayerNorm over D, see _assert_same_model
    steps = 2560 // 64
    for key in a:
        if key in ("offsets", "embedding.weight"):
            continue
        gap = float((a[key].float() - b[key].float()).abs().max())
        # a weight nothing reads wanders by Adam steps of at most its rate (1e-3) each, in either run
        assert gap < (2 * steps * 1e-3 if key[len("body.") :] in ignored else 1e-4), (key, gap)
    table = (a["embedding.weight"] - b["embedding.weight"]).abs()  # row-wise Adagrad: see _assert_same_model
    assert float((table < 1e-4).float().mean()) >= 0.95 and float(table.max()) < 1e-2
    assert json.loads(two.stdout)["evaluated"] == json.loads(one.stdout)["evaluated"] == 3
    assert json.loads(two.stdout)["best"]["arch"] == json.loads(one.stdout)["best"]["arch"]


def test_an_in_place_search_refuses_a_batch_that_does_not_split_evenly(tmp_path):
    proc = _run(_search("oneshot", "--batch-size", "63"), tmp_path, nproc=2)
    assert proc.returncode != 0
    assert "--batch-size 63 does not split evenly over 2 ranks" in proc.stderr
    assert "rankitect_dsl/" not in proc.stderr  # torchrun reports the failed ranks; ours print one line each


def test_two_ranks_resume_a_warm_started_search_one_process_finished(tmp_path):
    """DNAS starts from the production model by default (`--start incumbent`; torchrun's own parser would take
    `--start` for its `--start-method`). Run again in the same folder under torchrun, it resumes the finished
    checkpoint on every rank — no rank warm-starts alone, which would leave its collectives unmatched — and
    reports what the one-process run found."""
    one = _run(_search("dnas"), tmp_path)
    two = _run(_search("dnas"), tmp_path, nproc=2)
    assert one.returncode == 0, one.stderr
    assert two.returncode == 0, two.stderr[-3000:]
    assert "resuming from" in two.stderr and two.stderr.count("warm start") == 0
    assert json.loads(two.stdout)["best"]["arch"] == json.loads(one.stdout)["best"]["arch"]
