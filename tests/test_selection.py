"""Searches battle the production model: the validation slice that chooses (and that nothing trains on),
the baseline retrained beside every method's finalists, `beats_baseline`, and one baseline model."""

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import run_rks, space_path
from rankitect_dsl import load_source, load_space
from rankitect_dsl.data.dataset import DataError, Dataset
from rankitect_dsl.data.synthetic import SyntheticSource
from rankitect_dsl.search.constraints import valid_mask
from rankitect_dsl.search.final import Finalist, retrain, select
from rankitect_dsl.search.sampling.loop import Search, SearchConfig
from rankitect_dsl.search.store.study import StudyStore

# Every arch of this space but its baseline is crippled: a linear block of width 1 is followed by a
# LayerNorm over one feature, which outputs its bias whatever the input, so the model predicts a constant.
WORSE_SOURCE = """space worse

input dense  : dense[4]
input sparse : embed[3, 4]

choice c1 { blocks linear from dense, sparse fixed inputs dim linear 1, 16 }
choice c2 { blocks linear from c1 fixed inputs dim linear 1, 16 }

output from c2

baseline production {
  c1 = linear(dense, sparse) dim 16
  c2 = linear(c1) dim 16
}
"""
WORSE = load_source(WORSE_SOURCE, "worse.rks")
TINY = load_space(space_path("tiny"))


def synthetic(n_train=2700, n_eval=600, seed=1):
    return SyntheticSource(seed).dataset(4, 3, n_train, n_eval)


class FlatteringProxy:
    """A proxy that is wrong on purpose: every candidate scores 0.1, the baseline 0.9."""

    def __init__(self, space):
        self.space = space

    def __call__(self, arch, examples):
        is_baseline = self.space.subnet_key(arch) == self.space.subnet_key(self.space.baseline)
        return SimpleNamespace(
            window_ne=0.9 if is_baseline else 0.1,
            examples=examples,
            seconds=0.0,
            extra={"flops": self.space.flops(arch), "params": self.space.params(arch)},
        )


def test_a_proxy_that_ranks_a_bad_arch_first_cannot_make_it_beat_the_baseline(tmp_path):
    data = synthetic()
    store = StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
    search = Search(WORSE, FlatteringProxy(WORSE), store, SearchConfig("random", 3, progress=False))
    summary = search.run()
    assert summary["best"]["window_ne"] < summary["baseline"]["window_ne"]  # the proxy was fooled
    final = select(WORSE, search.finalists(3), WORSE.baseline, data, [0])
    assert final["finalists"] and all(r["val_ne"] > final["baseline"]["val_ne"] for r in final["finalists"])
    assert final["beats_baseline"] is False and final["margin"] > 0
    assert final["winner"]["val_ne"] == min(r["val_ne"] for r in final["finalists"])


def test_the_winner_is_the_best_finalist_on_the_validation_slice_not_the_proxys_first():
    data = synthetic()
    space = load_source(WORSE_SOURCE.replace("c1 fixed inputs dim linear 1, 16", "c1 fixed inputs dim linear 1, 8, 16"))
    crippled = space.decode([1, 0])  # c1 at width 16, c2 at width 1: a constant predictor
    narrower = space.decode([1, 1])  # c1 at width 16, c2 at width 8: a real model, not the baseline
    assert [a.choices["c2"].dims["linear"] for a in (crippled, narrower)] == [1, 8]
    finalists = [Finalist(crippled, "proxy rank 1"), Finalist(narrower, "proxy rank 2")]
    final = select(space, finalists, space.baseline, data, [0])
    scores = {r["origin"]: r["val_ne"] for r in final["finalists"]}
    assert scores["proxy rank 1"] > scores["proxy rank 2"]  # the proxy ranked them the wrong way round
    assert final["winner"]["origin"] == "proxy rank 2" and final["winner"]["val_ne"] == scores["proxy rank 2"]


def test_a_finalist_that_is_the_baseline_is_trained_once_as_the_baseline():
    data = synthetic()
    crippled = WORSE.decode([1, 0])
    final = select(WORSE, [Finalist(crippled, "proxy rank 1"), Finalist(WORSE.baseline, "proxy rank 2")],
                   WORSE.baseline, data, [0])  # fmt: skip
    assert [r["origin"] for r in final["finalists"]] == ["proxy rank 1"]
    assert final["beats_baseline"] is False


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, extra",
    [
        ("random", ["--budget", "3", "--proxy-examples", "2000"]),
        ("dnas", ["--flops-target", "1x", "--examples", "3000"]),
    ],
)
def test_beats_baseline_is_false_when_the_space_holds_only_worse_archs(tmp_path, method, extra):
    space = tmp_path / "worse.rks"
    space.write_text(WORSE_SOURCE)
    proc = run_rks(
        "search", space, "--method", method, *extra, "--data", "synthetic:1",
        "--retrain-seeds", "1", "--storage", f"sqlite:///{tmp_path}/s.db", "--export", tmp_path / "ex", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-600:]
    summary = json.loads(proc.stdout)
    final = summary["final"]
    assert summary["beats_baseline"] is False and final["beats_baseline"] is False
    assert final["winner"]["val_ne"] > final["baseline"]["val_ne"]
    selection = json.loads((tmp_path / "ex" / "selection.json").read_text())
    assert selection["beats_baseline"] is False and "no candidate beat the baseline" in selection["verdict"]
    assert summary["best"]["arch"] == final["winner"]["arch"]  # the best candidate is what is exported
    exported = json.loads((tmp_path / "ex" / "best_arch.json").read_text())
    assert exported == final["winner"]["arch"]


