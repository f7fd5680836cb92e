"""A row-at-a-time reference for the columnar engines: docs/data.md's preprocessing rules stated once more,
in plain Python loops over the sources' row reader (`rows()`), sharing no code with `data/columnar*.py`.
`assert_matches_rows` compares a Dataset with it and names the first row and column that differ."""

from __future__ import annotations

import math

import numpy as np

RATE_PRIOR_ROWS = 5  # docs/data.md: (clicks before this row + 5·p) / (rows before this row + 5)


def _mean(values) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values) if values else 0.0


def _vocabulary(tokens_per_row, n_train: int, min_count: int) -> dict:
    """token → id: tokens seen at least `min_count` times in the training rows, 1, 2, … by count, then token."""
    counts: dict = {}
    for tokens in tokens_per_row[:n_train]:
        for t in tokens:
            counts[t] = counts.get(t, 0) + 1
    frequent = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    return {t: k + 1 for k, t in enumerate(frequent)}


def _running(values, labels):
    """Per row: how many earlier rows had its value, and how many of those were positive."""
    seen: dict = {}
    clicks: dict = {}
    out = []
    for v, y in zip(values, labels):
        out.append((seen.get(v, 0), clicks.get(v, 0.0)))
        seen[v] = seen.get(v, 0) + 1
        clicks[v] = clicks.get(v, 0.0) + y
    return out


def reference(source, min_count: int, eval_fraction: float = 0.2) -> dict:
    """The arrays docs/data.md says `source` preprocesses to, with each row's `line` and each column's name."""
    rows = list(source.rows())
    n = len(rows)
    n_train = source.n_train_rows if source.n_train_rows is not None else n - max(1, round(eval_fraction * n))
    labels = [r.label for r in rows]
    schema = getattr(source, "schema", None)
    transforms = [t for _, t in schema.dense] if schema else ["log1p"] * len(rows[0].dense)
    names = [c for c, _ in schema.dense] if schema else [f"I{k + 1}" for k in range(len(transforms))]
    dense_columns, dense_names = [], []
    for k, transform in enumerate(transforms):
        x = [r.dense[k] for r in rows]
        if transform == "log1p":
            column = [0.0 if v is None else math.log1p(max(v, 0.0)) for v in x]
        else:
            train = [v for v in x[:n_train] if v is not None]
            mean = _mean(train)
            std = math.sqrt(max(_mean([v * v for v in train]) - mean**2, 1e-12))
            column = [0.0 if v is None else (v - mean) / std for v in x]
        dense_columns.append(column)
        dense_names.append(f"dense `{names[k]}`")
    n_cat = len(schema.categorical) if schema else len(rows[0].cats)
    counted = schema.count_features if schema else []
    rated = schema.rate_features if schema else []
    for k, col in enumerate(counted):
        values = [r.cats[n_cat + k] for r in rows]
        dense_columns.append([math.log1p(seen) for seen, _ in _running(values, labels)])
        dense_names.append(f"count of `{col}`")
    prior = _mean(labels[:n_train])
    for k, col in enumerate(rated):
        values = [r.cats[n_cat + len(counted) + k] for r in rows]
        rate = [(c + RATE_PRIOR_ROWS * prior) / (s + RATE_PRIOR_ROWS) for s, c in _running(values, labels)]
        mean = _mean(rate[:n_train])
        std = math.sqrt(max(_mean([v * v for v in rate[:n_train]]) - mean**2, 1e-12))
        dense_columns.append([(v - mean) / std for v in rate])
        dense_names.append(f"rate of `{col}`")
    cats, cat_names, vocab_sizes = [], [], []
    for k in range(n_cat):
        tokens = [[r.cats[k]] for r in rows]
        vocab = _vocabulary(tokens, n_train, min_count)
        cats.append([vocab.get(t[0], 0) for t in tokens])
        cat_names.append(f"categorical `{schema.categorical[k].name}`" if schema else f"C{k + 1}")
        vocab_sizes.append(len(vocab) + 1)
    bags = []
    for k in range(len(schema.bags) if schema else 0):
        tokens = [r.bags[k] for r in rows]
        vocab = _vocabulary(tokens, n_train, min_count)
        bags.append([[vocab.get(t, 0) for t in row] for row in tokens])
        vocab_sizes.append(len(vocab) + 1)
    return {
        "lines": [r.line for r in rows],
        "n_train": n_train,
        "labels": labels,
        "dense": (dense_columns, dense_names),
        "cats": (cats, cat_names),
        "bags": bags,
        "vocab_sizes": vocab_sizes,
    }


def _first_difference(engine: np.ndarray, rows: list, lines: list, name: str, close: bool) -> str | None:
    want = np.asarray(rows, dtype=engine.dtype)
    same = np.isclose(engine, want, rtol=1e-6, atol=1e-6) if close else engine == want
    if same.all():
        return None
    i = int(np.flatnonzero(~same)[0])
    return (
        f"{name} differs at {int((~same).sum())} row(s); first at row {i} (line {lines[i]}): "
        f"engine {engine[i]!r}, rows {want[i]!r}"
    )


def assert_matches_rows(data, source, min_count: int, eval_fraction: float = 0.2) -> None:
    """Every array of `data` is what the row reference makes of `source`: labels, ids and bags exactly, dense
    values to float32 rounding. A failure names the column, the row and its line in the file."""
    ref = reference(source, min_count, eval_fraction)
    lines = ref["lines"]
    assert (data.n, data.n_train) == (len(lines), ref["n_train"])
    assert [int(v) for v in data.vocab_sizes] == ref["vocab_sizes"]
    problems = [_first_difference(np.asarray(data.labels), ref["labels"], lines, "the label", False)]
    dense, dense_names = ref["dense"]
    assert np.asarray(data.dense).shape == (len(lines), len(dense)), dense_names
    for k, (column, name) in enumerate(zip(dense, dense_names)):
        problems.append(_first_difference(np.asarray(data.dense[:, k]), column, lines, name, True))
    cats, cat_names = ref["cats"]
    assert np.asarray(data.cats).shape == (len(lines), len(cats)), cat_names
    for k, (column, name) in enumerate(zip(cats, cat_names)):
        problems.append(_first_difference(np.asarray(data.cats[:, k]), column, lines, name, False))
    assert len(data.bags) == len(ref["bags"])
    for k, (bag, ids) in enumerate(zip(data.bags, ref["bags"])):
        lengths = np.diff(np.asarray(bag.offsets))
        problems.append(_first_difference(lengths, [len(r) for r in ids], lines, f"bag {k}'s length", False))
        if lengths.tolist() == [len(r) for r in ids]:
            flat = [t for r in ids for t in r]
            owner = np.repeat(np.arange(len(ids)), lengths)
            bad = np.flatnonzero(np.asarray(bag.ids) != np.asarray(flat, dtype=np.int64))
            if len(bad):
                i = int(owner[bad[0]])
                problems.append(f"bag {k}'s ids differ; first at row {i} (line {lines[i]}): {ids[i]}")
    problems = [p for p in problems if p]
    assert not problems, "\n".join(problems)
