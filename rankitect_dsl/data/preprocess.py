"""Turn raw rows into a cached `Dataset` as ranking teams do: log(1+x) for counts, per-feature
vocabularies with a frequency threshold and an out-of-vocabulary bucket, fitted on the training part only.
A count feature is the id's running count, its occurrences before the row, as a serving-time counter
sees it: a total over the training part would tell each training row how often its id will still occur,
and give every id new in the tail a value no training row had. A rate feature is the id's running
positive rate, the historical CTR ranking systems keep per user and per item: the labels of the id's
earlier rows, smoothed toward the training part's rate by `RATE_PRIOR_ROWS` pseudo-rows and
standardised over the training part. Like a serving counter, it reads only rows before its own, so a row's
own label never reaches its features.

Three streamed passes (validate and count, fit on the training part, encode into memory-mapped arrays),
so a file larger than memory works. The cache entry is written to a temporary folder and renamed only
when complete: a failed read leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from .dataset import BagColumn, DataError, Dataset

FORMAT_VERSION = 5  # 5: bags (multi-valued features) and eval_files
RATE_PRIOR_ROWS = 5.0
ROW_PATH_ENV = "RKS_ROW_PREPROCESS"  # 1: the row-at-a-time path even where the columnar one reads the source


def cache_root() -> Path:
    return Path(os.environ.get("RKS_CACHE", Path.home() / ".cache" / "rankitect_dsl"))


def load_dataset(source, min_count: int = 2, eval_fraction: float = 0.2, cache: bool = True) -> Dataset:
    if not 0 < eval_fraction < 1:
        raise DataError(f"the evaluation fraction must be in (0, 1), got {eval_fraction}")
    key = f"{source.key}-m{min_count}-e{eval_fraction}-v{FORMAT_VERSION}"
    folder = cache_root() / key
    if cache and (folder / "meta.json").exists():
        return _read(folder, source.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_ensure(cache_root())))
    try:
        n_train, vocab_sizes = _build(source, tmp, min_count, eval_fraction)
        bags = [{"max_len": b.max_len, "pooling": b.pooling} for b in source.bags]
        meta = {"name": source.name, "n_train": n_train, "vocab_sizes": vocab_sizes, "bags": bags}
        (tmp / "meta.json").write_text(json.dumps(meta))
        if not cache:
            data = _read(tmp, source.name, in_memory=True)
            shutil.rmtree(tmp)
            return data
        if folder.exists():
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _read(folder, source.name)


def _build(source, folder: Path, min_count: int, eval_fraction: float) -> tuple[int, list]:
    """The arrays of `source` in `folder`: by the columnar engine where it reads the source, else (or when its
    checks refuse a row, which the row reader then names) row at a time in three streamed passes."""
    columnar = _columnar(source)
    if columnar is not None:
        try:
            return columnar.build(source, folder, lambda n: _split(source, n, eval_fraction), min_count)
        except columnar.NotColumnar:
            for f in folder.iterdir():
                f.unlink()
    n_total = sum(1 for _ in source.rows())
    n_train = _split(source, n_total, eval_fraction)
    vocabs, stats = _fit(source, n_train, min_count)
    _encode(source, folder, n_total, vocabs, stats)
    return n_train, [len(v) + 1 for v in vocabs]


def _split(source, n_total: int, eval_fraction: float) -> int:
    """The training part's length: the training files' rows when the schema names `eval_files`, else all
    but the latest `eval_fraction` of the rows (at least one)."""
    if n_total == 0:
        raise DataError(f"{source.name}: no examples (the file is empty)")
    if source.n_train_rows is not None:
        if source.n_train_rows in (0, n_total):
            which = "training files" if source.n_train_rows == 0 else "eval_files"
            raise DataError(f"{source.name}: the {which} hold no examples")
        return source.n_train_rows
    n_train = n_total - max(1, round(eval_fraction * n_total))
    if n_train < 1:
        raise DataError(f"{source.name}: {n_total} example(s) leave nothing to train on")
    return n_train


def _columnar(source):
    """The columnar engine for the source (`columnar.py` for Criteo files, `columnar_tables.py` for tables)
    when pyarrow is installed; None otherwise, or when ROW_PATH_ENV asks for the row path."""
    from .sources import CriteoSource, TableSource

    if not isinstance(source, (CriteoSource, TableSource)) or os.environ.get(ROW_PATH_ENV) == "1":
        return None
    try:
        if isinstance(source, CriteoSource):
            from . import columnar
        else:
            from . import columnar_tables as columnar
    except ImportError:
        return None
    return columnar


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class _RunningRate:
    """One id column's earlier rows and positives. `terms` splits the smoothed rate into a + prior·b, so
    the pass that finds the prior also finds the rate's mean and spread over the training part."""

    def __init__(self):
        self.seen, self.clicks = Counter(), Counter()

    def terms(self, token: str) -> tuple[float, float]:
        rows = self.seen[token] + RATE_PRIOR_ROWS
        return self.clicks[token] / rows, RATE_PRIOR_ROWS / rows

    def add(self, token: str, label: float) -> None:
        self.seen[token] += 1
        self.clicks[token] += label