@pytest.mark.slow
def test_the_search_says_in_one_line_when_nothing_beat_the_baseline(tmp_path):
    space = tmp_path / "worse.rks"
    space.write_text(WORSE_SOURCE)
    proc = run_rks(
        "search", space, "--method", "random", "--budget", "2", "--data", "synthetic:1", "--proxy-examples", "1000",
        "--retrain-seeds", "1", "--storage", f"sqlite:///{tmp_path}/s.db",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-600:]
    lines = [line for line in proc.stdout.splitlines() if "beat the baseline" in line]
    assert len(lines) == 1 and lines[0].startswith("no candidate beat the baseline on the validation slice"), lines


def poisoned(data: Dataset, fraction: float) -> Dataset:
    """`data` with NaN in every dense feature of its validation slice: a model trained on one of those rows
    ends with NaN weights, and so with a NaN NE on the clean evaluation tail."""
    fit = data.validation_view(fraction)
    dense = np.array(data.dense)
    dense[fit.n_train : data.n_train] = np.nan
    return Dataset(data.name, dense, data.cats, data.labels, data.vocab_sizes, data.n_train)


def test_the_validation_slice_is_scored_and_never_trained_on():
    from rankitect_dsl.search.sampling.proxies import EarlyStopProxy, WeightSharingProxy

    data = poisoned(synthetic(), 0.1)
    scores = retrain(TINY, TINY.baseline, data, [0, 1], val_fraction=0.1)
    assert all(np.isfinite(scores["eval_ne_seeds"])), "a final retrain trained on the validation slice"
    assert all(np.isnan(scores["val_ne_seeds"])), "the final retrain did not score the validation slice"
    fit = data.validation_view(0.1)
    arch = TINY.sample(3)
    assert np.isfinite(EarlyStopProxy(TINY, fit)(arch, 2 * fit.n_train).window_ne)  # wraps twice, stays out
    assert np.isfinite(WeightSharingProxy(TINY, fit, pretrain_examples=fit.n_train)(arch, fit.n_train).window_ne)


@pytest.mark.parametrize("method", ["oneshot", "dnas"])
def test_the_supernet_searches_never_train_on_the_validation_slice(tmp_path, method):
    from rankitect_dsl.search.inplace.dnas import DNASConfig, DNASSearch
    from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

    data = poisoned(synthetic(), 0.1)
    fit = data.validation_view(0.1)
    target = float(TINY.flops(TINY.baseline))
    kind, cfg = (
        (OneShotSearch, OneShotConfig(2 * fit.n_train, target, batch_size=256))
        if method == "oneshot"
        else (DNASSearch, DNASConfig(2 * fit.n_train, target, batch_size=256))
    )
    search = kind(TINY, fit, TINY.baseline, cfg, tmp_path / "c.pt", tmp_path / "log.jsonl")
    search.run()
    losses = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert losses and all("ne_batch" in r for r in losses)  # every step scored its batch
    assert np.isfinite([r["ne_batch"] for r in losses]).all()
    assert all(np.isfinite(p.detach().numpy()).all() for p in search.supernet.parameters())


