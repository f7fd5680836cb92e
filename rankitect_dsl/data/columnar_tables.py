"""Columnar preprocessing of `table:` sources (CSV / TSV / RecBole atomic files / Parquet) on pyarrow.

The sources' row reader reads a record at a time; here every file is read in chunks by pyarrow's CSV or
Parquet reader, each column dictionary-encoded into integer codes, and every rule the row reader applies to
a field (a number's parse, a label rule, a categorical's first token, a bag's split, a join's lookup) is
applied once per *distinct* value and spread over the rows through the codes, so Python's own parsing
decides each value exactly as the row reader's does while the work per row is numpy's. Sorting is a stable
argsort of the parsed keys (Python's sort is stable too); running counts and rates are grouped cumulative
sums; the sums behind standardisers and rate moments are sequential (`np.cumsum`), as the removed row
path's `+=` was, so every written array is byte for byte what it wrote (tests keep its digests).

A file the vectorised reading cannot vouch for (a row of the wrong width, a value no rule accepts, a row
whose join leaves a column missing) raises `NotColumnar`, and the sources' row reader names the file and
line of the first bad row.

Memory holds the schema's columns as integer codes (8 bytes a row a column) and each column's distinct
values, never the text of the file.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional

import numpy as np

from .columnar import CODE, ROWS_PER_CHUNK, Interned, NotColumnar, npy_header, read_chunks, vocabulary_ids
from .dataset import DataError
from .sources import _open_text, header_of

RATE_PRIOR_ROWS = 5.0  # pseudo-rows at the training part's rate that smooth a running rate


class _Columns:
    """The schema's columns of every row as int32 codes, one raw file per column in the cache entry's folder,
    appended chunk by chunk and read back one column at a time: memory holds a chunk or a column, never
    the table. Code -1 marks a row whose file lacks the column (a join may fill it)."""

    def __init__(self, folder: Path, names: list):
        self.paths = {c: folder / f"column{k}.raw" for k, c in enumerate(names)}
        self.files = {c: open(p, "wb") for c, p in self.paths.items()}
        self.partial: set = set()  # columns some file lacks
        self.n = 0

    def append(self, c, codes: np.ndarray) -> None:
        codes.astype(CODE, copy=False).tofile(self.files[c])

    def absent(self, c, rows: int) -> None:
        self.files[c].write(np.full(rows, -1, dtype=CODE).tobytes())
        self.partial.add(c)

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def read(self, c, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        stop = self.n if stop is None else stop
        return np.fromfile(self.paths[c], dtype=CODE, count=stop - start, offset=start * CODE(0).itemsize)

    def write(self, c, codes: np.ndarray) -> None:
        codes.astype(CODE).tofile(self.paths[c])

    def remove(self) -> None:
        for path in self.paths.values():
            path.unlink()


def build(source, folder: Path, split, min_count: int) -> tuple[int, list]:
    """The arrays of a TableSource in `folder`, as `preprocess._read` reads them. Returns (n_train,
    vocab_sizes)."""
    s = source.schema
    files = [t.path for t in (*source.files, *source.eval_files)]
    if any(p.suffix == ".parquet" for p in files) and not all(p.suffix == ".parquet" for p in files):
        raise NotColumnar("a table's files are all Parquet or all text, not both")
    sides = source._side_tables()
    side_columns = {c for _, table in sides for c in next(iter(table.values()), {})}
    needed = _needed(s)
    wanted = list(dict.fromkeys([*needed, *([s.sort_by] if s.sort_by else []), *(on for _, on in source.joins)]))
    interned = {c: Interned() for c in wanted}
    columns = _Columns(folder, wanted)
    try:
        sizes = [_read_part(source, part, interned, columns, side_columns) for part in _parts(source)]
    finally:
        columns.close()
    columns.n = sum(sizes)
    _join(source, columns, interned, sides)
    lacking = sorted(set(needed) & columns.partial)
    if lacking:  # a row no join completed: the row reader names it
        raise NotColumnar(f"a row lacks column {lacking[0]}")
    order = _sort_order(interned, columns, sizes, s.sort_by) if s.sort_by else None
    if source.eval_files:
        source.n_train_rows = sizes[0]
    n_train = split(columns.n)
    labels = _labels(source, interned[s.label], _sorted(columns.read(s.label), order))
    vocab_sizes = _encode(source, folder, interned, columns, order, labels, n_train, min_count)
    columns.remove()
    return n_train, vocab_sizes


def _sorted(codes: np.ndarray, order: Optional[np.ndarray]) -> np.ndarray:
    return codes if order is None else codes[order]


def _needed(s) -> list:
    cols = [s.label, *(c for c, _ in s.dense), *(c.column for c in s.categorical), *s.count_features]
    cols += s.rate_features
    cols += [b.column for b in s.bags]
    return list(dict.fromkeys(cols))


def _parts(source) -> list:
    return [source.files, source.eval_files] if source.eval_files else [source.files]


# -- reading ------------------------------------------------------------------------------------------


def _read_part(source, files, interned, columns: _Columns, side_columns) -> int:
    """Append one part's (training or evaluation files') codes to `columns`, the files in turn; returns its
    rows."""
    header, checked, rows = None, False, 0
    for table in files:
        present, header, named_by, n_file = _read_file(source, table, header, interned, columns)
        if not checked:
            source._refuse_missing_columns(table.path, header, side_columns, named_by)
            checked = True
        for c in interned:
            if c not in present:
                columns.absent(c, n_file)
        rows += n_file
    return rows


def _read_file(source, table, known_header, interned, columns: _Columns):
    """Append one file's codes to `columns`; returns (the columns it has, its header, what named it, its
    rows)."""
    path = table.path
    if path.suffix == ".parquet":
        return _read_parquet(path, interned, columns)
    header, skip, named_by = _csv_header(table, known_header)
    present = [c for c in interned if c in header]
    names = [f"_{k}" for k in range(len(header))]  # the header's names may repeat or be empty: read by position
    at = {c: names[header.index(c)] for c in present}
    rows = 0
    for batch in read_chunks(path, names, table.dialect, skip, [at[c] for c in present], as_csv=True):
        rows += batch.num_rows
        for c in present:
            columns.append(c, interned[c].codes_of(batch.column(at[c])))
    return present, header, named_by, rows


def _csv_header(table, known_header):
    """(header, rows to skip, what named the header) as the row reader decides them from the first row."""
    path = table.path
    with _open_text(path) as fh:
        try:
            first = next(table.dialect.records(fh), None)
        except csv.Error as err:
            raise NotColumnar(str(err)) from None
    if not first or first[0].startswith("\ufeff") or any("\n" in f or "\r" in f for f in first):
        raise NotColumnar(f"{path}: an empty file, a blank first line or a header over several lines")
    header, first_is_data, named_by = header_of(table, first, known_header)
    if not first_is_data and len(set(header)) != len(header):
        raise NotColumnar(f"{path}: a repeated column name")
    return header, 0 if first_is_data else 1, named_by


def _read_parquet(path: Path, interned, columns: _Columns):
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    header = list(pf.schema_arrow.names)
    present = [c for c in interned if c in header]
    rows = 0
    for batch in pf.iter_batches(columns=present):
        rows += batch.num_rows
        for c in present:
            columns.append(c, interned[c].codes_of(batch.column(c)))
    return present, header, "the Parquet schema", rows


def _sort_order(interned, columns: _Columns, sizes: list, sort_by: str) -> np.ndarray:
    """The rows' order: each part in the stable order of its `sort_by` values (numbers; empty reads as 0)."""

    def when(v):
        try:
            key = float(v or 0)
        except ValueError:
            raise NotColumnar(f"sort_by value {v[:40]!r} is not a number") from None
        if math.isnan(key):
            raise NotColumnar("a sort_by value is NaN, which sorts nowhere")
        return key

    if sort_by in columns.partial:
        raise NotColumnar(f"sort_by column {sort_by} is missing in a file")
    orders, start = [], 0
    for size in sizes:
        keys = interned[sort_by].mapped(columns.read(sort_by, start, start + size), when, np.float64)
        orders.append(np.argsort(keys, kind="stable") + start)
        start += size
    return np.concatenate(orders)


