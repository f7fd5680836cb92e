"""The columnar preprocessing (pyarrow) writes what docs/data.md's rules make of the sources' row reader:
`row_reference.py` states those rules again, a row at a time, and each case compares every array with it,
naming the first row and column that differ. Criteo: the shared sample and files with missing fields,
negative counts, empty lines and gzip. Tables: every rule of a schema (joins, sorting with ties, running
counts and rates, standardisers, multi-token categoricals, bags, eval files, globs, CSV and Parquet,
quotes, chunks of 300 bytes) on generated tables and the shared avazu-9k and ml-100k. A bad row is named
by `file:line`."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from row_reference import assert_matches_rows
from test_data_train import criteo_line

from conftest import DATA
from rankitect_dsl.data import columnar, preprocess
from rankitect_dsl.data.sources import CriteoSource, TableSource

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def _load(source, tmp_path, monkeypatch, **kw):
    monkeypatch.setenv("RKS_CACHE", str(tmp_path / "cache"))
    return preprocess.load_dataset(source, **kw)


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
    data = _load(CriteoSource(str(path)), tmp_path, monkeypatch, min_count=min_count, eval_fraction=0.25)
    assert data.n == 3000
    assert_matches_rows(data, CriteoSource(str(path)), min_count, eval_fraction=0.25)


@pytest.mark.skipif(not (DATA / "criteo-8k" / "train.txt").exists(), reason="the shared criteo-8k sample is absent")
def test_columnar_criteo_equals_the_row_path_on_the_shared_sample(tmp_path, monkeypatch):
    source = CriteoSource(str(DATA / "criteo-8k" / "train.txt"))
    assert_matches_rows(_load(source, tmp_path, monkeypatch), source, min_count=2)


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


def _awkward_table(folder, fmt, n=1500, seed=3):
    """Every rule a table goes through: a header with RecBole types, padding after the delimiter, a time
    column with ties, multi-token categoricals (first token kept), missing and non-finite dense values, a
    join, running counts and rates, a bag with empty and missing tokens, hour and weekday of a time stamp
    (Unix seconds or YYMMDDHH), and a separate evaluation file. `dat` is the csv layout separated by `::`,
    its side table keeping commas by a delimiter of its own."""
    rng = np.random.default_rng(seed)
    sep = "::" if fmt == "dat" else ","
    genres = ["drama comedy", "", "drama", "action drama war", "comedy unknown", "war", "x y z w v"]

    def rows(k):
        out = []
        for _ in range(k):
            dense = rng.choice(["", "unknown", "inf", "-2.5", "0", "7", "1e3", str(rng.normal())])
            out.append(
                {
                    "ts": str(int(rng.integers(0, 200))),
                    "user": f"u{int(rng.zipf(1.6)) % 90}" + (" mobile" if rng.random() < 0.3 else ""),
                    "item": f"i{int(rng.integers(0, 40))}",
                    "rating": str(int(rng.integers(1, 6))),
                    "x": dense,
                    "y": str(rng.integers(-5, 500)),
                    "genres": str(rng.choice(genres)),
                    "when": str(
                        rng.choice([int(rng.integers(9 * 10**8, 17 * 10**8)), "unknown", "14102100", "15010223"])
                    ),
                }
            )
        return out

    head = list(rows(1)[0])
    for name, part in (("part-1", rows(n // 2)), ("part-2", rows(n // 2)), ("test", rows(n // 4))):
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(part), folder / f"{name}.parquet")
        else:
            lines = [f"{sep} ".join(f"{h}:token" for h in head)] + [f"{sep} ".join(r[h] for h in head) for r in part]
            (folder / f"{name}.{fmt}").write_text("\n".join(lines) + "\n")
    (folder / "items.csv").write_text("item,kind\n" + "".join(f"i{k},k{k % 4}\n" for k in range(40)))
    schema = {
        "files": [f"part-*.{fmt}"],
        "eval_files": [f"test.{fmt}"],
        "joins": [{"file": "items.csv", "on": "item", **({"delimiter": ","} if sep != "," else {})}],
        "sort_by": "ts",
        "label": {"column": "rating", "rule": ">= 4"},
        "dense": ["y", {"column": "x", "transform": "standardize"}],
        "categorical": ["user", "item", "kind", {"column": "when", "parts": ["hour", "weekday"]}],
        "count_features": ["user", "item"],
        "rate_features": ["user"],
        "bags": [{"column": "genres", "max_len": 3, "pooling": "sum"}],
        "missing_values": ["unknown"],
        "non_finite": "zero",
        **({"delimiter": sep} if sep != "," else {}),
    }
    (folder / "schema.json").write_text(json.dumps(schema))
    return folder, folder / "schema.json"


@pytest.mark.parametrize("fmt", ["csv", "parquet", "dat"])
@pytest.mark.parametrize("min_count", [1, 3])
def test_columnar_tables_equal_the_row_path_byte_for_byte(tmp_path, monkeypatch, fmt, min_count):
    folder, schema = _awkward_table(tmp_path, fmt)
    data = _load(TableSource(str(folder), str(schema)), tmp_path, monkeypatch, min_count=min_count)
    assert data.n == 1875 and data.n_train == 1500
    assert_matches_rows(data, TableSource(str(folder), str(schema)), min_count)


@pytest.mark.parametrize(
    "key, folder, schema",
    [("avazu-9k", "avazu-9k", "avazu-9k.json"), ("ml-100k", "ml-100k/ml-100k.inter", "ml-100k.json")],
)
def test_columnar_tables_equal_the_row_path_on_the_shared_sets(tmp_path, monkeypatch, key, folder, schema):
    if not (DATA / folder).exists():
        pytest.skip(f"the shared {folder} is absent")
    source = TableSource(str(DATA / folder), str(SCHEMAS / schema))
    assert_matches_rows(_load(source, tmp_path, monkeypatch), source, min_count=2)


@pytest.mark.parametrize("fmt", ["csv", "dat"])
@pytest.mark.parametrize(
    "line, message",
    [
        ("9, u1, i1, 5, abc, 3, war, 0", r"part-1.{fmt}:5: dense column `x` is `abc`, not a number"),
        ("9, u1, i1, five, 1, 3, war, 0", r"part-1.{fmt}:5: label column `rating` is `five`"),
        ("9, u1, i1, 5, 1, 3", r"part-1.{fmt}:5: expected 8 fields, got 6 \(the header names 8\)"),
        ("9, u1, i99, 5, 1, 3, war, 0", r"part-1.{fmt}:5: no column\(s\) kind"),
        ('9, u1, i1, 5, 1, 3, "war"x, 0', r"part-1.{fmt}:5: cannot read the row"),  # csv's strict mode refuses it
        (
            "9, u1, i1, 5, 1, 3, war, 14133100",
            r"part-1.{fmt}:5: categorical\[3\] reads column `when` as a time stamp, but `14133100` is not a valid",
        ),
    ],
)
def test_a_bad_table_row_still_names_its_file_and_line(tmp_path, monkeypatch, fmt, line, message):
    folder, schema = _awkward_table(tmp_path, fmt, n=40)
    _replace_line(folder / f"part-1.{fmt}", 5, line.replace(", ", ":: ") if fmt == "dat" else line)
    monkeypatch.setenv("RKS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(preprocess.DataError, match=message.format(fmt=fmt)):
        preprocess.load_dataset(TableSource(str(folder), str(schema)))
    assert not any((tmp_path / "cache").glob("*/meta.json"))


def _replace_line(path, number: int, line: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = line + "\n"
    path.write_text("".join(lines))


def _rewrite_bags(folder, fmt: str, first: int, every: int, bag) -> None:
    """In the training files, every `every`-th row from `first` gets the bag field `bag(genres, sep)`."""
    sep = "::" if fmt == "dat" else ","
    for path in folder.glob(f"part-*.{fmt}"):
        lines = path.read_text().splitlines(keepends=True)
        for k in range(first, len(lines), every):
            head, _, when = lines[k].rstrip("\n").rpartition(f"{sep} ")
            head, _, genres = head.rpartition(f"{sep} ")
            lines[k] = f"{head}{sep} {bag(genres, sep)}{sep} {when}\n"
        path.write_text("".join(lines))


def _quote_some_bags(folder, fmt: str = "csv") -> None:
    """Every 37th row's bag quoted, with the delimiter inside the quotes."""
    _rewrite_bags(folder, fmt, 5, 37, lambda genres, sep: f'"{genres}{sep} war"')


