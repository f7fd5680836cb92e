"""Data sources, preprocessing, NE metrics and the trainer."""

import gzip
import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from conftest import DATA, ROOT, run_rks, space_path
from rankitect_dsl import load_source
from rankitect_dsl.data.columnar_tables import RATE_PRIOR_ROWS
from rankitect_dsl.data.dataset import DataError
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.data.preprocess import cache_root, load_dataset
from rankitect_dsl.data.sources import CriteoSource, TableSource, parse_data_spec
from rankitect_dsl.runtime.engine import TrainConfig, train
from rankitect_dsl.runtime.metrics import auc, normalized_entropy, window_ne
from rankitect_dsl.runtime.model import build_model
from rankitect_dsl.search.sampling.proxies import early_stop_proxy

# -- metrics --------------------------------------------------------------------------------


def test_ne_equals_sklearn_log_loss_over_label_entropy():
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(np.float64)
    logits = rng.normal(0, 1.5, 500)
    p = labels.mean()
    expected = log_loss(labels, 1 / (1 + np.exp(-logits))) / -(p * np.log(p) + (1 - p) * np.log(1 - p))
    assert abs(normalized_entropy(torch.tensor(logits), torch.tensor(labels)) - expected) < 1e-9


def test_ne_of_the_mean_rate_predictor_is_one():
    labels = torch.tensor([1.0, 0, 0, 0])
    logit = math.log(0.25 / 0.75)
    assert abs(normalized_entropy(torch.full((4,), logit), labels) - 1.0) < 1e-12


def test_window_ne_by_hand():
    # 8 examples: the window is the last 2; predictions p = 0.5 and 0.8, labels 1 and 0
    logits = torch.tensor([0.0] * 6 + [0.0, math.log(0.8 / 0.2)], dtype=torch.float64)
    labels = torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0])
    logloss = -(math.log(0.5) + math.log(0.2)) / 2
    entropy = math.log(2)  # mean label of the window is 0.5
    assert abs(window_ne(logits, labels) - logloss / entropy) < 1e-12


def test_auc_with_ties_equals_sklearn():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, 300).astype(float)
    labels = (rng.random(300) < 0.4).astype(float)
    assert abs(auc(scores, labels) - roc_auc_score(labels, scores)) < 1e-12


# -- sources and preprocessing ---------------------------------------------------------------


def criteo_line(label, ints, cats):
    return "\t".join([str(label)] + [str(i) for i in ints] + cats) + "\n"


def write_criteo(path, n=50, gz=False, bad=None):
    rng = np.random.default_rng(2)
    lines = []
    for i in range(n):
        ints = [int(x) for x in rng.integers(0, 20, 13)]
        ints[1] = "" if i % 7 == 0 else ints[1]
        cats = [f"{c:x}" for c in rng.integers(0, 3, 26)]
        cats[3] = "tailonly" if i >= 45 else cats[3]
        lines.append(criteo_line(i % 2, ints, cats))
    if bad is not None:
        lines[bad[0]] = bad[1]
    text = "".join(lines)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return lines


@pytest.mark.parametrize("gz", [False, True])
def test_criteo_preprocessing(tmp_path, gz):
    path = tmp_path / ("day.txt.gz" if gz else "day.txt")
    lines = write_criteo(path, gz=gz)
    data = load_dataset(CriteoSource(str(path)), min_count=2, eval_fraction=0.2)
    assert data.n == 50 and data.n_train == 40 and data.dense.shape == (50, 13) and data.cats.shape == (50, 26)
    first = lines[0].rstrip("\n").split("\t")
    assert data.dense[0, 0] == pytest.approx(math.log1p(int(first[1])))
    assert data.dense[0, 1] == 0.0  # empty field: missing
    assert data.labels.tolist() == [i % 2 for i in range(50)]
    # "tailonly" appears only in the evaluation tail: never in the vocabulary, so it maps to the OOV bucket 0
    assert (data.cats[45:, 3] == 0).all()
    assert data.vocab_sizes[0] == 4  # three hex values, all frequent, plus OOV


def test_vocabulary_threshold(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("y,a\n" + "".join(f"{i % 2},{'rare' if i == 0 else 'common'}\n" for i in range(20)))
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"label": "y", "categorical": ["a"]}))
    data = load_dataset(TableSource(str(path), str(schema)), min_count=2)
    assert data.vocab_sizes == [2] and data.cats[0, 0] == 0 and data.cats[1, 0] == 1