@pytest.mark.slow
def test_the_baseline_of_a_search_is_rks_train_baseline_for_the_same_seed(tmp_path):
    """One model: the search's choosing retrain of its baseline is `rks train --baseline --val-fraction 0.1`,
    and its refit is `rks train --baseline` with the default flags: the same rows, the same weights, the same
    validation and eval NE to the last bit."""
    rng = np.random.default_rng(0)
    rows = ["y,a,b,c,d,u,v,w"]
    for _ in range(3000):
        x = rng.normal(size=4)
        cats = rng.integers(0, 6, 3)
        p = 1 / (1 + np.exp(-(x[0] - x[1] + 0.5 * (cats[0] % 2))))
        rows.append(f"{int(rng.random() < p)},{','.join(f'{v:.3f}' for v in x)},{','.join(f'k{c}' for c in cats)}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"label": "y", "dense": ["a", "b", "c", "d"], "categorical": ["u", "v", "w"]}))
    data = ["--data", f"table:{tmp_path / 't.csv'}", "--schema", schema]
    proc = run_rks(
        "search", space_path("tiny"), "--method", "random", "--budget", "2", "--proxy-examples", "600", *data,
        "--retrain-seeds", "1", "--finalists", "1", "--seed", "3", "--storage", f"sqlite:///{tmp_path}/s.db", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-600:]
    base = json.loads(proc.stdout)["final"]["baseline"]
    for k, seed in enumerate(base["seeds"]):
        kept = json.loads(run_rks("train", space_path("tiny"), "--baseline", *data, "--seed", seed, "--json").stdout)
        assert (kept["examples"], kept["eval_ne"]) == (base["examples"], base["eval_ne_seeds"][k])
        assert "val_ne" not in kept  # every training row trained on: nothing held out to score
        chose = run_rks("train", space_path("tiny"), "--baseline", *data, "--seed", seed, "--val-fraction", "0.1",
                        "--json")  # fmt: skip
        chose = json.loads(chose.stdout)
        assert (chose["examples"], chose["val_ne"]) == (base["choosing"]["examples"], base["val_ne_seeds"][k])
        assert chose["eval_ne"] == base["choosing"]["eval_ne_seeds"][k]
    assert base["examples"] == 2400 and base["choosing"]["examples"] == 2160  # 3000 rows: 20% tail, 10% slice


def test_the_winner_and_the_baseline_are_refit_on_every_training_row_the_slice_included():
    """With NaN in every feature of the validation slice, a model that trains on the slice ends with NaN
    weights: the choosing fit stays finite on the tail, the refit of the winner and of the baseline does not."""
    data = poisoned(synthetic(), 0.1)
    fit = data.validation_view(0.1)
    narrower = TINY.decode([1] * len(TINY.decisions))
    final = select(TINY, [Finalist(TINY.sample(3), "a"), Finalist(narrower, "b")], TINY.baseline, data, [0])
    refit = [final["winner"], final["baseline"]]
    for row in refit:
        assert row["refit"] is True and row["examples"] == data.n_train == fit.n_train + 270
        assert np.isnan(row["eval_ne"]) and np.isfinite(row["choosing"]["eval_ne"])
        assert row["choosing"]["examples"] == fit.n_train
    others = [r for r in final["finalists"] if r is not final["winner"]]
    assert others and all("refit" not in r and np.isfinite(r["eval_ne"]) for r in others)


def test_rks_train_trains_on_every_row_before_the_tail_unless_asked():
    args = ["train", space_path("tiny"), "--baseline", "--data", "synthetic:2", "--examples", "2000", "--json"]
    extras = ([], ["--val-fraction", "0"], ["--val-fraction", "0.1"])
    default, none, held = (json.loads(run_rks(*args, *extra).stdout) for extra in extras)
    assert default == {**none, "seconds": default["seconds"]}  # the same model, to the last bit
    assert "val_ne" not in default and held["val_ne"] > 0 and held["eval_ne"] != default["eval_ne"]


def test_validation_fractions_out_of_range_or_too_small_are_refused():
    data = synthetic(1000, 200)
    for fraction in (-0.1, 0.6):
        with pytest.raises(DataError, match="--val-fraction"):
            data.validation_view(fraction)
    with pytest.raises(DataError, match="at least 50"):
        data.validation_view(0.01)
    assert data.validation_view(0) is data
    view = data.validation_view(0.2)
    assert (view.n_train, view.n - view.n_train) == (800, 200)  # the slice becomes the view's tail
    for mine, whole in ((view.dense, data.dense), (view.cats, data.cats), (view.labels, data.labels)):
        assert np.shares_memory(mine, whole) and np.array_equal(mine, whole[:1000])  # a view, not a copy


def test_finalists_of_the_supernet_searches_are_gamma_and_distinct_likely_runners_up(tmp_path):
    from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

    data = synthetic()
    cfg = OneShotConfig(1024, float(TINY.flops(TINY.baseline)), batch_size=256)
    search = OneShotSearch(TINY, data.validation_view(0.1), TINY.baseline, cfg, tmp_path / "c.pt", tmp_path / "l")
    search.run()
    with torch.no_grad():  # a learned distribution far from uniform, so that the most likely arch is one
        logits = search.policy.logits
        finite = torch.isfinite(logits)
        logits[finite] = 2 * torch.randn(int(finite.sum()), generator=torch.Generator().manual_seed(3))
    finalists = search.finalists(4)
    logp = torch.log_softmax(search.policy.logits.detach(), -1).numpy()
    sizes = [d.size for d in TINY.decisions]
    every = np.array(list(itertools.product(*[range(n) for n in sizes])))  # every vector of tiny, 49,152
    every = every[valid_mask(TINY, every)]
    best = np.exp(logp[np.arange(len(sizes)), every].sum(1)).max()  # the most likely arch, by brute force
    assert finalists[0].origin == "γ(θ)"
    assert finalists[0].found["probability"] == pytest.approx(best, rel=1e-5)
    keys = [TINY.subnet_key(f.arch) for f in finalists]
    assert len(set(keys)) == len(keys) == 4
    probabilities = [f.found["probability"] for f in finalists[1:]]
    assert probabilities == sorted(probabilities, reverse=True) and max(probabilities) <= best * (1 + 1e-5)
    limit = max(cfg.target, TINY.flops(finalists[0].arch))
    assert all(TINY.flops(f.arch) <= limit for f in finalists)
