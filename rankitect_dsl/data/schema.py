"""The schema that makes a table a CTR task (docs/data.md), validated by type: every refusal names the key
path of the failing value (`dense[2]: missing "column"`), after PyGlove's validation errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .dataset import DataError

TRANSFORMS = ("log1p", "standardize")
TIME_PARTS = ("hour", "weekday", "day", "month")
TIME_FORMATS = ("auto", "unix", "yymmddhh")
POOLINGS = ("mean", "sum")
MAX_BAG_LEN = 1024
NON_FINITE = ("error", "zero")  # a NaN or ±inf in a dense column: refused with file:line, or read as 0
KEYS = (
    "files",
    "label",
    "dense",
    "categorical",
    "count_features",
    "rate_features",
    "joins",
    "sort_by",
    "delimiter",
    "quotes",
    "missing_values",
    "non_finite",
    "columns",
    "eval_files",
    "bags",
)


@dataclass(frozen=True)
class Bag:
    """A multi-valued column (genres, recent items, tags): its tokens split on `sep`, the first `max_len`
    kept, each embedded and pooled into one row of the embeddings, as an `EmbeddingBag` does."""

    column: str
    sep: str = " "
    max_len: int = 8
    pooling: str = "mean"


@dataclass(frozen=True)
class FileEntry:
    """A file of `files`, `eval_files` or `joins`, with the settings it names for itself: `columns` for a file
    without a header row, `delimiter` and `quotes` where they differ from the schema's."""

    name: str
    where: str  # its key path, e.g. `joins[0]`, which errors about its settings name
    columns: Optional[tuple] = None
    delimiter: Optional[str] = None
    quotes: Optional[bool] = None


@dataclass(frozen=True)
class Join:
    table: FileEntry
    on: str


@dataclass(frozen=True)
class Categorical:
    """A categorical feature: a column's first space-separated token, or one part of its time stamp (the hour
    of day, the day of week, …) when `part` is set; `name` is how errors and reports call it."""

    column: str
    where: str  # its key path, e.g. `categorical[6]`
    part: Optional[str] = None
    format: str = "auto"  # of a time stamp: Unix seconds, YYMMDDHH, or told apart by length

    @property
    def name(self) -> str:
        return self.column if self.part is None else f"{self.column}.{self.part}"


@dataclass
class Schema:
    files: list  # [FileEntry]
    label: str
    rule: Optional[str]
    dense: list  # [(column, transform)]
    categorical: list  # [Categorical]
    count_features: list
    rate_features: list = field(default_factory=list)
    joins: list = field(default_factory=list)  # [Join]
    sort_by: Optional[str] = None
    delimiter: Optional[str] = None
    quotes: bool = True  # a field may be quoted, as in CSV; false: `"` is an ordinary character
    missing_values: tuple = ("",)
    non_finite: str = "error"
    header: Optional[list] = None  # `columns`: the main table's columns when its files have no header row
    positive: Optional[tuple] = None  # label values (strings) that read as 1, all others as 0
    eval_files: list = field(default_factory=list)  # [FileEntry]: a separate evaluation part, not a held-out tail
    bags: list = field(default_factory=list)  # [Bag]

    @property
    def columns(self) -> dict:
        """Every column the schema reads, each with the key path that names it first."""
        named = {self.label: "label.column"}
        for i, (c, _) in enumerate(self.dense):
            named.setdefault(c, f"dense[{i}]")
        for cat in self.categorical:
            named.setdefault(cat.column, cat.where)
        for key, cols in (
            ("count_features", self.count_features),
            ("rate_features", self.rate_features),
            ("bags", [b.column for b in self.bags]),
        ):
            for i, c in enumerate(cols):
                named.setdefault(c, f"{key}[{i}]")
        if self.sort_by is not None:
            named.setdefault(self.sort_by, "sort_by")
        return named

    @classmethod
    def load(cls, path: str) -> "Schema":
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise DataError(f"no such schema file: {path}") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"cannot read schema {path}: {err}") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}:{err.colno}: schema is not JSON: {err.msg}") from None
        except RecursionError:
            raise DataError(f"{path}: schema nests too deep") from None
        return _Reader(path).schema(data)