def test_preprocessing_is_cached(tmp_path):
    path = tmp_path / "day.txt"
    write_criteo(path)
    load_dataset(CriteoSource(str(path)))
    entries = list(cache_root().iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").exists()
    again = load_dataset(CriteoSource(str(path)))
    assert again.n == 50 and list(cache_root().iterdir()) == entries


@pytest.mark.parametrize(
    "bad, message",
    [
        ((17, "1\t2\t3\n"), "day.txt:18: expected 40 tab-separated fields, got 3"),
        ((4, criteo_line(2, [1] * 13, ["a"] * 26)), "day.txt:5: label 2 is outside {0, 1}"),
        ((9, criteo_line(0, ["x"] + [1] * 12, ["a"] * 26)), "day.txt:10: integer feature I1 is `x`"),
    ],
)
def test_bad_rows_are_one_line_errors_and_nothing_is_cached(tmp_path, bad, message):
    path = tmp_path / "day.txt"
    write_criteo(path, bad=bad)
    proc = run_rks("train", space_path("dlrm"), "--baseline", "--data", f"criteo:{path}", "--examples", "10")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    root = cache_root()
    assert not root.exists() or not any(root.iterdir())


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        parse_data_spec(f"criteo:{tmp_path}/nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="no examples"):
        load_dataset(CriteoSource(str(empty)))
    with pytest.raises(DataError, match="unknown data source"):
        parse_data_spec("kaggle:x")


def test_table_with_rule_join_and_count_features(tmp_path):
    (tmp_path / "r.inter").write_text(
        "user_id:token\titem_id:token\trating:float\tts:float\n"
        + "".join(f"u{i % 3}\ti{i % 4}\t{1 + i % 5}\t{100 - i}\n" for i in range(40))
    )
    (tmp_path / "r.user").write_text("user_id:token\tage:float\n" + "".join(f"u{i}\t{20 + i}\n" for i in range(3)))
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "files": ["r.inter"],
                "joins": [{"file": "r.user", "on": "user_id"}],
                "sort_by": "ts",
                "label": {"column": "rating", "rule": ">= 4"},
                "dense": [{"column": "age", "transform": "standardize"}],
                "categorical": ["user_id", "item_id"],
                "count_features": ["item_id"],
            }
        )
    )
    data = load_dataset(TableSource(str(tmp_path), str(schema)), min_count=1)
    # sorted by ts, so rows run i = 39, 38, 37, …; ratings 1 + i % 5 = 5, 4, 3, 2, 1: clicks where >= 4
    assert data.labels[:5].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert data.n_dense == 2 and data.n_cat == 2
    assert abs(float(np.mean(data.dense[: data.n_train, 0]))) < 0.2  # standardized on the training part
    # the item's running count: rows cycle through the 4 items, so row k follows k // 4 rows of its item,
    # and the count runs on through the evaluation tail as a serving-time counter would
    assert np.allclose(data.dense[:, 1], np.log1p(np.arange(40) // 4))


def _rate_table(tmp_path, ratings):
    """A user/item table sorted by time; `ratings[k]` is row k's rating (a click where >= 4)."""
    rows = [(f"u{k % 3}", f"i{(k * 7) % 5}", r, 1000 + k) for k, r in enumerate(ratings)]
    (tmp_path / "r.inter").write_text(
        "user_id:token\titem_id:token\trating:float\tts:float\n" + "".join("%s\t%s\t%s\t%s\n" % r for r in rows)
    )
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "files": ["r.inter"],
                "sort_by": "ts",
                "label": {"column": "rating", "rule": ">= 4"},
                "categorical": ["user_id", "item_id"],
                "rate_features": ["user_id", "item_id"],
            }
        )
    )
    return rows, load_dataset(TableSource(str(tmp_path), str(schema)), min_count=1, cache=False)


def test_rate_features_are_running_smoothed_click_rates(tmp_path):
    rng = np.random.default_rng(0)
    ratings = rng.integers(1, 6, 60).tolist()
    rows, data = _rate_table(tmp_path, ratings)
    clicks = [1.0 if r >= 4 else 0.0 for r in ratings]
    prior = sum(clicks[: data.n_train]) / data.n_train
    for column in (0, 1):
        # brute force: each row's earlier rows with the same id, smoothed by RATE_PRIOR_ROWS pseudo-rows
        raw = []
        for k, row in enumerate(rows):
            earlier = [clicks[j] for j in range(k) if rows[j][column] == row[column]]
            raw.append((sum(earlier) + RATE_PRIOR_ROWS * prior) / (len(earlier) + RATE_PRIOR_ROWS))
        raw = np.array(raw)
        train = raw[: data.n_train]
        expected = (raw - train.mean()) / train.std()
        assert np.allclose(data.dense[:, column], expected, atol=1e-5)


