"""Turn raw rows into a cached `Dataset` as ranking teams do: log(1+x) for counts, per-feature
vocabularies with a frequency threshold and an out-of-vocabulary bucket, fitted on the training part only.
A count feature is the id's running count, its occurrences before the row, as a serving-time counter
sees it: a total over the training part would tell each training row how often its id will still occur,
and give every id new in the tail a value no training row had. A rate feature is the id's running
positive rate, the historical CTR ranking systems keep per user and per item: the labels of the id's
earlier rows, smoothed toward the training part's rate by `columnar_tables.RATE_PRIOR_ROWS` pseudo-rows and
standardised over the training part. Like a serving counter, it reads only rows before its own, so a row's
own label never reaches its features.

The columnar engines do the work (`columnar.py` for Criteo files, `columnar_tables.py` for tables). When
one refuses a file, the sources' row reader reads it to name the first bad row's `file:line`. The cache
entry is written to a temporary folder and renamed only when complete: a failed read leaves nothing
behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .columnar import NotColumnar
from .dataset import BagColumn, DataError, Dataset

FORMAT_VERSION = 5  # 5: bags (multi-valued features) and eval_files


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
    """The arrays of `source` in `folder`, by the columnar engine of its kind."""
    from .sources import CriteoSource

    if isinstance(source, CriteoSource):
        from . import columnar as engine
    else:
        from . import columnar_tables as engine
    try:
        return engine.build(source, folder, lambda n: _split(source, n, eval_fraction), min_count)
    except NotColumnar as refusal:
        _name_the_bad_row(source)
        raise DataError(f"{source.name}: {refusal}") from None


def _name_the_bad_row(source) -> None:
    """The row reader's pass over a file the columnar engine refused: its DataError names the first bad
    row's `file:line`. It returns only for a file the row reader takes and the engine cannot."""
    for _ in source.rows():
        pass


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


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
