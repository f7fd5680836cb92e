"""Training defaults and search rules that make results hold on real data: row-wise Adagrad tables, the
baseline FLOPs cap by default, averaged proxy repeats, and selection that never reads the evaluation tail."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from conftest import run_argv, search_cmd, space_path
from rankitect_dsl import load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.runtime.engine import TrainConfig, evaluate_tail, train
from rankitect_dsl.runtime.optim import RowWiseAdagrad, body_lr_schedule, make_optimizers
from rankitect_dsl.search.sampling.loop import Search, SearchConfig
from rankitect_dsl.search.sampling.proxies import EarlyStopProxy, WeightSharingProxy, early_stop_proxy
from rankitect_dsl.search.sampling.rl_sampler import PredictorProposer
from rankitect_dsl.search.store.study import StudyStore

TINY = load_space(space_path("tiny"))


def test_rowwise_adagrad_matches_its_formula_and_leaves_absent_rows_alone():
    table = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    start = table.detach().clone()
    opt = RowWiseAdagrad([table], lr=0.5, eps=1e-10)
    grads = [torch.zeros(5, 3, dtype=torch.float64) for _ in range(2)]
    grads[0][1] = torch.tensor([1.0, -2.0, 2.0])
    grads[1][1] = torch.tensor([0.5, 0.5, 0.5])
    grads[1][3] = torch.tensor([3.0, 0.0, 0.0])
    expected, acc = start.clone(), torch.zeros(5, dtype=torch.float64)
    for g in grads:
        table.grad = g.clone()
        opt.step()
        touched = g.abs().sum(1) > 0
        acc[touched] += g[touched].pow(2).mean(1)
        expected[touched] -= 0.5 * g[touched] / acc[touched].sqrt().unsqueeze(1)
    assert torch.allclose(table.detach(), expected)
    assert torch.equal(table.detach()[[0, 2, 4]], start[[0, 2, 4]])


def test_trainer_gives_the_tables_rowwise_adagrad_and_the_body_adam():
    from rankitect_dsl.runtime.model import build_model

    data = load_data("synthetic:0", TINY, 500)
    model = build_model(TINY, TINY.baseline, data, 0)
    adam, rowwise = make_optimizers(model, 1e-3)
    assert isinstance(rowwise, RowWiseAdagrad) and rowwise.param_groups[0]["params"] == [model.embedding.weight]
    body = {id(p) for p in adam.param_groups[0]["params"]}
    assert id(model.embedding.weight) not in body and len(body) == len(list(model.parameters())) - 1
    with pytest.raises(ValueError, match="unknown embedding optimiser"):
        make_optimizers(model, 1e-3, "sgd")


@pytest.mark.parametrize("embed_optimizer", ["rowwise-adagrad", "adam"])
def test_the_body_rate_decays_linearly_to_zero_and_the_tables_rate_is_held(embed_optimizer):
    from rankitect_dsl.runtime.model import build_model

    data = load_data("synthetic:0", TINY, 500)
    optimizers = make_optimizers(build_model(TINY, TINY.baseline, data, 0), 2e-3, embed_optimizer, 0.1)
    groups = [g for opt in optimizers for g in opt.param_groups]  # the body's group first, then the tables'
    schedule = body_lr_schedule(optimizers, 8)
    for k in range(8):
        assert groups[0]["lr"] == pytest.approx(2e-3 * (1 - k / 8)) and groups[1]["lr"] == 0.1
        for opt in optimizers:
            opt.step()  # no gradients: moves nothing, keeps the optimiser-then-schedule order
        schedule.step()
    held = body_lr_schedule(make_optimizers(build_model(TINY, TINY.baseline, data, 0), 2e-3), 8, "constant")
    for _ in range(8):
        held.optimizer.step()
        held.step()
    assert held.optimizer.param_groups[0]["lr"] == 2e-3
    with pytest.raises(ValueError, match="unknown learning-rate schedule"):
        body_lr_schedule(optimizers, 8, "cosine")


def test_the_trainer_follows_its_schedule():
    """The pass under the default schedule ends with the body's rate near zero, so a copy trained with the
    rate held ends elsewhere; both start from the same model and rows."""
    from rankitect_dsl.runtime.model import build_model

    data = load_data("synthetic:0", TINY, 2000)
    results = {
        schedule: train(
            build_model(TINY, TINY.baseline, data, 0),
            data,
            TrainConfig(2000, 256, progress=False, lr_schedule=schedule),
        )
        for schedule in ("linear", "constant")
    }
    linear, constant = results["linear"].seen[0], results["constant"].seen[0]
    assert torch.equal(linear[:256], constant[:256])  # the first batch is predicted before any update
    assert not torch.equal(linear[-256:], constant[-256:])


def run(*extra, budget=3):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        proc = run_argv(search_cmd(f"{tmp}/s.db", budget, *extra, examples=600))
    assert proc.returncode == 0, proc.stderr[-500:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_search_caps_flops_at_the_baseline_by_default_and_none_lifts_it():
    baseline = TINY.flops(TINY.baseline)
    capped = run(budget=6)
    assert capped["flops_max"] == baseline and capped["best"]["flops"] <= baseline
    assert all(p["flops"] <= baseline for p in capped["pareto"])
    free = run("--flops-max", "none", "--retrain-seeds", "0", budget=6)
    assert free["flops_max"] is None and "final" not in free


@pytest.mark.slow
def test_search_ends_by_retraining_winner_and_baseline_and_scoring_them_on_the_tail():
    summary = run("--retrain-seeds", "3", budget=3)
    for role in ("winner", "baseline"):
        final = summary["final"][role]
        assert final["seeds"] == [0, 1, 2] and len(set(final["eval_ne_seeds"])) == 3
        assert final["eval_ne"] == pytest.approx(sum(final["eval_ne_seeds"]) / 3)


def test_the_final_retrain_trains_as_rks_train_does_and_a_full_pass_proxy_is_the_final_retrain():
    """The quoted NE is `rks train`'s (decaying body rate, the validation slice held out); an early-stop proxy
    given one whole pass trains exactly as the final retrain does, so it scores what the user gets."""
    from rankitect_dsl.runtime.engine import train_final
    from rankitect_dsl.runtime.model import build_model
    from rankitect_dsl.search.final import retrain

    data = load_data("synthetic:3", TINY, 1500, val_fraction=0.1)
    fit = data.validation_view(0.1)
    scored = retrain(TINY, TINY.baseline, data, [0], val_fraction=0.1)
    model = build_model(TINY, TINY.baseline, fit, 0)
    trained = train_final(model, data, fit, TrainConfig(fit.n_train, progress=False))
    assert (scored["eval_ne"], scored["val_ne"]) == (trained.eval_ne, trained.extra["val_ne"])
    held = early_stop_proxy(TINY, TINY.baseline, fit, fit.n_train, evaluate=True)
    assert held.eval_ne == scored["val_ne"]  # the proxy's run, scored on the slice, is the final retrain


def test_proxy_repeats_average_runs_with_the_same_seeds_for_every_candidate():
    data = load_data("synthetic:2", TINY, 2000)
    arch = TINY.sample(5)
    averaged = EarlyStopProxy(TINY, data, seed=3, repeats=3)(arch, 600)
    runs = [early_stop_proxy(TINY, arch, data, 600, seed=s).window_ne for s in (3, 4, 5)]
    assert averaged.extra["window_ne_runs"] == pytest.approx(runs)
    assert averaged.window_ne == pytest.approx(sum(runs) / 3) and averaged.examples == 1800
    assert len(set(runs)) == 3  # the repeats differ, so averaging does something


def poisoned(data):
    """The data with its evaluation tail made NaN: any score computed from the tail comes out NaN."""
    dense, labels = np.array(data.dense, copy=True), np.array(data.labels, copy=True)
    dense[data.n_train :] = np.nan
    labels[data.n_train :] = np.nan
    return dataclasses.replace(data, dense=dense, labels=labels)


@pytest.mark.parametrize("proxy_kind", ["early-stop", "weight-sharing"])
def test_selection_never_reads_the_evaluation_tail(tmp_path, proxy_kind):
    data = poisoned(load_data("synthetic:3", TINY, 3000))
    model_ne = evaluate_tail(_any_model(data), data)[0]
    assert math.isnan(model_ne)  # the poison shows wherever the tail is read
    if proxy_kind == "early-stop":
        proxy = EarlyStopProxy(TINY, data, repeats=2)
    else:
        proxy = WeightSharingProxy(TINY, data, pretrain_examples=600, repeats=2)
    store = StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
    cfg = SearchConfig("predictor", budget=6, proxy_examples=300, halving=2, progress=False)
    summary = Search(TINY, proxy, store, cfg, PredictorProposer()).run()
    values = [t.value for t in store.trials() if t.value is not None]
    assert values and all(math.isfinite(v) for v in values)
    assert math.isfinite(summary["best"]["window_ne"])


def _any_model(data):
    from rankitect_dsl.runtime.model import build_model

    return build_model(TINY, TINY.baseline, data, 0)


def test_default_batch_size_follows_the_training_part():
    from rankitect_dsl.runtime.engine import default_batch_size

    # the sweep's sets: criteo-8k, avazu-9k and synthetic up to 20,000 training rows; ml-100k at 80,000
    sizes = (6400, 7199, 20000, 39999, 40000, 79999, 80000, 10**9)
    assert [default_batch_size(n) for n in sizes] == [64, 64, 64, 64, 128, 128, 256, 4096]
