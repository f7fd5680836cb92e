"""Bringing a public table without editing it first: a header-less file named by `columns`, labels matched
as strings (`positive`), and fields padded with spaces after the delimiter (as the UCI Adult files are)."""

import json

import numpy as np
import pytest

from conftest import ROOT, run_rks
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


# -- MovieLens-1M as GroupLens publishes it: `::`, no header rows, genres joined by `|` -----------------

SCHEMAS = ROOT / "schemas"
ML_SPACE = """space ml
input dense  : dense[2]
input sparse : embed[{n}, 8]
choice top { blocks linear from dense, sparse fixed inputs dim linear 16 }
output from top
baseline b {
  top = linear(dense, sparse) dim 16
}
"""
RATINGS = ["user_id", "item_id", "rating", "timestamp"]
USERS = ["user_id", "gender", "age", "job", "zip"]
MOVIES = ["item_id", "title", "genres"]
COMMON = {
    "quotes": False,  # MovieLens titles hold quotes that are not CSV quoting
    "sort_by": "timestamp",
    "label": {"column": "rating", "rule": ">= 4"},
    "categorical": ["user_id", "item_id", "gender", "age", "zip"],
    "bags": [{"column": "genres", "sep": "|", "max_len": 3, "pooling": "mean"}],
    "count_features": ["user_id", "item_id"],
}


def _movielens(folder, n=600, seed=5):
    """Rows in MovieLens-1M's layout (ratings: user, movie, rating, Unix seconds; users: id, gender, age,
    occupation, zip code; movies: id, title, genres joined by `|`), as lists of fields per file."""
    rng = np.random.default_rng(seed)
    genres = ["Action", "Comedy", "Drama", "Children's", "Film-Noir", "Sci-Fi"]
    users = [
        [str(u), "MF"[u % 2], str([1, 18, 25, 35][u % 4]), str(u % 21), f"{rng.integers(10**5):05d}"]
        for u in range(1, 41)
    ]
    movies = [
        [
            str(m),
            f"Movie {m}: Part {m % 3}, The ({1950 + m})" if m % 7 else f'"Great Performances" Movie {m} (1998)',
            "|".join(rng.choice(genres, rng.integers(1, 4), replace=False)),
        ]
        for m in range(1, 31)
    ]
    ratings, t = [], 978_300_000
    for _ in range(n):
        t += int(rng.integers(0, 5000))  # ties included
        ratings.append([str(rng.integers(1, 41)), str(rng.integers(1, 31)), str(rng.integers(1, 6)), str(t)])
    return ratings, users, movies


def _write(path, rows, sep, header=None):
    path.write_text("".join(sep.join(r) + "\n" for r in ([header] if header else []) + rows))


def _published_and_tsv(tmp_path):
    """The same rows twice: as published (`.dat`, `::`, no headers, columns named by the schema) and as
    headered tab-separated files (`.tsv`); returns the two (folder, schema path) pairs."""
    ratings, users, movies = _movielens(tmp_path)
    raw, tsv = tmp_path / "raw", tmp_path / "tsv"
    raw.mkdir(parents=True), tsv.mkdir(parents=True)
    for name, rows, header in (("ratings", ratings, RATINGS), ("users", users, USERS), ("movies", movies, MOVIES)):
        _write(raw / f"{name}.dat", rows, "::")
        _write(tsv / f"{name}.tsv", rows, "\t", header)
    raw_schema = dict(
        COMMON,
        files=[{"file": "ratings.dat", "columns": RATINGS}],
        delimiter="::",
        joins=[
            {"file": "users.dat", "on": "user_id", "columns": USERS},
            {"file": "movies.dat", "on": "item_id", "columns": MOVIES},
        ],
    )
    tsv_schema = dict(
        COMMON,
        files=["ratings.tsv"],
        joins=[{"file": "users.tsv", "on": "user_id"}, {"file": "movies.tsv", "on": "item_id"}],
    )
    (raw / "schema.json").write_text(json.dumps(raw_schema))
    (tsv / "schema.json").write_text(json.dumps(tsv_schema))
    return (raw, raw / "schema.json"), (tsv, tsv / "schema.json")


