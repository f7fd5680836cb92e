"""Turn raw rows into a cached `Dataset` as ranking teams do: log(1+x) for counts, per-feature
vocabularies with a frequency threshold and an out-of-vocabulary bucket, fitted on the training part only.
A count feature is the id's running count, its occurrences before the row, as a serving-time counter
sees it: a total over the training part would tell each training row how often its id will still occur,
and give every id new in the tail a value no training row had.

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

from .dataset import DataError, Dataset

FORMAT_VERSION = 2


def cache_root() -> Path:
    return Path(os.environ.get("RKS_CACHE", Path.home() / ".cache" / "rankitect_dsl"))


def load_dataset(source, min_count: int = 2, eval_fraction: float = 0.2, cache: bool = True) -> Dataset:
    if not 0 < eval_fraction < 1:
        raise DataError(f"the evaluation fraction must be in (0, 1), got {eval_fraction}")
    key = f"{source.key}-m{min_count}-e{eval_fraction}-v{FORMAT_VERSION}"
    folder = cache_root() / key
    if cache and (folder / "meta.json").exists():
        return _read(folder, source.name)
    n_total = sum(1 for _ in source.rows())
    if n_total == 0:
        raise DataError(f"{source.name}: no examples (the file is empty)")
    n_eval = max(1, round(eval_fraction * n_total))
    n_train = n_total - n_eval
    if n_train < 1:
        raise DataError(f"{source.name}: {n_total} example(s) leave nothing to train on")
    vocabs, stats = _fit(source, n_train, min_count)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_ensure(cache_root())))
    try:
        _encode(source, tmp, n_total, vocabs, stats)
        meta = {"name": source.name, "n_train": n_train, "vocab_sizes": [len(v) + 1 for v in vocabs]}
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


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fit(source, n_train: int, min_count: int):
    n_cat = source.n_cat
    counters = [Counter() for _ in range(n_cat)]
    n_plain = len(source.dense_transforms)
    sums, squares, counts = np.zeros(n_plain), np.zeros(n_plain), np.zeros(n_plain)
    for i, row in enumerate(source.rows()):
        if i >= n_train:
            break
        for c, token in zip(counters, row.cats):
            c[token] += 1
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
    stats = (mean, np.sqrt(np.maximum(var, 1e-12)))
    return vocabs, stats


def _encode(source, folder: Path, n: int, vocabs, stats) -> None:
    n_cat = source.n_cat
    transforms = source.dense_transforms
    dense = np.lib.format.open_memmap(folder / "dense.npy", mode="w+", dtype=np.float32, shape=(n, source.n_dense))
    cats = np.lib.format.open_memmap(folder / "cats.npy", mode="w+", dtype=np.int64, shape=(n, n_cat))
    labels = np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.float32, shape=(n,))
    mean, std = stats
    running = [Counter() for _ in range(source.n_count)]
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
        for seen, tok in zip(running, row.cats[n_cat:]):
            values.append(math.log1p(seen[tok]))
            seen[tok] += 1
        buf_d.append(values)
        buf_c.append([v.get(tok, 0) for v, tok in zip(vocabs, row.cats[:n_cat])])
        buf_l.append(row.label)
        if len(buf_l) == chunk:
            start = _flush(dense, cats, labels, start, buf_d, buf_c, buf_l)
            buf_d, buf_c, buf_l = [], [], []
    _flush(dense, cats, labels, start, buf_d, buf_c, buf_l)
    for arr in (dense, cats, labels):
        arr.flush()


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

    return Dataset(name, load("dense.npy"), load("cats.npy"), load("labels.npy"), meta["vocab_sizes"], meta["n_train"])
