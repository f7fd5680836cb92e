"""Where CTR examples come from: `synthetic[:SEED]`, `criteo:PATH` and `table:PATH` (with a schema).

File sources yield raw rows `(line, label, dense values, categorical tokens)` in file order, streamed,
so a file larger than memory works; `preprocess.py` turns them into cached arrays.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from itertools import chain as _chain
from pathlib import Path
from typing import Iterator, Optional

from .dataset import DataError
from .synthetic import SyntheticSource

CRITEO_DENSE, CRITEO_CATS = 13, 26


@dataclass
class Row:
    line: int
    label: float
    dense: list  # floats (None where missing)
    cats: list  # strings ("" where missing)


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


@dataclass
class Schema:
    """How a table becomes a CTR task; see docs/data.md."""

    files: list
    label: str
    rule: Optional[str]
    dense: list  # [(column, transform)]
    categorical: list
    count_features: list
    rate_features: list = field(default_factory=list)
    joins: list = field(default_factory=list)
    sort_by: Optional[str] = None
    delimiter: Optional[str] = None
    missing_values: tuple = ("",)

    @classmethod
    def load(cls, path: str) -> "Schema":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataError(f"no such schema file: {path}") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}:{err.colno}: schema is not JSON: {err.msg}") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: a schema is a JSON object")
        unknown = set(data) - {
            "files",
            "label",
            "dense",
            "categorical",
            "count_features",
            "rate_features",
            "joins",
            "sort_by",
            "delimiter",
            "missing_values",
        }
        if unknown:
            raise DataError(f"{path}: unknown schema key(s) {', '.join(sorted(unknown))}")
        label = data.get("label")
        if isinstance(label, str):
            label = {"column": label}
        if not isinstance(label, dict) or "column" not in label:
            raise DataError(f'{path}: `label` must name a column, e.g. {{"column": "rating", "rule": ">= 4"}}')
        dense = [
            (d, "log1p") if isinstance(d, str) else (d["column"], d.get("transform", "log1p"))
            for d in data.get("dense", [])
        ]
        for col, transform in dense:
            if transform not in ("log1p", "standardize"):
                raise DataError(
                    f"{path}: dense column `{col}`: transform must be log1p or standardize, got `{transform}`"
                )
        cats = data.get("categorical", [])
        if not cats:
            raise DataError(f"{path}: `categorical` must list at least one column")
        return cls(
            list(data.get("files", [])),
            label["column"],
            label.get("rule"),
            dense,
            list(cats),
            list(data.get("count_features", [])),
            list(data.get("rate_features", [])),
            list(data.get("joins", [])),
            data.get("sort_by"),
            data.get("delimiter"),
            ("",) + tuple(data.get("missing_values", [])),
        )


def _label_rule(rule: Optional[str]):
    if rule is None:
        return None
    ops = {">=": float.__ge__, ">": float.__gt__, "<=": float.__le__, "<": float.__lt__, "==": float.__eq__}
    for op in (">=", "<=", "==", ">", "<"):
        if rule.strip().startswith(op):
            try:
                threshold = float(rule.strip()[len(op) :])
            except ValueError:
                break
            return lambda v: 1.0 if ops[op](v, threshold) else 0.0
    raise DataError(f"label rule `{rule}` is not `OP NUMBER` with OP one of >=, >, <=, <, ==")


class TableSource:
    """CSV / TSV / Parquet tables and RecBole atomic files (`.inter` joined with `.user`/`.item`)."""

    def __init__(self, path: str, schema_path: Optional[str]):
        if schema_path is None:
            raise DataError("a `table:` source needs --schema SCHEMA.json")
        self.schema = Schema.load(schema_path)
        base = Path(path)
        if not base.exists():
            raise DataError(f"no such file or folder: {base}")
        files = [base / f for f in self.schema.files] if base.is_dir() else [base]
        if not files:
            raise DataError(f"{base} is a folder: list its files under `files` in the schema")
        for f in files:
            if not f.exists():
                raise DataError(f"no such file: {f}")
        self.files = files
        self.joins = [
            (base / j["file"] if base.is_dir() else base.parent / j["file"], j["on"]) for j in self.schema.joins
        ]
        for f, _ in self.joins:
            if not f.exists():
                raise DataError(f"no such file: {f}")
        self.rule = _label_rule(self.schema.rule)
        self.n_count = len(self.schema.count_features)
        self.n_rate = len(self.schema.rate_features)
        self.n_dense = len(self.schema.dense) + self.n_count + self.n_rate
        self.n_cat = len(self.schema.categorical)
        self.dense_transforms = tuple(t for _, t in self.schema.dense)
        self.name = f"table:{path}"
        schema_text = Path(schema_path).read_text()
        self.key = (
            "table-"
            + hashlib.sha256((schema_text + _fingerprint(files + [f for f, _ in self.joins])).encode()).hexdigest()[:16]
        )

    def _records(self, path: Path, known_header: Optional[list] = None) -> Iterator[tuple[int, dict]]:
        """Records of one file; a file without a header row reuses `known_header` (the first file's)."""
        if path.suffix == ".parquet":
            try:
                import pyarrow.parquet as pq
            except ImportError:
                raise DataError("reading Parquet needs pyarrow: pip install pyarrow") from None
            line = 0
            for batch in pq.ParquetFile(path).iter_batches():
                for record in batch.to_pylist():
                    line += 1
                    yield line, {k: "" if v is None else str(v) for k, v in record.items()}
            return
        atomic = path.suffix in (".inter", ".user", ".item")
        delimiter = self.schema.delimiter or ("\t" if atomic or path.suffix in (".tsv", ".txt") else ",")
        with _open_text(path) as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            first = next(reader, None)
            if first is None:
                raise DataError(f"{path} is empty")
            header = [h.split(":")[0] for h in first]
            rows = reader
            if known_header is not None and header != known_header:
                header, rows = known_header, _chain([first], reader)
            self.header = header
            for n, values in enumerate(rows, 2 if rows is reader else 1):
                if not values:
                    continue
                if len(values) != len(header):
                    raise DataError(f"{path}:{n}: expected {len(header)} fields, got {len(values)}")
                yield n, dict(zip(header, values))

    def _all_records(self) -> Iterator[tuple[Path, int, dict]]:
        self.header = None
        for path in self.files:
            for n, rec in self._records(path, self.header):
                yield path, n, rec

    def _side_tables(self) -> list:
        tables = []
        for path, key in self.joins:
            table = {}
            for _, rec in self._records(path):
                table[rec.get(key, "")] = rec
            tables.append((key, table))
        return tables

    def rows(self) -> Iterator[Row]:
        s = self.schema
        sides = self._side_tables()
        records = self._all_records()
        if s.sort_by:
            records = sorted(records, key=lambda t: float(t[2].get(s.sort_by) or 0))
        needed = [s.label] + [c for c, _ in s.dense] + s.categorical + s.count_features + s.rate_features
        for path, n, rec in records:
            for key, table in sides:
                extra = table.get(rec.get(key, ""))
                if extra:
                    rec = {**extra, **rec}
            where = f"{path}:{n}"
            missing = [c for c in needed if c not in rec]
            if missing:
                raise DataError(f"{where}: no column(s) {', '.join(missing)}")
            raw = rec[s.label]
            if self.rule is not None:
                try:
                    label = self.rule(float(raw))
                except ValueError:
                    raise DataError(f"{where}: label column `{s.label}` is `{raw}`, not a number") from None
            else:
                label = _label(raw, where)
            dense = []
            for col, _ in s.dense:
                v = rec[col]
                try:
                    dense.append(None if v in s.missing_values else float(v))
                except ValueError:
                    raise DataError(f"{where}: dense column `{col}` is `{v}`, not a number") from None
            cats = [rec[c].split(" ")[0] for c in s.categorical]
            yield Row(n, label, dense, cats + [rec[c] for c in s.count_features + s.rate_features])


def parse_data_spec(spec: str, schema: Optional[str] = None):
    """`synthetic[:SEED]`, `criteo:PATH` or `table:PATH`; returns a source object."""
    kind, _, arg = spec.partition(":")
    if kind == "synthetic":
        try:
            return SyntheticSource(int(arg) if arg else 0)
        except ValueError:
            raise DataError(f"`{spec}`: the synthetic seed must be an integer") from None
    if kind == "criteo" and arg:
        return CriteoSource(arg)
    if kind == "table" and arg:
        return TableSource(arg, schema)
    raise DataError(f"unknown data source `{spec}`; use synthetic[:SEED], criteo:PATH or table:PATH")