def _arrays(folder, schema) -> dict:
    data = load_dataset(TableSource(str(folder), str(schema)), min_count=1, cache=False)
    arrays = {"dense": data.dense, "cats": data.cats, "labels": data.labels}
    arrays.update({f"bag{k}_{part}": getattr(b, part) for k, b in enumerate(data.bags) for part in ("offsets", "ids")})
    return {k: (np.asarray(v).dtype, np.asarray(v).shape, np.asarray(v).tobytes()) for k, v in arrays.items()} | {
        "split": (data.n_train, tuple(data.vocab_sizes))
    }


def test_movielens_as_published_gives_the_arrays_of_headered_tab_separated_files(tmp_path):
    (raw, raw_schema), (tsv, tsv_schema) = _published_and_tsv(tmp_path)
    published, headered = _arrays(raw, raw_schema), _arrays(tsv, tsv_schema)
    assert published == headered
    # each vocabulary: its distinct values in the training rows and the out-of-vocabulary id (users, movies,
    # genders, ages, zips, the 6 genres)
    assert published["split"][1] == (41, 31, 3, 5, 41, 7)


def test_movielens_as_published_trains_with_a_schema_alone(tmp_path):
    (raw, schema), _ = _published_and_tsv(tmp_path)
    (tmp_path / "ml.rks").write_text(ML_SPACE.replace("{n}", "6"))
    proc = run_rks(
        "train",
        tmp_path / "ml.rks",
        "--baseline",
        "--data",
        f"table:{raw}",
        "--schema",
        schema,
        "--json",
        "--examples",
        "2000",
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 < result["eval_ne"] < 1.2


def test_a_side_table_row_of_the_wrong_width_names_its_file_line_and_setting(tmp_path):
    (raw, schema), _ = _published_and_tsv(tmp_path)
    with open(raw / "users.dat", "a") as f:
        f.write("999::M::25\n")  # line 41: three fields where joins[0].columns names five
    with pytest.raises(DataError, match=r"users\.dat:41: expected 5 fields, got 3 \(joins\[0\]\.columns names 5\)"):
        load_dataset(TableSource(str(raw), str(schema)), cache=False)


def test_the_main_files_columns_never_name_a_side_tables(tmp_path):
    """A header-less main file named by the top-level `columns`, a side table with its own header row: the side
    table reads its header (the top-level list, applied to it, would find 4 names for 3 fields)."""
    (raw, _), (tsv, tsv_schema) = _published_and_tsv(tmp_path)
    (tsv / "ratings.tsv").write_text("".join((tsv / "ratings.tsv").read_text().splitlines(keepends=True)[1:]))
    schema = json.loads(tsv_schema.read_text()) | {"columns": RATINGS}
    (tsv / "mixed.json").write_text(json.dumps(schema))
    _, (tsv2, tsv2_schema) = _published_and_tsv(tmp_path / "again")
    assert _arrays(tsv, tsv / "mixed.json") == _arrays(tsv2, tsv2_schema)


def test_each_file_of_a_part_may_name_its_own_columns(tmp_path):
    """Two training files: one with a header row, one without and its columns in another order, named by its
    own entry — the same arrays as both headered."""
    ratings, _, _ = _movielens(tmp_path)
    order = ["timestamp", "rating", "item_id", "user_id"]
    schema = {k: v for k, v in COMMON.items() if k != "bags"} | {"categorical": ["user_id", "item_id"]}
    _write(tmp_path / "a.csv", ratings[:300], ",", RATINGS)
    _write(tmp_path / "b.csv", [[r[RATINGS.index(c)] for c in order] for r in ratings[300:]], ",")
    _write(tmp_path / "b_headered.csv", ratings[300:], ",", RATINGS)
    (tmp_path / "own.json").write_text(json.dumps(schema | {"files": ["a.csv", {"file": "b.csv", "columns": order}]}))
    (tmp_path / "plain.json").write_text(json.dumps(schema | {"files": ["a.csv", "b_headered.csv"]}))
    assert _arrays(tmp_path, tmp_path / "own.json") == _arrays(tmp_path, tmp_path / "plain.json")
    (tmp_path / "short.json").write_text(
        json.dumps(schema | {"files": [{"file": "b.csv", "columns": [*order[:3], "user"]}]})
    )
    with pytest.raises(DataError, match=r"names column `user_id`, which files\[0\]\.columns lacks"):
        load_dataset(TableSource(str(tmp_path), str(tmp_path / "short.json")), cache=False)


def test_time_parts_are_categoricals_of_the_hour_and_the_weekday(tmp_path):
    """Unix seconds and YYMMDDHH stamps as hour-of-day and day-of-week features, against `time.gmtime` and
    `calendar.weekday` (no datetime); a stamp that is neither is refused naming its line."""
    import calendar
    import time

    stamps = [978_300_760, 1_046_454_590, 0, 1_700_000_000, "14102100", "15010223", "unknown"]
    rows = [[str(s), str(k % 2)] for k, s in enumerate(stamps * 6)]
    _write(tmp_path / "t.csv", rows, ",", ["when", "y"])
    schema = {
        "label": "y",
        "categorical": [{"column": "when", "parts": ["hour", "weekday"]}],
        "missing_values": ["unknown"],
    }
    (tmp_path / "s.json").write_text(json.dumps(schema))
    source = TableSource(str(tmp_path / "t.csv"), str(tmp_path / "s.json"))
    got = [tuple(r.cats) for r in source.rows()][: len(stamps)]

    def expected(stamp):
        if stamp == "unknown":
            return ("", "")
        if isinstance(stamp, str):
            yy, mm, dd, hh = (int(stamp[i : i + 2]) for i in range(0, 8, 2))
            return (str(hh), str(calendar.weekday(2000 + yy, mm, dd)))
        t = time.gmtime(stamp)
        return (str(t.tm_hour), str(t.tm_wday))

    assert got == [expected(s) for s in stamps]
    data = load_dataset(source, min_count=1, eval_fraction=0.25, cache=False)
    assert data.n_cat == 2 and data.vocab_sizes == [len({e[0] for e in map(expected, stamps)}) + 1, 5 + 1]
    (tmp_path / "t.csv").write_text((tmp_path / "t.csv").read_text().replace("15010223", "15013223", 1))
    with pytest.raises(DataError, match=r"t\.csv:7: categorical\[0\] reads column `when` as a time stamp"):
        load_dataset(TableSource(str(tmp_path / "t.csv"), str(tmp_path / "s.json")), cache=False)


def test_the_shipped_movielens_schema_reads_the_published_layout(tmp_path):
    """schemas/ml-1m.json on a folder of `ratings.dat`, `users.dat` and `movies.dat` as GroupLens lays them
    out: six categoricals, the hour and weekday of each rating, genres as a bag, running counts and rates."""
    ratings, users, movies = _movielens(tmp_path)
    for name, rows in (("ratings", ratings), ("users", users), ("movies", movies)):
        _write(tmp_path / f"{name}.dat", rows, "::")
    data = load_dataset(TableSource(str(tmp_path), str(SCHEMAS / "ml-1m.json")), min_count=1, cache=False)
    # embedding rows: six columns, two time parts and the genres bag; dense: two running counts, two rates
    assert (data.n, data.n_cat, data.n_dense, len(data.bags)) == (600, 9, 4, 1)
    # the hours of the day and days of the week the stamps fall on, in the training rows, plus the OOV id
    n_train = data.n_train
    stamps = sorted(int(r[3]) for r in ratings)[:n_train]
    assert data.vocab_sizes[6:8] == [
        len({(s // 3600) % 24 for s in stamps}) + 1,
        len({(s // 86400 + 3) % 7 for s in stamps}) + 1,
    ]
