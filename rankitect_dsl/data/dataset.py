"""Encoded CTR data: dense features, categorical indices and labels, with a held-out evaluation tail."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.errors import RksError


class DataError(RksError):
    def __init__(self, message: str):
        super().__init__(message, filename="data")

    def render(self) -> str:
        return "data error: " + self.diagnostics[0].message


PAD = -1  # the id that fills a bag's row past its last token; no embedding row, never pooled


@dataclass
class BagColumn:
    """A multi-valued feature stored as TorchRec's jagged tensors are: row i's ids are
    `ids[offsets[i]:offsets[i + 1]]` (vocabulary ids, 0 out of vocabulary), at most `max_len` of them."""

    offsets: np.ndarray  # n + 1 int64, offsets[0] == 0
    ids: np.ndarray  # offsets[-1] int64
    max_len: int
    pooling: str  # mean | sum

    def head(self, n: int) -> "BagColumn":
        """The first n rows (views, nothing copied)."""
        return BagColumn(self.offsets[: n + 1], self.ids, self.max_len, self.pooling)

    def padded(self, rows) -> np.ndarray:
        """len(rows) × max_len ids of `rows` (a slice or an index array), PAD past each row's last id."""
        if isinstance(rows, slice):  # the batch's own rows, not an index over the whole data set
            start, stop = self.offsets[:-1][rows], self.offsets[1:][rows]
        else:
            start, stop = self.offsets[rows], self.offsets[np.asarray(rows) + 1]
        at = start[:, None] + np.arange(self.max_len)
        present = at < stop[:, None]
        if len(self.ids) == 0:
            return np.full(at.shape, PAD, dtype=np.int64)
        return np.where(present, np.asarray(self.ids)[np.minimum(at, len(self.ids) - 1)], PAD)


@dataclass
class Dataset:
    name: str
    dense: np.ndarray  # n × S float32 (already transformed)
    cats: np.ndarray  # n × N int64, 0 is each feature's out-of-vocabulary bucket
    labels: np.ndarray  # n float32 in {0, 1}
    vocab_sizes: list  # one per categorical column, then one per bag
    n_train: int  # the first n_train rows are for training, in order; the rest is the evaluation tail
    bags: list = field(default_factory=list)  # [BagColumn], each one more embedding row after the categoricals

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def n_dense(self) -> int:
        return self.dense.shape[1]

    @property
    def n_cat(self) -> int:
        """Rows of the embedding tensor: one per categorical column and one per bag."""
        return self.cats.shape[1] + len(self.bags)

    @property
    def bag_layout(self) -> tuple:
        """(max_len, pooling) of each bag, what the model needs to pool `categorical`'s trailing columns."""
        return tuple((b.max_len, b.pooling) for b in self.bags)

    def categorical(self, rows) -> np.ndarray:
        """The categorical ids of `rows` (a slice or an index array) as the model reads them: the columns of
        `cats`, then each bag's ids padded with PAD to its max_len."""
        plain = np.array(self.cats[rows])
        if not self.bags:
            return plain
        return np.concatenate([plain, *(b.padded(rows) for b in self.bags)], 1)

    def check_fits(self, space) -> None:
        want = (space.spec.dense.width, space.spec.embed.count)
        if (self.n_dense, self.n_cat) != want:
            raise DataError(
                f"data `{self.name}` has {self.n_dense} dense and {self.n_cat} categorical features, "
                f"but space `{space.name}` takes dense[{want[0]}] and embed[{want[1]}, {space.spec.embed.dim}]"
            )

    def validation_view(self, fraction: float) -> "Dataset":
        """The data a search trains and selects on: the training part less its latest `fraction` of rows,
        with those rows (the validation slice) as the view's evaluation tail. The arrays are views, so
        nothing is copied; the real evaluation tail lies beyond the view and no selection reads it.
        A fraction of 0 is the data itself (no validation slice: the view's tail is the evaluation tail)."""
        if fraction == 0:
            return self
        if not 0 < fraction <= 0.5:
            raise DataError(f"--val-fraction is a fraction of the training rows in [0, 0.5], got {fraction:g}")
        n_val = int(round(fraction * self.n_train))
        if n_val < MIN_VALIDATION_ROWS or self.n_train - n_val < MIN_VALIDATION_ROWS:
            raise DataError(
                f"--val-fraction {fraction:g} of `{self.name}`'s {self.n_train:,} training rows leaves {n_val:,} "
                f"validation and {self.n_train - n_val:,} training rows; each needs at least {MIN_VALIDATION_ROWS}"
                " (use more data or another fraction)"
            )
        n = self.n_train
        return Dataset(
            f"{self.name} (less its validation slice)",
            self.dense[:n],
            self.cats[:n],
            self.labels[:n],
            self.vocab_sizes,
            n - n_val,
            [b.head(n) for b in self.bags],
        )


MIN_VALIDATION_ROWS = 50  # an NE on fewer rows is mostly noise
