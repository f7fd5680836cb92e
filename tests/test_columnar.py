"""The columnar Criteo path (pyarrow) writes what the row-at-a-time path writes, byte for byte: the same
vocabularies, counts and labels, on the shared Criteo sample and on files with missing fields, negative
counts, empty lines and gzip. While both paths are in the tree this compares them directly."""

import gzip

import numpy as np
import pytest
from test_data_train import criteo_line

from conftest import DATA
from rankitect_dsl.data import preprocess
from rankitect_dsl.data.sources import CriteoSource


def _both(path, monkeypatch, tmp_path, **kw):
    out = []
    for row_path in ("1", "0"):
        monkeypatch.setenv(preprocess.ROW_PATH_ENV, row_path)
        monkeypatch.setenv("RKS_CACHE", str(tmp_path / f"cache-{row_path}"))
        out.append(preprocess.load_dataset(CriteoSource(str(path)), **kw))
    return out


def _assert_identical(rows, columns):
    assert rows.vocab_sizes == columns.vocab_sizes and rows.n_train == columns.n_train
    for name in ("dense", "cats", "labels"):
        a, b = np.asarray(getattr(rows, name)), np.asarray(getattr(columns, name))
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


def _awkward_file(path, n=3000, gz=False):
    rng = np.random.default_rng(5)
    lines = []
    for i in range(n):
        ints = [int(x) for x in rng.integers(-3, 5000, 13)]
        ints = ["" if rng.random() < 0.2 else v for v in ints]  # missing counts
        cats = ["" if rng.random() < 0.1 else f"{c:08x}" for c in rng.zipf(1.5, 26) % 5000]
        lines.append(criteo_line(int(rng.random() < 0.3), ints, cats))
        if i % 500 == 0:
            lines.append("\n")  # empty lines are skipped by both
    text = "".join(lines)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("min_count", [1, 3])
def test_columnar_criteo_equals_the_row_path_byte_for_byte(tmp_path, monkeypatch, gz, min_count):
    path = tmp_path / ("day.txt.gz" if gz else "day.txt")
    _awkward_file(path, gz=gz)
    rows, columns = _both(path, monkeypatch, tmp_path, min_count=min_count, eval_fraction=0.25)
    assert rows.n == 3000
    _assert_identical(rows, columns)


@pytest.mark.skipif(not (DATA / "criteo-8k" / "train.txt").exists(), reason="the shared criteo-8k sample is absent")
def test_columnar_criteo_equals_the_row_path_on_the_shared_sample(tmp_path, monkeypatch):
    _assert_identical(*_both(DATA / "criteo-8k" / "train.txt", monkeypatch, tmp_path))


def test_a_bad_row_still_names_its_line(tmp_path, monkeypatch):
    path = tmp_path / "day.txt"
    _awkward_file(path, n=200)
    lines = path.read_text().splitlines(keepends=True)
    lines[120] = criteo_line(0, ["1.5"] + [1] * 12, ["a"] * 26)
    path.write_text("".join(lines))
    monkeypatch.setenv("RKS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(preprocess.DataError, match=r"day.txt:121: integer feature I1 is `1.5`"):
        preprocess.load_dataset(CriteoSource(str(path)))
    assert not any((tmp_path / "cache").glob("*/meta.json"))