def _fit(source, n_train: int, min_count: int):
    n_cat = source.n_cat
    counters = [Counter() for _ in range(n_cat + len(source.bags))]
    n_plain = len(source.dense_transforms)
    sums, squares, counts = np.zeros(n_plain), np.zeros(n_plain), np.zeros(n_plain)
    positives = 0.0
    rates = [_RunningRate() for _ in range(source.n_rate)]
    moments = np.zeros((source.n_rate, 5))  # sums of a, b, a², ab, b²
    first_rate = n_cat + source.n_count
    for i, row in enumerate(source.rows()):
        if i >= n_train:
            break
        positives += row.label
        for k, (rate, token) in enumerate(zip(rates, row.cats[first_rate:])):
            a, b = rate.terms(token)
            moments[k] += (a, b, a * a, a * b, b * b)
            rate.add(token, row.label)
        for c, token in zip(counters[:n_cat], row.cats):
            c[token] += 1
        for c, tokens in zip(counters[n_cat:], row.bags):
            c.update(tokens)
        for k, v in enumerate(row.dense):
            if v is not None:
                sums[k] += v
                squares[k] += v * v
                counts[k] += 1
    vocabs = []
    for c in counters:
        frequent = sorted((kv for kv in c.items() if kv[1] >= min_count), key=lambda kv: (-kv[1], kv[0]))
        vocabs.append({token: i + 1 for i, (token, _) in enumerate(frequent)})
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    var = np.divide(squares, counts, out=np.zeros_like(sums), where=counts > 0) - mean**2
    prior = positives / n_train
    sa, sb, saa, sab, sbb = (moments / n_train).T
    rate_mean = sa + prior * sb
    rate_var = saa + 2 * prior * sab + prior**2 * sbb - rate_mean**2
    stats = (mean, np.sqrt(np.maximum(var, 1e-12)), prior, rate_mean, np.sqrt(np.maximum(rate_var, 1e-12)))
    return vocabs, stats


def _encode(source, folder: Path, n: int, vocabs, stats) -> None:
    n_cat = source.n_cat
    transforms = source.dense_transforms
    dense = np.lib.format.open_memmap(folder / "dense.npy", mode="w+", dtype=np.float32, shape=(n, source.n_dense))
    cats = np.lib.format.open_memmap(folder / "cats.npy", mode="w+", dtype=np.int64, shape=(n, n_cat))
    labels = np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.float32, shape=(n,))
    mean, std, prior, rate_mean, rate_std = stats
    bags = [_BagWriter(folder, k, n) for k in range(len(source.bags))]
    running = [Counter() for _ in range(source.n_count)]
    rates = [_RunningRate() for _ in range(source.n_rate)]
    first_rate = n_cat + source.n_count
    chunk = 65536
    buf_d, buf_c, buf_l, start = [], [], [], 0
    for row in source.rows():
        values = []
        for k, (v, t) in enumerate(zip(row.dense, transforms)):
            if v is None:
                values.append(0.0)
            elif t == "log1p":
                values.append(math.log1p(max(v, 0.0)))
            else:
                values.append((v - mean[k]) / std[k])
        for seen, tok in zip(running, row.cats[n_cat:first_rate]):
            values.append(math.log1p(seen[tok]))
            seen[tok] += 1
        for k, (rate, tok) in enumerate(zip(rates, row.cats[first_rate:])):
            a, b = rate.terms(tok)
            values.append((a + prior * b - rate_mean[k]) / rate_std[k])
            rate.add(tok, row.label)
        buf_d.append(values)
        buf_c.append([v.get(tok, 0) for v, tok in zip(vocabs, row.cats[:n_cat])])
        buf_l.append(row.label)
        for bag, vocab, tokens in zip(bags, vocabs[n_cat:], row.bags):
            bag.add([vocab.get(tok, 0) for tok in tokens])
        if len(buf_l) == chunk:
            start = _flush(dense, cats, labels, start, buf_d, buf_c, buf_l)
            buf_d, buf_c, buf_l = [], [], []
    _flush(dense, cats, labels, start, buf_d, buf_c, buf_l)
    for arr in (dense, cats, labels):
        arr.flush()
    for bag in bags:
        bag.close()


class _BagWriter:
    """One bag's jagged arrays, streamed: `bag{k}_offsets.npy` (n + 1) and `bag{k}_ids.npy`."""

    def __init__(self, folder: Path, k: int, n: int):
        self.folder, self.k = folder, k
        path = folder / f"bag{k}_offsets.npy"
        self.offsets = np.lib.format.open_memmap(path, mode="w+", dtype=np.int64, shape=(n + 1,))
        self.offsets[0] = 0
        self.row, self.total = 0, 0
        self.ids = open(folder / f"bag{k}_ids.raw", "wb")

    def add(self, ids: list) -> None:
        self.ids.write(np.asarray(ids, dtype=np.int64).tobytes())
        self.total += len(ids)
        self.row += 1
        self.offsets[self.row] = self.total

    def close(self) -> None:
        self.ids.close()
        self.offsets.flush()
        raw = self.folder / f"bag{self.k}_ids.raw"
        np.save(self.folder / f"bag{self.k}_ids.npy", np.fromfile(raw, dtype=np.int64))
        raw.unlink()


def _flush(dense, cats, labels, start, buf_d, buf_c, buf_l) -> int:
    end = start + len(buf_l)
    if buf_l:
        dense[start:end] = np.asarray(buf_d, dtype=np.float32).reshape(len(buf_l), -1)
        cats[start:end] = np.asarray(buf_c, dtype=np.int64).reshape(len(buf_l), -1)
        labels[start:end] = buf_l
    return end


def _read(folder: Path, name: str, in_memory: bool = False) -> Dataset:
    meta = json.loads((folder / "meta.json").read_text())
    mode = None if in_memory else "r"

    def load(f):
        return np.load(folder / f, mmap_mode=mode)

    bags = [
        BagColumn(load(f"bag{k}_offsets.npy"), load(f"bag{k}_ids.npy"), b["max_len"], b["pooling"])
        for k, b in enumerate(meta.get("bags", []))
    ]
    return Dataset(
        name, load("dense.npy"), load("cats.npy"), load("labels.npy"), meta["vocab_sizes"], meta["n_train"], bags
    )
