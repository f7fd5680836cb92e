"""Load the data a space trains on, from a `--data` spec."""

from __future__ import annotations

from typing import Optional

from ..core.limits import memory_problem
from .dataset import DataError, Dataset
from .preprocess import load_dataset
from .sources import parse_data_spec
from .synthetic import SyntheticSource


def load_data(
    spec: str,
    space,
    examples: int,
    schema: Optional[str] = None,
    min_count: int = 2,
    eval_fraction: float = 0.2,
    val_fraction: float = 0.0,
) -> Dataset:
    """The data a space trains on: synthetic data is made to the space's input shapes, `examples` rows to
    train on plus the validation slice (`val_fraction` of the training part) and the evaluation tail."""
    source = parse_data_spec(spec, schema)
    needed = SEEN_BYTES * examples  # the trainer keeps every prediction for window NE
    if isinstance(source, SyntheticSource):
        n_train = examples + int(round(examples * val_fraction / (1 - val_fraction)))
        n_eval = max(2000, int(round(n_train * eval_fraction / (1 - eval_fraction))))
        shape = (space.spec.dense.width, space.spec.embed.count)
        _refuse_beyond_memory(examples, needed + source.bytes_needed(*shape, n_train + n_eval), source.name)
        data = source.make(space, n_train, n_eval)
    else:
        _refuse_beyond_memory(examples, needed, source.name)
        data = load_dataset(source, min_count=min_count, eval_fraction=eval_fraction)
    data.check_fits(space)
    return data


def passes_warning(examples: int, fit: Dataset, synthetic: bool):
    """A warning when `--examples` asks for more than one pass over a file's training rows: measured on a
    time-sorted table, a second pass over the old rows cost far more eval NE than it gave. None otherwise."""
    if synthetic or examples <= fit.n_train:
        return None
    return (
        f"warning: --examples {examples:,} is {examples / fit.n_train:.2f} passes over the {fit.n_train:,} training "
        "rows: later passes revisit old rows, which on time-ordered data costs more than it gives; leave "
        "--examples out for one pass"
    )


SEEN_BYTES = 8  # a float32 logit and label per example trained on


def _refuse_beyond_memory(examples: int, needed: int, source: str) -> None:
    """Refuse `--examples` that this machine cannot hold before allocating any of it."""
    problem = memory_problem(needed, f"--examples {examples:,} on {source}")
    if problem:
        raise DataError(f"{problem}; lower --examples")
