"""Bringing a public table without editing it first: a header-less file named by `columns`, labels matched
as strings (`positive`), and fields padded with spaces after the delimiter (as the UCI Adult files are)."""

import json

import numpy as np
import pytest

from rankitect_dsl.data.dataset import DataError
from rankitect_dsl.data.preprocess import load_dataset
from rankitect_dsl.data.sources import TableSource

ROWS = [
    ("39", "State-gov", "<=50K"),
    ("50", "Self-emp", ">50K"),
    ("38", "Private", "<=50K."),
    ("53", "Private", ">50K."),
]


def _files(tmp_path, schema: dict):
    data = tmp_path / "adult.data"
    data.write_text("".join(f"{a}, {w}, {c}\n" for a, w, c in ROWS * 10))
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    return data, path


SCHEMA = {
    "columns": ["age", "workclass", "income"],
    "label": {"column": "income", "positive": [">50K", ">50K."]},
    "dense": ["age"],
    "categorical": ["workclass"],
    "delimiter": ",",
}


def test_a_header_less_padded_file_with_string_labels_loads(tmp_path):
    data, schema = _files(tmp_path, SCHEMA)
    loaded = load_dataset(TableSource(str(data), str(schema)), min_count=1, eval_fraction=0.25, cache=False)
    assert loaded.n == 40  # the first row is data, not a header
    assert loaded.labels.tolist() == [0.0, 1.0, 0.0, 1.0] * 10
    assert loaded.dense[0, 0] == pytest.approx(np.log1p(39))
    # " Private" and "Private" are one value: the padding after the comma is not part of the field
    assert loaded.vocab_sizes == [4] and len(set(loaded.cats[:, 0].tolist())) == 3


@pytest.mark.parametrize(
    "change, message",
    [
        ({"label": {"column": "income", "rule": ">= 1", "positive": [">50K"]}}, "give `rule`"),
        ({"label": {"column": "income", "positive": []}}, "label.positive: must list at least one value"),
        ({"columns": ["age", "age", "income"]}, 'columns[1]: column "age" is already listed at columns[0]'),
    ],
)
def test_bad_columns_and_labels_are_refused_by_their_key(tmp_path, change, message):
    _, schema = _files(tmp_path, {**SCHEMA, **change})
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TableSource(str(tmp_path / "adult.data"), str(schema))


def test_missing_values_may_list_the_empty_string(tmp_path):
    """`""` is always missing: listing it is accepted and changes nothing; a non-string is still refused at
    its own index."""
    from rankitect_dsl.data.schema import Schema

    base = {"label": "click", "categorical": ["user"]}
    path = tmp_path / "s.json"
    read = {}
    for name, missing in (("plain", ["unknown"]), ("listed", ["", "unknown"])):
        path.write_text(json.dumps({**base, "missing_values": missing}))
        read[name] = Schema.load(str(path)).missing_values
    assert read["plain"] == read["listed"] == ("", "unknown")
    path.write_text(json.dumps({**base, "missing_values": ["", 3]}))
    with pytest.raises(DataError, match=r"missing_values\[1\]: expected a non-empty string"):
        Schema.load(str(path))