def _join(source, columns: _Columns, interned: dict, sides: list) -> None:
    """Fill, join by join, the columns a row lacks from the side table's record its key finds (the row reader's
    `{**extra, **rec}`: the row's own columns, then earlier joins', win). Row by row, so before sorting."""
    for (_, table), (_, on) in zip(sides, source.joins):
        if not columns.partial:
            return
        distinct = [table.get(v) for v in interned[on].values] + [table.get("")]  # code -1 reads as ""
        records = columns.read(on)
        for c in sorted(columns.partial, key=list(interned).index):
            codes = columns.read(c)
            absent = codes < 0
            fill = np.asarray([-1 if r is None or c not in r else interned[c].code(r[c]) for r in distinct], CODE)
            codes = np.where(absent, fill[records], codes)
            columns.write(c, codes)  # the key column included: this join looked up the keys as they were
            if not (codes < 0).any():
                columns.partial.discard(c)


# -- fitting and encoding -----------------------------------------------------------------------------


def _labels(source, values: Interned, codes: np.ndarray) -> np.ndarray:
    """Each row's label by the row reader's rule, applied once per distinct value."""
    return values.mapped(codes, lambda v: _refused_as_not_columnar(source.label_value, v, "label"), np.float64)


def _dense_value(source, column: str, v: str) -> float:
    """The row reader's value of a dense field, NaN where missing."""
    x = _refused_as_not_columnar(source.dense_value, v, column, column)
    return math.nan if x is None else x


