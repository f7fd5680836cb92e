"""Multi-valued features (bags): stored as offsets + ids, pooled into one embedding row by the model; and a
schema's `eval_files` and globbed `files`."""

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from rankitect_dsl import load_source
from rankitect_dsl.data.dataset import PAD, DataError
from rankitect_dsl.data.preprocess import load_dataset
from rankitect_dsl.data.sources import TableSource
from rankitect_dsl.runtime.model import CTRModel, build_model

GENRES = ["drama comedy", "", "drama", "action drama war", "comedy unknown", "war"]
ROWS = [(i % 2, f"u{i % 3}", GENRES[i % len(GENRES)]) for i in range(60)]

SPACE = """space bagged

input dense  : dense[1]
input sparse : embed[2, 4]

choice top { blocks linear from dense, sparse fixed inputs dim linear 8 }

output from top

baseline production {
  top = linear(dense, sparse) dim 8
}
"""


def _table(tmp_path, rows=ROWS, name="train.csv", **schema):
    path = tmp_path / name
    path.write_text("clicked,user,genres,x\n" + "".join(f"{c},{u},{g},{i}\n" for i, (c, u, g) in enumerate(rows)))
    spec = {
        "label": "clicked",
        "dense": ["x"],
        "categorical": ["user"],
        "bags": [{"column": "genres", "max_len": 2, "pooling": "mean"}],
        "missing_values": ["unknown"],
        **schema,
    }
    schema_path = tmp_path / "schema.json"
    schema_path.write_text(json.dumps(spec))
    return path, schema_path


def test_a_bag_is_stored_as_offsets_and_vocabulary_ids(tmp_path):
    data = load_dataset(TableSource(*map(str, _table(tmp_path))), min_count=1, eval_fraction=0.25, cache=False)
    assert data.n_cat == 2 and data.cats.shape == (60, 1)
    bag = data.bags[0]
    n_train = data.n_train
    train_tokens = [t for _, _, g in ROWS[:n_train] for t in g.split(" ")[:2] if t and t != "unknown"]
    counts = {t: train_tokens.count(t) for t in set(train_tokens)}
    vocab = {t: i + 1 for i, t in enumerate(sorted(counts, key=lambda t: (-counts[t], t)))}
    assert data.vocab_sizes[-1] == len(vocab) + 1
    for i, (_, _, genres) in enumerate(ROWS):
        # at most max_len tokens, the missing value "unknown" and empty fields dropped
        want = [vocab.get(t, 0) for t in genres.split(" ") if t and t != "unknown"][:2]
        assert bag.ids[bag.offsets[i] : bag.offsets[i + 1]].tolist() == want
        padded = data.categorical(slice(i, i + 1))[0, 1:].tolist()
        assert padded == want + [PAD] * (2 - len(want))
    rows = np.array([5, 0, 3])
    assert np.array_equal(data.categorical(rows), np.concatenate([data.categorical(slice(r, r + 1)) for r in rows]))


@pytest.mark.parametrize("pooling", ["mean", "sum"])
def test_the_pooled_row_is_the_hand_computed_pool_of_the_bag_rows(pooling):
    model = CTRModel(torch.nn.Identity(), [3, 5], 4, seed=0, bags=[(3, pooling)])
    torch.nn.init.normal_(model.embedding.weight)
    cats = torch.tensor([[1, 1, 4, PAD], [2, PAD, PAD, PAD], [0, 2, 2, 3]])
    out = model.embed(cats)
    table = model.embedding.weight.detach()
    assert out.shape == (3, 2, 4)
    for row in range(3):
        assert torch.equal(out[row, 0], table[int(cats[row, 0])])
        ids = [int(i) for i in cats[row, 1:] if i != PAD]
        bag = table[[3 + i for i in ids]] if ids else torch.zeros(0, 4)
        want = bag.sum(0) if pooling == "sum" or not ids else bag.mean(0)
        assert torch.allclose(out[row, 1], want, atol=1e-6), row
    assert torch.equal(out[1, 1], torch.zeros(4))  # an empty bag is a zero row