def test_a_quoted_field_after_the_padding_is_read_as_csv_reads_it(tmp_path, monkeypatch):
    folder, schema = _awkward_table(tmp_path, "csv", n=40)
    _replace_line(folder / "part-1.csv", 5, '9, u1, i1, 5, 1, 3, " war, drama", 14102100')
    data = _load(TableSource(str(folder), str(schema)), tmp_path, monkeypatch, min_count=1)
    assert_matches_rows(data, TableSource(str(folder), str(schema)), min_count=1)


@pytest.mark.parametrize("fmt, quoted", [("csv", False), ("csv", True), ("dat", False), ("dat", True)])
def test_a_table_read_in_many_small_chunks_is_the_same(tmp_path, monkeypatch, fmt, quoted):
    """Chunks of a few hundred bytes: the header is skipped once, lines are never split, and a chunk with
    quotes goes through the csv dialect's reader while the next without them goes through pyarrow."""
    folder, schema = _awkward_table(tmp_path, fmt, n=400)
    if quoted:
        _quote_some_bags(folder, fmt)
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 300)
    data = _load(TableSource(str(folder), str(schema)), tmp_path, monkeypatch, min_count=1)
    assert_matches_rows(data, TableSource(str(folder), str(schema)), min_count=1)


@pytest.mark.parametrize("fmt", ["csv", "dat"])
def test_a_quoted_field_over_several_lines_is_one_value_even_across_chunks(tmp_path, monkeypatch, fmt):
    """Quoted bags of ~250 bytes over 60 lines, in 300-byte chunks: every chunk end falls inside one now
    and then, and the record is held over whole for the next chunk (one row, as the row reader reads it)."""
    folder, schema = _awkward_table(tmp_path, fmt, n=400)
    _rewrite_bags(folder, fmt, 3, 7, lambda genres, sep: f'"{genres} ' + "war\n" * 60 + 'x"')
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 300)
    source = TableSource(str(folder), str(schema))
    data = _load(source, tmp_path, monkeypatch, min_count=1)
    rows = list(TableSource(str(folder), str(schema)).rows())  # the row reader, as the reference
    assert data.n == len(rows) == 500
    assert np.asarray(data.labels).tolist() == [r.label for r in rows]
    assert np.diff(np.asarray(data.bags[0].offsets)).tolist() == [len(r.bags[0]) for r in rows]


