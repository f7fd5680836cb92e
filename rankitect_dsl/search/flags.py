"""Command-line flag types and the flag groups several commands share (data and validation slice, device).
Searchers declare their own flags with these (`search/base.py`), so every flag reads and fails alike."""

from __future__ import annotations

import argparse
import re
from typing import Optional

from ..runtime import DEVICES
from . import FINALISTS, VAL_FRACTION


def positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got `{text}`") from None
    if not values or min(values) <= 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct positive integers, got `{text}`")
    return values


def dim_range(text: str) -> tuple[float, float, int]:
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\.\.([0-9]*\.?[0-9]+):([0-9]+)", text)
    if not m or float(m[1]) <= 0 or float(m[2]) < float(m[1]) or int(m[3]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected LOW..HIGH:STEPS with 0 < LOW <= HIGH, like 0.5..1.25:7; got `{text}`"
        )
    return float(m[1]), float(m[2]), int(m[3])


def study_name(text: str) -> str:
    """A study's name also names its checkpoint and log files beside the store: a plain file-name stem."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", text):
        raise argparse.ArgumentTypeError(
            f"`{text[:60]}` is not a study name: use up to 128 letters, digits, `.`, `_` and `-`, starting with a "
            "letter or digit"
        )
    return text


def keep(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a keep probability lies in (0, 1], got `{text}`")
    return value


def number_or_auto(text: str):
    """A number, or `auto` (None: adapted)."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def data_args(s, val_fraction: float = VAL_FRACTION) -> None:
    """The data flags. `val_fraction`: the default slice, 0.1 where a search chooses on it, 0 for `rks train`,
    whose model is what a user keeps and trains on every row before the tail unless asked."""
    s.add_argument(
        "--data",
        default="synthetic",
        help="synthetic[:SEED] | planted[:SEED] | criteo:PATH | table:PATH (default: synthetic)",
    )
    s.add_argument("--schema", help="schema JSON for a table: source (required with table:)")
    s.add_argument("--min-count", type=positive(int), default=2, help="vocabulary frequency threshold (default 2)")
    s.add_argument("--eval-fraction", type=float, default=0.2, help="held-out tail of the data (default 0.2)")
    s.add_argument(
        "--batch-size",
        type=positive(int),
        help="default: 64, doubled for each doubling of the training part beyond 20,000 rows",
    )
    s.add_argument("--lr", type=positive(float), default=1e-3, help="the body's Adam learning rate (default 0.001)")
    s.add_argument("--seed", type=int, default=0, help="seed of every draw and initialisation (default 0)")
    s.add_argument(
        "--val-fraction",
        type=float,
        default=val_fraction,
        help="the latest part of the training rows held out to choose on and scored: never trained on by a "
        f"proxy or a choosing retrain; the chosen model is refit on every row (default {val_fraction:g})"
        if val_fraction
        else "the latest part of the training rows held out and scored (default 0: train on every row before the tail)",
    )


def device_arg(s) -> None:
    s.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where the models train: auto takes CUDA when this machine has it, else the CPU (default auto)",
    )
    s.add_argument(
        "--nproc",
        type=positive(int),
        default=1,
        metavar="K",
        help="data-parallel processes on this machine: the command runs again under torchrun --standalone "
        "--nproc-per-node K, one GPU or a share of the cores each (default 1)",
    )


def data_flags(args, examples=None) -> list[str]:
    """The data flags that rebuild the data of `args` for `rks train`, which trains on every row before the
    tail as the refit does (synthetic data: `examples` is all of its training rows)."""
    out = ["--data", args.data]
    if args.schema:
        out += ["--schema", args.schema]
    if args.min_count != 2:
        out += ["--min-count", str(args.min_count)]
    if args.eval_fraction != 0.2:
        out += ["--eval-fraction", f"{args.eval_fraction:g}"]
    if examples is not None:
        out += ["--examples", str(examples)]
    if args.batch_size:
        out += ["--batch-size", str(args.batch_size)]
    if args.lr != 1e-3:
        out += ["--lr", f"{args.lr:g}"]
    return out


def add_search_parser(sub, method: Optional[str]):
    """`rks search`: the common flags and, when `method` names a registered searcher, that method's own
    (so `--help` lists only them). Returns the subparser."""
    from .registry import DEFAULT, SEARCHERS, searcher_class

    s = sub.add_parser(
        "search",
        help="search a space: sampling (predictor, the default; random, evolution), a local search from the "
        "production model (local) or in place with the supernet (oneshot, dnas)",
        epilog="each method has its own flags: `rks search FILE --method M --help` lists them",
    )
    s.add_argument("file", help="the space (.rks)")
    s.add_argument("--method", choices=list(SEARCHERS), default=DEFAULT, help=f"the search method (default {DEFAULT})")
    s.add_argument(
        "--flops-target",
        help="FLOPs target, absolute or relative to the baseline like 2.5x: a penalty for the sampling methods, "
        "the target of oneshot and dnas (required there)",
    )
    s.add_argument(
        "--retrain-seeds",
        type=int,
        default=3,
        help="after the search, retrain the finalists and the baseline with this many seeds; the best on the "
        "validation slice wins, and the evaluation tail, which nothing reads before, is quoted (default 3; 0 "
        "skips: the search's best is the winner, unmeasured against the baseline)",
    )
    s.add_argument(
        "--finalists",
        type=positive(int),
        default=FINALISTS,
        help="candidates retrained beside the baseline at the end: the top of the ranking (sampling methods) "
        f"or γ(θ) and the most likely runners-up (oneshot, dnas) (default {FINALISTS})",
    )
    s.add_argument(
        "--storage",
        help="Optuna storage URL, or journal:PATH for Optuna's journal file (default sqlite:///runs/STUDY.db; "
        "with --jobs, journal:runs/STUDY.journal)",
    )
    s.add_argument("--study", type=study_name, help="study name: letters, digits, . _ - (default SPACE-METHOD[-PROXY])")
    s.add_argument("--export", help="folder for the winner's Python source, arch JSON and selection.json")
    s.add_argument("--json", action="store_true", help="print the summary as one JSON object, and no progress")
    data_args(s)
    device_arg(s)
    method = method or DEFAULT
    if method in SEARCHERS:
        searcher = searcher_class(method)
        searcher.add_arguments(s.add_argument_group(f"--method {method}: {searcher.help}"))
    return s