def test_a_rows_own_label_never_reaches_its_features(tmp_path):
    ratings = [5, 1, 4, 2, 3] * 10
    flipped = list(ratings)
    flipped[42] = 1  # a click in the evaluation tail (rows 40..49) becomes a non-click
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, data = _rate_table(tmp_path / "a", ratings)
    _, other = _rate_table(tmp_path / "b", flipped)
    assert data.n_train == 40 and data.labels[42] != other.labels[42]
    # rows up to and including 42 see the same history, and the prior comes from the training part
    assert np.array_equal(data.dense[:43], other.dense[:43])
    assert not np.array_equal(data.dense[38:], other.dense[38:])


def test_parquet_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"click": [0, 1] * 10, "x": [float(i) for i in range(20)], "c": ["a", "b"] * 10})
    pq.write_table(table, tmp_path / "t.parquet")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"label": "click", "dense": ["x"], "categorical": ["c"]}))
    data = load_dataset(TableSource(str(tmp_path / "t.parquet"), str(schema)), min_count=1)
    assert data.n == 20 and data.dense[3, 0] == pytest.approx(math.log1p(3.0))


def test_data_that_does_not_fit_the_space(tmp_path):
    path = tmp_path / "day.txt"
    write_criteo(path)
    proc = run_rks("train", space_path("tiny"), "--baseline", "--data", f"criteo:{path}", "--examples", "10")
    assert proc.returncode == 1
    assert "13 dense and 26 categorical" in proc.stderr and "dense[4] and embed[3, 4]" in proc.stderr


# -- training --------------------------------------------------------------------------------


def test_rankitect_baseline_learns_synthetic_data(spaces):
    space = spaces["rankitect"]
    data = load_data("synthetic:3", space, 20000)
    result = train(build_model(space, space.baseline, data, 0), data, TrainConfig(20000, progress=False))
    assert result.eval_ne < 0.95 and result.auc > 0.65


def test_planted_interactions_need_the_embeddings():
    """A model that reads the embeddings (where the planted interactions live) beats one that cannot."""
    head = "space s\ninput dense : dense[13]\ninput sparse : embed[26, 16]\n"
    with_cats = load_source(
        head + "choice dot { blocks dot_compressed from dense, sparse fixed inputs dim dot_compressed 8 }\n"
        "choice top { blocks linear from dense, dot fixed inputs dim linear 64 }\noutput from top\n"
    )
    dense_only = load_source(
        head + "choice mlp { blocks linear from dense fixed inputs dim linear 64 }\n"
        "choice top { blocks linear from mlp fixed inputs dim linear 64 }\noutput from top\n"
    )
    scores = {}
    for name, space in (("with", with_cats), ("without", dense_only)):
        data = load_data("synthetic:5", space, 20000)
        scores[name] = train(
            build_model(space, space.sample(0), data, 0), data, TrainConfig(20000, progress=False)
        ).eval_ne
    assert scores["with"] < scores["without"] - 0.015, scores


def test_training_is_seeded(spaces):
    space = spaces["tiny"]
    data = load_data("synthetic:1", space, 3000)
    a = train(build_model(space, space.baseline, data, 7), data, TrainConfig(3000, seed=7, progress=False))
    b = train(build_model(space, space.baseline, data, 7), data, TrainConfig(3000, seed=7, progress=False))
    assert a.window_ne == b.window_ne and a.eval_ne == b.eval_ne


def test_archs_built_with_one_seed_share_their_embedding_tables(spaces):
    """Common random numbers: the tables depend on the seed, not on the arch (whose layers are drawn
    first and consume a different amount of randomness), so two archs' proxy NEs differ by what the
    archs do rather than by the tables they happened to start from."""
    space = spaces["rankitect"]
    data = load_data("synthetic:1", space, 3000)
    a, b = space.sample(1), space.sample(2)
    assert space.params(a) != space.params(b)
    a5, b5, a6 = (build_model(space, arch, data, seed).embedding.weight for arch, seed in ((a, 5), (b, 5), (a, 6)))
    assert torch.equal(a5, b5) and not torch.equal(a5, a6)
    assert abs(a5.std().item() - 1 / math.sqrt(space.spec.embed.dim)) < 0.01