def test_bytes_that_are_not_utf8_read_as_the_replacement_character(tmp_path, monkeypatch):
    """As a text reader with errors="replace": b"caf\\xe9" and b"caf\\xe8" are both "caf\\ufffd", one value."""
    path = tmp_path / "t.csv"
    rows = [b"1,caf\xe9,3", b"0,caf\xe8,4", b"1,tea,5", b"0,tea,6"] * 10
    path.write_bytes(b"y,drink,x\n" + b"\n".join(rows) + b"\n")
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"label": "y", "dense": ["x"], "categorical": ["drink"]}))
    data = _load(TableSource(str(path), str(schema)), tmp_path, monkeypatch, min_count=1, eval_fraction=0.25)
    ids = np.asarray(data.cats[:4, 0])
    assert ids[0] == ids[1] != ids[2] == ids[3] and data.vocab_sizes == [3]


@pytest.mark.parametrize("fmt", ["csv", "dat"])
def test_quotes_off_reads_a_quote_as_any_other_character(tmp_path, monkeypatch, fmt):
    """With `"quotes": false`, a bag written `"war" drama` keeps its quotes (the tokens `"war"` and `drama`)
    in the columnar engine as in the row reader, in small chunks; the same file is refused as CSV."""
    folder, schema = _awkward_table(tmp_path, fmt, n=400)
    _rewrite_bags(folder, fmt, 4, 11, lambda genres, sep: '"war" drama')
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 300)
    with pytest.raises(preprocess.DataError, match=r"part-1\.\w+:5: cannot read the row"):
        _load(TableSource(str(folder), str(schema)), tmp_path, monkeypatch, min_count=1)
    schema.write_text(json.dumps(json.loads(schema.read_text()) | {"quotes": False}))
    data = _load(TableSource(str(folder), str(schema)), tmp_path / "off", monkeypatch, min_count=1)
    assert_matches_rows(data, TableSource(str(folder), str(schema)), min_count=1)
    rows = list(TableSource(str(folder), str(schema)).rows())
    assert sum(r.bags[0][:1] == ['"war"'] for r in rows) > 20
