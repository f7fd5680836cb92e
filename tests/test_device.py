"""What must hold on any device the engine trains on, compared with the CPU. They run where RKS_TEST_DEVICE
names an accelerator (`RKS_TEST_DEVICE=cuda`, as benchmarks/gpu_check.sh sets it) and skip elsewhere: the
CPU against itself proves nothing. The model trained there is the CPU's model up to float
rounding, the accelerator's row-wise Adagrad moves exactly the rows the CPU's moves, and a search
checkpointed on one device resumes on another."""

import json

import numpy as np
import pytest
import torch

from conftest import run_rks, space_path
from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import Engine
from rankitect_dsl.runtime.optim import RowWiseAdagrad
from rankitect_dsl.search.inplace.dnas import DNASConfig, DNASSearch

pytestmark = pytest.mark.device


def test_the_engine_puts_every_batch_on_its_device(device):
    space = load_space(space_path("tiny"))
    data = load_data("synthetic", space, 300)
    engine = Engine(device)
    assert engine.device.type == device
    for tensor in (*engine.row_batch(data, 2, 64), *next(engine.batches(data, 0, 64, 64))[:3]):
        assert tensor.device.type == device


def test_rowwise_adagrad_on_the_device_moves_the_rows_the_cpu_moves(device):
    gen = torch.Generator().manual_seed(1)
    table, grad = torch.randn(40, 8, generator=gen), torch.randn(40, 8, generator=gen)
    grad[torch.rand(40, generator=gen) < 0.6] = 0.0
    moved = []
    for where in ("cpu", device):
        p = torch.nn.Parameter(table.clone().to(where))
        opt = RowWiseAdagrad([p], lr=0.1)
        for _ in range(3):
            p.grad = grad.to(where)
            opt.step()
        moved.append(p.detach().cpu())
    assert torch.allclose(moved[0], moved[1], atol=1e-6)
    assert torch.equal(moved[1][~grad.any(1)], table[~grad.any(1)])


def test_rks_train_on_the_device_trains_the_cpus_model(device):
    cmd = ["train", space_path("tiny"), "--baseline", "--data", "synthetic:2", "--examples", "3000", "--json"]
    runs = [run_rks(*cmd, "--device", where) for where in ("cpu", device)]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr
    cpu, there = (json.loads(p.stdout) for p in runs)
    for key in ("window_ne", "eval_ne", "auc", "val_ne"):
        assert there[key] == pytest.approx(cpu[key], abs=1e-3), key


def test_a_dnas_search_checkpointed_on_the_device_resumes_on_the_cpu(device, tmp_path):
    space = load_space(space_path("tiny"))
    data = load_data("synthetic", space, 64 * 30)

    def search(where, examples):
        cfg = DNASConfig(examples, float(space.flops(space.baseline)), batch_size=64, checkpoint_every=10, device=where)
        return DNASSearch(space, data, space.baseline, cfg, tmp_path / "s.pt", tmp_path / "s.jsonl")

    first = search(device, 64 * 20)
    first.run()
    assert first.supernet.body.weights[next(iter(first.supernet.body.weights))].device.type == device
    resumed = search("cpu", 64 * 30)
    resumed.steps = 30
    resumed.resume()
    assert resumed.step == 20 and resumed.resumed_from == 20
    assert torch.allclose(resumed.theta.logits.detach(), first.theta.logits.detach().cpu())
    resumed.run()
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(30))
    assert np.isfinite([r["loss"] for r in records]).all()