class _Reader:
    """Reads a parsed schema, raising DataError `PATH: KEY.PATH: what is wrong` at the first bad value."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, where: str, message: str):
        raise DataError(f"{self.path}: {where}: {message}" if where else f"{self.path}: {message}")

    def string(self, value, where: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"expected a non-empty string, got {json.dumps(value)[:60]}")
        return value

    def strings(self, value, where: str, example: str) -> list:
        if not isinstance(value, list):
            self.fail(where, f"expected a list of strings, like {example}, got {json.dumps(value)[:60]}")
        out = [self.string(v, f"{where}[{i}]") for i, v in enumerate(value)]
        self.distinct(out, where)
        return out

    def missing_values(self, value) -> tuple:
        """The strings read as missing: `""` always, so listing it is accepted and changes nothing."""
        if not isinstance(value, list):
            self.fail("missing_values", f'expected a list of strings, like ["unknown"], got {json.dumps(value)[:60]}')
        out = [self.string(v, f"missing_values[{i}]") if v != "" else v for i, v in enumerate(value)]
        self.distinct(out, "missing_values")
        return ("",) + tuple(v for v in out if v)

    def distinct(self, names: list, where: str) -> None:
        seen = {}
        for i, n in enumerate(names):
            if n in seen:
                self.fail(f"{where}[{i}]", f'column "{n}" is already listed at {where}[{seen[n]}]')
            seen[n] = i

    def schema(self, data) -> Schema:
        if not isinstance(data, dict):
            self.fail("", "a schema is a JSON object")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            self.fail("", f"unknown schema key(s) {', '.join(unknown)}; the keys are {', '.join(KEYS)}")
        label, rule, positive = self.label(data.get("label"))
        if "categorical" not in data or data["categorical"] == []:
            self.fail("categorical", "must list at least one column")
        dense = [self.dense(d, f"dense[{i}]") for i, d in enumerate(self.list(data.get("dense", []), "dense"))]
        self.distinct([c for c, _ in dense], "dense")
        non_finite = data.get("non_finite", "error")
        if non_finite not in NON_FINITE:
            self.fail("non_finite", f"must be one of {', '.join(NON_FINITE)}, got {json.dumps(non_finite)[:40]}")
        return Schema(
            self.files(data.get("files", []), "files", '["train.csv"]'),
            label,
            rule,
            dense,
            self.categoricals(data["categorical"]),
            self.strings(data.get("count_features", []), "count_features", '["user_id"]'),
            self.strings(data.get("rate_features", []), "rate_features", '["user_id"]'),
            [self.join(j, f"joins[{i}]") for i, j in enumerate(self.list(data.get("joins", []), "joins"))],
            None if data.get("sort_by") is None else self.string(data["sort_by"], "sort_by"),
            self.delimiter(data.get("delimiter"), "delimiter"),
            self.quotes(data.get("quotes", True), "quotes"),
            self.missing_values(data.get("missing_values", [])),
            non_finite,
            None if "columns" not in data else self.strings(data["columns"], "columns", '["age", "income"]'),
            positive,
            self.files(data.get("eval_files", []), "eval_files", '["test.csv"]'),
            self.bags(data.get("bags", [])),
        )

    def bags(self, value) -> list:
        bags = [self.bag(b, f"bags[{i}]") for i, b in enumerate(self.list(value, "bags"))]
        self.distinct([b.column for b in bags], "bags")
        return bags

    def bag(self, value, where: str) -> Bag:
        if isinstance(value, str):
            return Bag(self.string(value, where))
        if not isinstance(value, dict) or "column" not in value:
            shape = '{"column": …, "sep": " ", "max_len": 8, "pooling": "mean"}'
            self.fail(where, f"expected {shape}, got {json.dumps(value)[:60]}")
        unknown = sorted(set(value) - {"column", "sep", "max_len", "pooling"})
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; a bag has column, sep, max_len and pooling")
        sep = value.get("sep", " ")
        if not isinstance(sep, str) or not sep:
            self.fail(f"{where}.sep", f"expected a non-empty string, got {json.dumps(sep)[:40]}")
        max_len = value.get("max_len", 8)
        if isinstance(max_len, bool) or not isinstance(max_len, int) or not 1 <= max_len <= MAX_BAG_LEN:
            self.fail(f"{where}.max_len", f"must be an integer in [1, {MAX_BAG_LEN}], got {json.dumps(max_len)[:40]}")
        pooling = value.get("pooling", "mean")
        if pooling not in POOLINGS:
            self.fail(f"{where}.pooling", f"must be mean or sum, got {json.dumps(pooling)[:40]}")
        return Bag(self.string(value["column"], f"{where}.column"), sep, max_len, pooling)

    def list(self, value, where: str) -> list:
        if not isinstance(value, list):
            self.fail(where, f"expected a list, got {json.dumps(value)[:60]}")
        return value

    def label(self, value):
        if isinstance(value, str):
            value = {"column": value}
        if not isinstance(value, dict) or "column" not in value:
            self.fail("label", 'must name a column, e.g. {"column": "rating", "rule": ">= 4"}')
        unknown = sorted(set(value) - {"column", "rule", "positive"})
        if unknown:
            self.fail("label", f"unknown key(s) {', '.join(unknown)}; a label has `column` and `rule` or `positive`")
        rule = value.get("rule")
        if rule is not None and "positive" in value:
            self.fail("label", "give `rule` (a number's threshold) or `positive` (the values that are 1), not both")
        if rule is not None:
            label_rule(self.string(rule, "label.rule"), f"{self.path}: label.rule")
        positive = None
        if "positive" in value:
            positive = tuple(self.strings(value["positive"], "label.positive", '[">50K", ">50K."]'))
            if not positive:
                self.fail("label.positive", "must list at least one value")
        return self.string(value["column"], "label.column"), rule, positive

    def dense(self, value, where: str) -> tuple:
        if isinstance(value, str):
            return self.string(value, where), "log1p"
        if not isinstance(value, dict):
            self.fail(where, f'expected a column name or {{"column": …, "transform": …}}, got {json.dumps(value)[:60]}')
        if "column" not in value:
            self.fail(where, 'missing "column"')
        unknown = sorted(set(value) - {"column", "transform"})
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}")
        transform = value.get("transform", "log1p")
        if transform not in TRANSFORMS:
            self.fail(f"{where}.transform", f"must be log1p or standardize, got {json.dumps(transform)[:40]}")
        return self.string(value["column"], f"{where}.column"), transform

    def files(self, value, where: str, example: str) -> list:
        """`files` or `eval_files`: names (or globs), each a string or `{"file": …, "columns": […],
        "delimiter": …}`."""
        if not isinstance(value, list):
            self.fail(where, f"expected a list of file names, like {example}, got {json.dumps(value)[:60]}")
        return [self.file_entry(v, f"{where}[{i}]", set()) for i, v in enumerate(value)]

    def file_entry(self, value, where: str, more: set) -> FileEntry:
        """A file as a name, or an object with its own settings (`more`: the keys it may carry besides)."""
        if isinstance(value, str):
            return FileEntry(self.string(value, where), where)
        keys = {"file", "columns", "delimiter", "quotes"} | more
        if not isinstance(value, dict) or "file" not in value:
            self.fail(where, f'expected a file name or {{"file": …, "columns": […]}}, got {json.dumps(value)[:60]}')
        unknown = sorted(set(value) - keys)
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; the keys are {', '.join(sorted(keys))}")
        columns = None
        if "columns" in value:
            columns = tuple(self.strings(value["columns"], f"{where}.columns", '["user_id", "gender"]'))
            if not columns:
                self.fail(f"{where}.columns", "must name at least one column")
        delimiter = self.delimiter(value.get("delimiter"), f"{where}.delimiter")
        quotes = None if "quotes" not in value else self.quotes(value["quotes"], f"{where}.quotes")
        return FileEntry(self.string(value["file"], f"{where}.file"), where, columns, delimiter, quotes)

    def quotes(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true (fields may be quoted) or false, got {json.dumps(value)[:40]}")
        return value

    def join(self, value, where: str) -> Join:
        if not isinstance(value, dict):
            self.fail(where, f'expected {{"file": …, "on": …}}, got {json.dumps(value)[:60]}')
        for key in ("file", "on"):
            if key not in value:
                self.fail(where, f'missing "{key}"')
        return Join(self.file_entry(value, where, {"on"}), self.string(value["on"], f"{where}.on"))

    def delimiter(self, value, where: str) -> Optional[str]:
        """One or more characters, none of them a quote or a line break (`","`, `"\\t"`, MovieLens's `"::"`)."""
        if value is not None and (not isinstance(value, str) or not value or any(c in '"\r\n' for c in value)):
            self.fail(where, f"must be one or more characters, none a quote or a line break, got {json.dumps(value)}")
        return value

    def categoricals(self, value) -> list:
        """The categorical features: a column name, or `{"column": …, "parts": [...]}` for one feature per
        part of a time stamp."""
        if not isinstance(value, list):
            example = '["user_id", "item_id"]'
            self.fail("categorical", f"expected a list of columns, like {example}, got {json.dumps(value)[:60]}")
        out, seen = [], {}
        for i, entry in enumerate(value):
            for k, cat in enumerate(self.categorical(entry, f"categorical[{i}]")):
                at = cat.where if cat.part is None else f"{cat.where}.parts[{k}]"
                if cat.name in seen:
                    what = f'column "{cat.name}"' if cat.part is None else f'"{cat.name}"'
                    self.fail(at, f"{what} is already listed at {seen[cat.name]}")
                seen[cat.name] = at
                out.append(cat)
        return out

    def categorical(self, value, where: str) -> list:
        if isinstance(value, str):
            return [Categorical(self.string(value, where), where)]
        shape = '{"column": "timestamp", "parts": ["hour", "weekday"]}'
        if not isinstance(value, dict) or "column" not in value or "parts" not in value:
            self.fail(where, f"expected a column name or {shape}, got {json.dumps(value)[:60]}")
        unknown = sorted(set(value) - {"column", "parts", "format"})
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; a time stamp's parts have column, parts and format")
        fmt = value.get("format", "auto")
        if fmt not in TIME_FORMATS:
            self.fail(f"{where}.format", f"must be one of {', '.join(TIME_FORMATS)}, got {json.dumps(fmt)[:40]}")
        parts = self.list(value["parts"], f"{where}.parts")
        if not parts:
            self.fail(f"{where}.parts", f"must list at least one of {', '.join(TIME_PARTS)}")
        for k, part in enumerate(parts):
            if part not in TIME_PARTS:
                self.fail(f"{where}.parts[{k}]", f"must be one of {', '.join(TIME_PARTS)}, got {json.dumps(part)[:40]}")
        column = self.string(value["column"], f"{where}.column")
        return [Categorical(column, where, part, fmt) for part in parts]


def label_rule(rule: Optional[str], where: str = "label rule"):
    """`OP NUMBER` as a function of the raw value, or None for labels already in {0, 1}."""
    if rule is None:
        return None
    ops = {">=": float.__ge__, ">": float.__gt__, "<=": float.__le__, "<": float.__lt__, "==": float.__eq__}
    for op in (">=", "<=", "==", ">", "<"):
        if rule.strip().startswith(op):
            try:
                threshold = float(rule.strip()[len(op) :])
            except ValueError:
                break
            if not math.isfinite(threshold):
                break
            return lambda v: 1.0 if ops[op](v, threshold) else 0.0
    raise DataError(f"{where} `{rule}` is not `OP NUMBER` with OP one of >=, >, <=, <, ==")