def test_out_of_vocabulary_rows_start_at_zero_and_still_learn(spaces):
    """A new id's embedding must not be a seed's random draw (ml-100k's tail is 85% new users), yet a zero
    row must still get gradient where training does reach it, through dot products included."""
    space = spaces["dlrm"]
    data = load_data("synthetic:1", space, 3000)
    for seed in (5, 6):
        model = build_model(space, space.baseline, data, seed)
        oov = model.embed(torch.zeros(4, len(data.vocab_sizes), dtype=torch.int64))
        assert torch.count_nonzero(oov) == 0
        assert torch.count_nonzero(model.embed(torch.ones(4, len(data.vocab_sizes), dtype=torch.int64))) > 0
    dense = torch.randn(4, data.dense.shape[1])
    cats = torch.zeros(4, len(data.vocab_sizes), dtype=torch.int64)
    model(dense, cats).sum().backward()
    grad = model.embedding.weight.grad[model.offsets]
    assert (grad.abs().sum(-1) > 0).all()


def test_early_stop_proxy_reports_window_ne_and_cost(spaces):
    space = spaces["tiny"]
    data = load_data("synthetic:1", space, 4000)
    arch = space.sample(2)
    result = early_stop_proxy(space, arch, data, 4000)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        space.subnet(arch)(*space.example_inputs(1))
    assert 0 < result.window_ne < 1.5 and result.extra["flops"] == counter.get_total_flops()


def test_cli_train_json_and_save(tmp_path):
    proc = run_rks(
        "train",
        space_path("tiny"),
        "--baseline",
        "--data",
        "synthetic:2",
        "--examples",
        "3000",
        "--json",
        "--save",
        tmp_path / "run",
    )
    out = json.loads(proc.stdout)
    for key in ["window_ne", "eval_ne", "auc", "flops", "params", "examples", "seconds"]:
        assert key in out
    assert out["examples"] == 3000
    saved = {p.name for p in (tmp_path / "run").iterdir()}
    assert saved == {"model.py", "arch.json", "weights.pt", "metrics.json"}
    state = torch.load(tmp_path / "run" / "weights.pt")
    assert "embedding.weight" in state and any(k.startswith("body.") for k in state)


@pytest.mark.skipif(not (DATA / "criteo-8k" / "train.txt").exists(), reason="shared Criteo data absent")
def test_dlrm_on_real_criteo_beats_the_mean_rate():
    proc = run_rks(
        "train",
        space_path("dlrm"),
        "--baseline",
        "--data",
        f"criteo:{DATA / 'criteo-8k' / 'train.txt'}",
        "--examples",
        "6400",
        "--json",
    )
    out = json.loads(proc.stdout)
    assert out["eval_ne"] < 1.0 and out["auc"] > 0.6


SHIPPED_TABLES = [("avazu_dlrm", "avazu-9k", "avazu-9k", 4000), ("ml100k_dlrm", "ml-100k", "ml-100k", 80000)]


@pytest.mark.slow
@pytest.mark.parametrize("space_name, folder, schema, examples", SHIPPED_TABLES)
def test_shipped_table_spaces_fit_their_schemas_and_learn(space_name, folder, schema, examples):
    """The DLRM baselines sized for the shared tables: their schema yields exactly the space's inputs, and a
    short run of the baseline beats predicting the mean rate on the held-out tail."""
    path = DATA / folder
    if not path.exists():
        pytest.skip(f"shared {folder} data absent")
    proc = run_rks(
        "train",
        space_path(space_name),
        "--baseline",
        "--data",
        f"table:{path}",
        "--schema",
        ROOT / "schemas" / f"{schema}.json",
        "--examples",
        examples,
        "--lr",
        "3e-3",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr[-400:]
    out = json.loads(proc.stdout)
    assert out["eval_ne"] < 0.99 and out["auc"] > 0.6, out


def test_a_file_over_one_preprocessing_chunk_keeps_every_row_in_order(tmp_path):
    """Preprocessing reads 65,536 rows per chunk: a longer file must come out whole and in order, with one
    vocabulary across chunks (a value first seen in the second chunk of the training part gets one index)."""
    n = 140_000
    rows = []
    for k in range(n):
        label = k % 3 == 0
        cats = [f"v{k % 50}", "late" if k >= 66_000 else f"e{k % 7}"] + ["x"] * 24
        rows.append("\t".join([str(int(label))] + [str(k % 10)] * 13 + cats))
    path = tmp_path / "big.txt"
    path.write_text("\n".join(rows) + "\n")
    data = load_dataset(parse_data_spec(f"criteo:{path}"), min_count=1, eval_fraction=0.2)
    assert data.n == n
    assert np.array_equal(data.labels, np.array([k % 3 == 0 for k in range(n)], dtype=np.float32))
    late = data.cats[66_000:, 1]
    assert data.n_train == 112_000
    assert len(set(late.tolist())) == 1 and late[0] != 0
