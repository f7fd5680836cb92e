"""Where CTR examples come from: `synthetic[:SEED]`, `planted[:SEED]`, `criteo:PATH` and `table:PATH` (with a schema).

File sources yield raw rows `(line, label, dense values, categorical tokens)` in file order, streamed:
the row reader, which states every rule of reading a field and names a bad row's `file:line`. The
columnar engines apply the same rules per distinct value and encode the arrays; when one refuses a file,
`preprocess.py` runs this reader over it to name the first bad row.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import hashlib
import io
import math
import os
from dataclasses import dataclass
from itertools import chain as _chain
from pathlib import Path
from typing import Iterator, Optional

from .dataset import DataError
from .dialect import Dialect
from .schema import Categorical, FileEntry, Schema, label_rule
from .synthetic import SyntheticSource
from .time_parts import NotATime, time_part

CRITEO_DENSE, CRITEO_CATS = 13, 26


@dataclass
class Row:
    line: int
    label: float
    dense: list  # floats (None where missing)
    cats: list  # strings ("" where missing)
    bags: tuple = ()  # per bag of the schema, its tokens (at most max_len)


def _open_text(path: Path):
    if not path.exists():
        raise DataError(f"no such file: {path}")
    if path.is_dir():
        raise DataError(f"{path} is a directory; name a file")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _fingerprint(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _label(value: str, where: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise DataError(f"{where}: label `{value}` is not a number") from None
    if v not in (0.0, 1.0):
        raise DataError(f"{where}: label {value} is outside {{0, 1}}")
    return v


class CriteoSource:
    """The Criteo display-ads format: label, 13 integer counts, 26 hashed categoricals; tab-separated."""

    n_dense, n_cat, n_count, n_rate = CRITEO_DENSE, CRITEO_CATS, 0, 0
    dense_transforms = ("log1p",) * CRITEO_DENSE
    bags = ()
    n_train_rows = None  # the evaluation part is a held-out tail

    def __init__(self, path: str):
        self.path = Path(path)
        _open_text(self.path).close()
        self.name = f"criteo:{self.path}"
        self.key = f"criteo-{_fingerprint([self.path])}"

    def rows(self) -> Iterator[Row]:
        with _open_text(self.path) as fh:
            for n, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                parts = line.split("\t")
                where = f"{self.path}:{n}"
                if len(parts) != 1 + CRITEO_DENSE + CRITEO_CATS:
                    raise DataError(
                        f"{where}: expected {1 + CRITEO_DENSE + CRITEO_CATS} tab-separated fields, got {len(parts)}"
                    )
                dense = []
                for k, v in enumerate(parts[1 : 1 + CRITEO_DENSE]):
                    if v == "":
                        dense.append(None)
                        continue
                    try:
                        dense.append(float(int(v)))
                    except ValueError:
                        raise DataError(f"{where}: integer feature I{k + 1} is `{v}`, not an integer") from None
                yield Row(n, _label(parts[0], where), dense, parts[1 + CRITEO_DENSE :])


@dataclass(frozen=True)
class TableFile:
    """A file of a table source as it is read: its dialect, and its columns when it has no header row, with
    the setting that named them (`joins[0].columns`, `columns`), which errors about its fields name. `where`
    is its key path in the schema (`files[0]`, `joins[1]`), or `the table` when only the command line names
    it."""

    path: Path
    where: str
    dialect: Dialect
    columns: Optional[tuple] = None
    named_by: str = "the header"


def header_of(table: TableFile, first: list, known: Optional[list]) -> tuple[list, bool, str]:
    """(the file's column names, whether its first row is data, what named them): its own `columns`, else the
    part's first file's header when its first row differs from it (a later file without a header row), else
    its first row, each field's `name:type` suffix dropped (RecBole)."""
    if table.columns is not None:
        return list(table.columns), True, table.named_by
    header = [h.split(":")[0] for h in first]
    if known is not None and header != known:
        return list(known), True, "the first file's header"
    return header, False, "the header"


class TableSource:
    """CSV / TSV / Parquet tables and RecBole atomic files (`.inter` joined with `.user`/`.item`)."""

    def __init__(self, path: str, schema_path: Optional[str]):
        if schema_path is None:
            raise DataError("a `table:` source needs --schema SCHEMA.json")
        self.schema = s = Schema.load(schema_path)
        base = Path(path)
        if not base.exists():
            raise DataError(f"no such file or folder: {base}")
        folder = base if base.is_dir() else base.parent
        if base.is_dir():
            self.files = [self._table_file(p, e, True) for p, e in _expand(folder, s.files)]
        else:
            entry = next((e for e in s.files if fnmatch.fnmatchcase(base.name, e.name)), None)
            self.files = [self._table_file(base, entry, True)]
        if not self.files:
            raise DataError(f"{base} is a folder: list its files under `files` in the schema")
        self.eval_files = [self._table_file(p, e, True) for p, e in _expand(folder, s.eval_files)]
        self.n_train_rows = None  # with eval_files: the training files' row count, once read
        self.bags = s.bags
        self.joins = [(self._table_file(folder / j.table.name, j.table, False), j.on) for j in s.joins]
        for table, _ in self.joins:
            if not table.path.exists():
                raise DataError(f"{table.where}.file: no such file: {table.path}")
        self.rule = label_rule(s.rule)
        self.n_count = len(s.count_features)
        self.n_rate = len(s.rate_features)
        self.n_dense = len(s.dense) + self.n_count + self.n_rate
        self.n_cat = len(s.categorical)
        self.dense_transforms = tuple(t for _, t in s.dense)
        self.name = f"table:{path}"
        schema_text = Path(schema_path).read_text()
        paths = [t.path for t in self.files + self.eval_files] + [t.path for t, _ in self.joins]
        self.key = "table-" + hashlib.sha256((schema_text + _fingerprint(paths)).encode()).hexdigest()[:16]

    def _table_file(self, path: Path, entry: Optional[FileEntry], main: bool) -> TableFile:
        """How `path` is read: its entry's own `columns`, `delimiter` and `quotes`, else the schema's — the
        top-level `columns` only for the main table's files (`main`), never a joined side table, which reads
        its own header unless its join names its columns. A delimiter is, in turn, the entry's, the
        schema's, a tab for RecBole atomic files, .tsv and .txt, else a comma."""
        s = self.schema
        where = entry.where if entry is not None else "the table"
        default = "\t" if is_atomic(path) or path.suffix in (".tsv", ".txt") else ","
        own_quotes = entry.quotes if entry is not None else None
        dialect = Dialect(
            (entry.delimiter if entry is not None else None) or s.delimiter or default,
            s.quotes if own_quotes is None else own_quotes,
        )
        if entry is not None and entry.columns is not None:
            if is_atomic(path):
                raise DataError(f"{where}.columns: {path.name} is a RecBole atomic file; its header names its columns")
            return TableFile(path, where, dialect, entry.columns, f"{where}.columns")
        if main and s.header is not None and not is_atomic(path):
            return TableFile(path, where, dialect, tuple(s.header), "columns")
        return TableFile(path, where, dialect)

    def _records(self, table: TableFile, known_header: Optional[list] = None) -> Iterator[tuple[int, dict]]:
        """Records of one file; a file without a header row reuses `known_header` (its part's first file's)."""
        path = table.path
        if path.suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
            line = 0
            self.header_named = "the Parquet schema"
            for batch in pq.ParquetFile(path).iter_batches():
                for record in batch.to_pylist():
                    line += 1
                    yield line, {k: "" if v is None else str(v) for k, v in record.items()}
            return
        with _open_text(path) as fh:
            reader = table.dialect.records(fh)
            first = _next_row(reader, path)
            if first is None:
                raise DataError(f"{path} is empty")
            header, first_is_data, named_by = header_of(table, first, known_header)
            if not first_is_data:
                _refuse_repeated_names(header, path)
            self.header, self.header_named = header, named_by
            rows = _chain([first], reader) if first_is_data else reader
            n = 0 if first_is_data else 1
            while (values := _next_row(rows, path)) is not None:
                n += 1
                if not values:
                    continue
                if len(values) != len(header):
                    raise DataError(
                        f"{path}:{n}: expected {len(header)} fields, got {len(values)} ({named_by} names {len(header)})"
                    )
                yield n, dict(zip(header, values))

    def label_value(self, raw: str, where: str) -> float:
        """A label field as 0 or 1: by `label.positive`, by `label.rule`, or read as 0/1."""
        s = self.schema
        if s.positive is not None:
            return 1.0 if raw in s.positive else 0.0
        if self.rule is None:
            return _label(raw, where)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{where}: label column `{s.label}` is `{raw[:40]}`, not a finite number")
        return self.rule(value)

    def dense_value(self, v: str, col: str, where: str) -> Optional[float]:
        """A dense field as a float, None where missing."""
        if v in self.schema.missing_values:
            return None
        try:
            value = float(v)
        except ValueError:
            raise DataError(f"{where}: dense column `{col}` is `{v[:40]}`, not a number") from None
        if math.isfinite(value):
            return value
        if self.schema.non_finite == "zero":
            return 0.0
        raise DataError(
            f'{where}: dense column `{col}` is `{v[:40]}`, not a finite number (or set "non_finite": "zero" '
            "in the schema to read such values as 0)"
        )

    def categorical_value(self, cat: Categorical, raw: str, where: str) -> str:
        """A categorical field's value: its first space-separated token, or its time stamp's part ("" where
        the stamp is missing)."""
        if cat.part is None:
            return raw.split(" ")[0]
        if raw in self.schema.missing_values:
            return ""
        try:
            return time_part(raw, cat.part, cat.format)
        except NotATime as err:
            raise DataError(f"{where}: {cat.where} reads column `{cat.column}` as a time stamp, but {err}") from None

    def _all_records(self, files: list, side_columns: set) -> Iterator[tuple[Path, int, dict]]:
        self.header = None
        checked = False
        for table in files:
            for n, rec in self._records(table, self.header):
                if not checked:  # the first record's keys are the table's header
                    self._refuse_missing_columns(table.path, list(rec), side_columns, self.header_named)
                    checked = True
                yield table.path, n, rec

    def _refuse_missing_columns(self, path: Path, header: list, side_columns: set, named_by: str) -> None:
        """A column the schema names (any key, `sort_by` included) that neither the table nor a joined side
        table has: refused before any row is read, naming the columns the file has and what named them."""
        joined = {on: f"joins[{i}].on" for i, (_, on) in enumerate(self.joins) if on not in header}
        for column, where in {**self.schema.columns, **joined}.items():
            if column not in header and (column not in side_columns or column in joined):
                shown = ", ".join(header[:30]) + (", …" if len(header) > 30 else "")
                raise DataError(f"{path}: schema {where} names column `{column}`, which {named_by} lacks ({shown})")

    def _side_tables(self) -> list:
        tables = []
        for side, key in self.joins:
            table = {}
            for _, rec in self._records(side):
                if key not in rec:
                    raise DataError(
                        f"{side.path}: {side.where}.on names column `{key}`, which {self.header_named} lacks "
                        f"({', '.join(rec)})"
                    )
                table[rec[key]] = rec
            tables.append((key, table))
        return tables

    def _sorted(self, records) -> list:
        """In time order by `sort_by` (numeric; empty reads as 0)."""
        column = self.schema.sort_by

        def when(record):
            path, n, rec = record
            try:
                return float(rec[column] or 0)
            except ValueError:
                raise DataError(
                    f"{path}:{n}: sort_by column `{column}` is `{rec[column][:40]}`, not a number"
                ) from None

        return sorted(records, key=when)

    def rows(self) -> Iterator[Row]:
        """The training files' rows, then the evaluation files' (each part in `sort_by` order)."""
        sides = self._side_tables()
        n_train = 0
        for row in self._part_rows(self.files, sides):
            n_train += 1
            yield row
        if self.eval_files:
            self.n_train_rows = n_train
            yield from self._part_rows(self.eval_files, sides)

    def _part_rows(self, files: list, sides: list) -> Iterator[Row]:
        s = self.schema
        side_columns = {c for _, table in sides for c in next(iter(table.values()), {})}
        records = self._all_records(files, side_columns)
        if s.sort_by:
            records = self._sorted(records)
        needed = [s.label] + [c for c, _ in s.dense] + [c.column for c in s.categorical]
        needed += s.count_features + s.rate_features
        needed += [b.column for b in s.bags]
        for path, n, rec in records:
            for key, table in sides:
                extra = table.get(rec.get(key, ""))
                if extra:
                    rec = {**extra, **rec}
            where = f"{path}:{n}"
            missing = [c for c in needed if c not in rec]
            if missing:
                raise DataError(f"{where}: no column(s) {', '.join(missing)}")
            label = self.label_value(rec[s.label], where)
            dense = [self.dense_value(rec[col], col, where) for col, _ in s.dense]
            cats = [self.categorical_value(c, rec[c.column], where) for c in s.categorical]
            bags = tuple(self._bag(rec[b.column], b) for b in s.bags)
            yield Row(n, label, dense, cats + [rec[c] for c in s.count_features + s.rate_features], bags)

    def _bag(self, value: str, bag) -> list:
        """A bag's tokens: split on its separator, empty and missing tokens dropped, the first max_len kept."""
        missing = self.schema.missing_values
        return [t for t in value.split(bag.sep) if t not in missing][: bag.max_len]


GLOB_CHARS = "*?["


def is_atomic(path: Path) -> bool:
    """A RecBole atomic file: a header of `name:type` fields, always read with it."""
    return path.suffix in (".inter", ".user", ".item")


def _expand(folder: Path, entries: list) -> list:
    """(path, entry) of each of the schema's files under `folder`, a glob (`part-*.parquet`) expanded to its
    matches in name order, each with its entry's settings; a name or pattern that matches nothing is refused
    by its key path."""
    files = []
    for entry in entries:
        if any(c in entry.name for c in GLOB_CHARS):
            matches = sorted(p for p in folder.glob(entry.name) if p.is_file())
            if not matches:
                raise DataError(f"{entry.where}: `{entry.name}` matches no file in {folder}")
            files += [(p, entry) for p in matches]
        elif not (folder / entry.name).exists():
            raise DataError(f"{entry.where}: no such file: {folder / entry.name}")
        else:
            files.append((folder / entry.name, entry))
    return files


def _next_row(reader, path: Path):
    """The reader's next row, None at the end; a row the csv module cannot read is a DataError at its line."""
    line = getattr(reader, "line_num", 0) + 1  # where the row starts
    try:
        return next(reader, None)
    except csv.Error as err:
        hint = " (an unterminated quote?)" if "field larger" in str(err) or "end of data" in str(err) else ""
        raise DataError(f"{path}:{line}: cannot read the row: {err}{hint}") from None


def _refuse_repeated_names(header: list, path: Path) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}:1: the header names column `{name}` twice")
        seen.add(name)


def parse_data_spec(spec: str, schema: Optional[str] = None):
    """`synthetic[:SEED]`, `planted[:SEED]`, `criteo:PATH` or `table:PATH`; returns a source object."""
    kind, _, arg = spec.partition(":")
    if kind in ("synthetic", "planted"):
        from .planted import PlantedSource

        try:
            return (SyntheticSource if kind == "synthetic" else PlantedSource)(int(arg) if arg else 0)
        except ValueError:
            raise DataError(f"`{spec}`: the {kind} seed must be an integer") from None
    if kind == "criteo" and arg:
        return CriteoSource(arg)
    if kind == "table" and arg:
        return TableSource(arg, schema)
    raise DataError(f"unknown data source `{spec}`; use synthetic[:SEED], planted[:SEED], criteo:PATH or table:PATH")