def _refused_as_not_columnar(rule, *args):
    """A rule of the row reader; its refusal (a DataError without a line) sends the file to the row reader,
    which names the row."""
    try:
        return rule(*args)
    except DataError as err:
        raise NotColumnar(err.diagnostics[0].message) from None


def _encode(source, folder: Path, interned, columns: _Columns, order, labels, n_train: int, min_count: int):
    """Every output column computed from its codes in row order, one at a time, into a raw file of its own;
    then dense.npy, cats.npy and labels.npy assembled from those a block of rows at a time, and each bag's
    offsets and ids written. Returns the vocabulary sizes (categoricals, then bags)."""
    s = source.schema

    def codes(c):
        return _sorted(columns.read(c), order)

    dense_files, cat_files, vocab_sizes = [], [], []
    for k, (col, transform) in enumerate(s.dense):
        x = interned[col].mapped(codes(col), lambda v, col=col: _dense_value(source, col, v), np.float64)
        dense_files.append(_column_file(folder, f"dense{k}", _dense_column(x, transform, n_train)))
    for k, col in enumerate(s.count_features):
        seen, _ = _running(codes(col), labels)
        dense_files.append(_column_file(folder, f"count{k}", np.log1p(seen)))
    prior = _sequential_sum(labels[:n_train]) / n_train
    for k, col in enumerate(s.rate_features):
        dense_files.append(_column_file(folder, f"rate{k}", _rate_column(codes(col), labels, prior, n_train)))
    for k, cat in enumerate(s.categorical):
        tokens = Interned()
        value = source.categorical_value
        first = [tokens.code(_refused_as_not_columnar(value, cat, v, cat.name)) for v in interned[cat.column].values]
        token_codes = np.asarray(first, dtype=np.int64)[codes(cat.column)]
        ids = vocabulary_ids(tokens.values, np.bincount(token_codes[:n_train], minlength=len(tokens.values)), min_count)
        cat_files.append(_column_file(folder, f"cat{k}", ids[token_codes]))
        vocab_sizes.append(int(ids.max(initial=0)) + 1)
    for k, bag in enumerate(s.bags):
        offsets, flat, tokens = _bag_tokens(source, bag, interned[bag.column], codes(bag.column))
        counts = np.bincount(flat[: offsets[n_train]], minlength=len(tokens.values))
        ids = vocabulary_ids(tokens.values, counts, min_count)
        np.save(folder / f"bag{k}_offsets.npy", offsets)
        np.save(folder / f"bag{k}_ids.npy", ids[flat] if len(ids) else flat)
        vocab_sizes.append(int(ids.max(initial=0)) + 1)
    n = len(labels)
    _assemble(folder / "dense.npy", dense_files, np.float32, n)
    _assemble(folder / "cats.npy", cat_files, np.int64, n)
    np.save(folder / "labels.npy", labels.astype(np.float32))
    return vocab_sizes


