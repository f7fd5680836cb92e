"""Load the data a space trains on, from a `--data` spec."""

from __future__ import annotations

from typing import Optional

from .dataset import Dataset
from .preprocess import load_dataset
from .sources import parse_data_spec
from .synthetic import SyntheticSource


def load_data(
    spec: str, space, examples: int, schema: Optional[str] = None, min_count: int = 2, eval_fraction: float = 0.2
) -> Dataset:
    """The data a space trains on: synthetic data is made to the space's input shapes."""
    source = parse_data_spec(spec, schema)
    if isinstance(source, SyntheticSource):
        n_eval = max(2000, int(round(examples * eval_fraction / (1 - eval_fraction))))
        data = source.dataset(space.spec.dense.width, space.spec.embed.count, examples, n_eval)
    else:
        data = load_dataset(source, min_count=min_count, eval_fraction=eval_fraction)
    data.check_fits(space)
    return data