def test_an_empty_bag_gets_no_gradient_and_padding_touches_no_row():
    model = CTRModel(torch.nn.Identity(), [2, 4], 3, seed=0, bags=[(2, "mean")])
    model.embed(torch.tensor([[1, PAD, PAD], [1, 3, PAD]])).sum().backward()
    touched = model.embedding.weight.grad.abs().sum(1).nonzero().squeeze(1).tolist()
    assert touched == [1, 2 + 3]  # the categorical's row 1 and the bag's id 3; no row for PAD or the empty bag


def test_a_bagged_table_trains_costs_exactly_and_exports(tmp_path):
    data = load_dataset(TableSource(*map(str, _table(tmp_path))), min_count=1, eval_fraction=0.25, cache=False)
    space = load_source(SPACE)
    data.check_fits(space)
    arch = space.baseline
    model = build_model(space, arch, data, seed=0)
    dense = torch.from_numpy(np.array(data.dense[:8]))
    cats = torch.from_numpy(data.categorical(slice(0, 8)))
    embedded = model.embed(cats)
    with FlopCounterMode(display=False) as counter:
        model.body(dense, embedded)
    assert counter.get_total_flops() == space.flops(arch) * 8
    assert sum(p.numel() for p in model.body.parameters()) == space.params(arch)
    assert sum(p.numel() for p in model.embedding.parameters()) == sum(data.vocab_sizes) * 4
    exported = torch.export.export(model, (dense, cats))
    assert torch.allclose(exported.module()(dense, cats), model(dense, cats))


def test_eval_files_are_the_evaluation_part_and_never_fit_a_vocabulary(tmp_path):
    _table(tmp_path, ROWS[:40], "test.csv")
    train, schema = _table(tmp_path, ROWS[40:] + [(1, "only_in_train", "war")] * 2, eval_files=["test.csv"])
    data = load_dataset(TableSource(str(train), str(schema)), min_count=1, eval_fraction=0.25, cache=False)
    assert (data.n, data.n_train) == (62, 22)
    assert data.labels[22:].tolist() == [float(c) for c, _, _ in ROWS[:40]]
    # "u0" is in both parts, "only_in_train" only in the training file: both have ids; the x column of
    # the evaluation rows is theirs, in their order
    assert data.vocab_sizes[0] == 1 + 4 and data.dense[22, 0] == pytest.approx(0.0)


def test_globbed_files_are_read_in_name_order_and_a_pattern_that_matches_nothing_is_refused(tmp_path):
    for k in (2, 0, 1):
        _table(tmp_path, ROWS[k * 20 : (k + 1) * 20], f"part-{k}.csv")
    _, schema = _table(tmp_path, ROWS[:1], "unused.csv", files=["part-*.csv"])
    data = load_dataset(TableSource(str(tmp_path), str(schema)), min_count=1, eval_fraction=0.25, cache=False)
    assert data.labels.tolist() == [float(c) for c, _, _ in ROWS]
    _, schema = _table(tmp_path, ROWS[:1], "unused.csv", files=["shard-*.parquet"])
    with pytest.raises(DataError, match=r"files\[0\]: `shard-\*.parquet` matches no file"):
        TableSource(str(tmp_path), str(schema))


@pytest.mark.parametrize(
    "bag, message",
    [
        ({"column": "genres", "max_len": 0}, r"bags\[0\].max_len: must be an integer in \[1, 1024\]"),
        ({"column": "genres", "pooling": "max"}, r"bags\[0\].pooling: must be mean or sum"),
        ({"column": "genres", "sep": ""}, r"bags\[0\].sep: expected a non-empty string"),
        ({"column": "genres", "width": 3}, r"bags\[0\]: unknown key\(s\) width"),
    ],
)
def test_bad_bags_are_refused_by_their_key_path(tmp_path, bag, message):
    path, schema = _table(tmp_path, bags=[bag])
    with pytest.raises(DataError, match=message):
        TableSource(str(path), str(schema))