def _dense_column(x: np.ndarray, transform: str, n_train: int) -> np.ndarray:
    """A dense column (NaN where missing) as the row reader's values: log(1 + max(x, 0)), or standardised
    by the training part's non-missing values; 0 where missing."""
    missing = np.isnan(x)
    if transform == "log1p":
        return np.where(missing, 0.0, np.log1p(np.maximum(np.where(missing, 0.0, x), 0.0)))
    train = x[:n_train][~missing[:n_train]]
    count = len(train)
    mean = _sequential_sum(train) / count if count else 0.0
    var = _sequential_sum(train * train) / count - mean**2 if count else 0.0
    std = np.sqrt(np.maximum(var, 1e-12))
    return np.where(missing, 0.0, (x - mean) / std)


def _rate_column(codes: np.ndarray, labels: np.ndarray, prior: float, n_train: int) -> np.ndarray:
    """The running positive rate of each row's id, smoothed toward `prior`, standardised over the training
    part."""
    seen, clicks = _running(codes, labels)
    rows = seen + RATE_PRIOR_ROWS
    a, b = clicks / rows, RATE_PRIOR_ROWS / rows
    sa, sb, saa, sab, sbb = (_sequential_sum(m[:n_train]) / n_train for m in (a, b, a * a, a * b, b * b))
    rate_mean = sa + prior * sb
    rate_std = np.sqrt(np.maximum(saa + 2 * prior * sab + prior**2 * sbb - rate_mean**2, 1e-12))
    return (a + prior * b - rate_mean) / rate_std


def _column_file(folder: Path, name: str, values: np.ndarray) -> Path:
    path = folder / f"{name}.raw"
    values.tofile(path)
    return path


def _assemble(path: Path, column_files: list, dtype, n: int) -> None:
    """An n × len(column_files) .npy array from one raw file per column (float64 or int64 values), a block of
    rows at a time; the column files are removed."""
    with open(path, "wb") as out:
        npy_header(out, dtype, (n, len(column_files)))
        sources = [open(f, "rb") for f in column_files]
        try:
            for start in range(0, n, ROWS_PER_CHUNK):
                take = min(ROWS_PER_CHUNK, n - start)
                block = np.empty((take, len(sources)), dtype=dtype)
                for k, fh in enumerate(sources):
                    block[:, k] = np.fromfile(fh, dtype=np.float64 if dtype == np.float32 else np.int64, count=take)
                out.write(block.tobytes())
        finally:
            for fh in sources:
                fh.close()
    for f in column_files:
        f.unlink()


def _sequential_sum(x: np.ndarray) -> float:
    """The left-to-right float64 sum the removed row path's `+=` made (numpy's `sum` is pairwise, and differs in
    the last bits)."""
    return float(np.cumsum(x, dtype=np.float64)[-1]) if len(x) else 0.0


def _running(codes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, how many earlier rows had its id, and how many of those were positive."""
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1] if len(codes) else np.zeros(0, np.int64)
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    positives = np.r_[0.0, np.cumsum(labels[order])]
    seen, clicks = np.empty(len(codes)), np.empty(len(codes))
    seen[order] = np.arange(len(codes)) - group_start
    clicks[order] = positives[:-1] - positives[group_start]
    return seen, clicks


def _bag_tokens(source, bag, values: Interned, codes: np.ndarray):
    """(offsets, token codes, the tokens) of a bag column: each distinct value split once."""
    missing = source.schema.missing_values
    tokens = Interned()
    per_value = [
        np.asarray([tokens.code(t) for t in v.split(bag.sep) if t not in missing][: bag.max_len], dtype=np.int64)
        for v in values.values
    ]
    lengths = np.asarray([len(p) for p in per_value], dtype=np.int64)[codes]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    value_starts = np.r_[0, np.cumsum([len(p) for p in per_value])].astype(np.int64)
    flat_values = np.concatenate(per_value) if per_value else np.zeros(0, dtype=np.int64)
    at = np.repeat(value_starts[codes] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return offsets, flat_values[at].astype(np.int64), tokens
