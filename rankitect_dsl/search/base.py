"""The searcher interface, in the spirit of Optuna's `BaseSampler`: a method is a `Searcher` that declares
its own flags, validates them against the space, runs against a `SearchContext` (space, data, study store,
device, output folder, progress) and returns what it found (`Found`). What every method then does alike —
the final selection against the baseline, the run record in the study store, the export, the summary's
common fields and its rendering — is here, once. `registry.py` names the methods; the command line only
parses, calls `run_search` and prints.

Adding a method: one module with a `Searcher` subclass, one line in `registry.SEARCHERS`
(docs/architecture.md works through one)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..core.files import atomic_write
from .flags import data_flags


@dataclass
class SearchContext:
    """What a searcher runs against. `args` holds every parsed flag, the common ones and its own."""

    args: argparse.Namespace
    space: object
    url: str  # the study store
    study: str
    command_line: str

    @property
    def progress(self) -> bool:
        """Progress and notes on stderr: not under `--json`, and under torchrun from rank 0 only."""
        from ..runtime import distributed

        return not self.args.json and distributed.current().main

    @property
    def device(self) -> str:
        return self.args.device

    def say(self, text: str) -> None:
        """A note on stderr, unless the output is `--json` for a program to read."""
        if self.progress:
            print(text, file=sys.stderr)

    def load_data(self, examples: int):
        """(data, fit): the data sized for `examples` training rows, and the part a search trains on (the
        data less its validation slice, which only the final selection reads)."""
        from ..data.loading import load_data

        a = self.args
        data = load_data(a.data, self.space, examples, a.schema, a.min_count, a.eval_fraction, a.val_fraction)
        return data, data.validation_view(a.val_fraction)

    def beside_storage(self, name: str) -> Path:
        """A file kept beside the store (checkpoints, logs, plots): in its folder for SQLite or a journal, else in
        the cache."""
        from ..data.preprocess import cache_root
        from .store.study import store_file

        path = store_file(self.url)
        if path is not None:
            return Path(path).with_name(name)
        return cache_root() / name


@dataclass
class Found:
    """What a search found, before the final selection: its summary (the method's own fields), the
    finalists to retrain beside the baseline, and the store it recorded its trials in."""

    summary: dict
    finalists: list
    baseline: object
    data: object
    store: object
    pretrain_examples: int = 0  # examples this run spent before its trials (weight-sharing pretraining)
    winner_fields: tuple = ("arch", "flops", "origin")
    final_seed: Optional[int] = None  # the final retrain's first seed; None: --seed


class Searcher:
    """One search method. Subclasses set `name` and `help`, declare their flags in `add_arguments`, check
    them in `validate` (one `RksError` line each), and implement `search`; `render` prints their summary."""

    name = ""
    help = ""

    def __init__(self, args: argparse.Namespace):
        self.args = args

    @staticmethod
    def add_arguments(group) -> None:
        """The method's own flags, beside the common ones of `rks search`."""

    def validate(self, space) -> None:
        """Refuse flags that do not fit each other or the space before any work."""

    def default_study(self, space) -> str:
        return f"{space.name}-{self.name}"

    def default_storage(self, study: str) -> str:
        return default_storage(study)

    def search(self, ctx: SearchContext) -> Found:
        raise NotImplementedError

    def after(self, ctx: SearchContext, found: Found) -> None:
        """Outputs beyond the common ones, once the run is recorded (the sampling searches' Pareto plot)."""

    def render(self, summary: dict) -> list[str]:
        """The method's own lines of the terminal summary, before the final selection's."""
        return []


def default_storage(study: str) -> str:
    return f"sqlite:///runs/{study}.db"


def run_search(searcher: Searcher, space, command_line: str) -> Optional[dict]:
    """Run `searcher` on `space` from its flags to the summary every method returns: `study`, `storage`, `method`,
    `space`, `best` (the winner: arch, FLOPs, params, origin), `baseline`, `final` and `beats_baseline`
    (the final selection), `seconds`, and `export` when asked. None on a process that only helps: a `--jobs`
    helper, or a torchrun rank other than 0 (it trains its share; rank 0 records, exports and reports)."""
    from ..runtime import distributed
    from ..runtime.engine import start

    args = searcher.args
    searcher.validate(space)
    start(args.device)
    study = args.study or searcher.default_study(space)
    ctx = SearchContext(args, space, args.storage or searcher.default_storage(study), study, command_line)
    started = time.time()
    found = searcher.search(ctx)
    if found is None:  # a helper worker of `--jobs`: its trials are in the store, the summary is the parent's
        return None
    summary = found.summary
    summary.update(study=study, storage=ctx.url, method=searcher.name, space=space.name)
    final_selection(ctx, found)
    if not distributed.current().main:
        return None
    summary["seconds"] = time.time() - started
    found.store.record_run(
        space, command_line, summary["seconds"], found.pretrain_examples, summary, train_flags(args, found)
    )
    searcher.after(ctx, found)
    if args.export:
        summary["export"] = export_winner(space, summary, Path(args.export))
    return summary


def train_flags(args, found: Found) -> list[str]:
    """The flags that make `rks train` train a model as the final refit did (its first seed): the same data,
    on synthetic data the same number of training rows, every one of them trained on."""
    from ..data.sources import parse_data_spec
    from ..data.synthetic import SyntheticSource

    synthetic = isinstance(parse_data_spec(args.data, args.schema), SyntheticSource)
    return [*data_flags(args, found.data.n_train if synthetic else None), "--seed", str(first_final_seed(args, found))]


def first_final_seed(args, found: Found) -> int:
    return args.seed if found.final_seed is None else found.final_seed


def final_selection(ctx: SearchContext, found: Found) -> None:
    """Retrain the finalists and the baseline by the final trainer and choose on the validation slice
    (`search/final.py`), into `summary["final"]` and `summary["beats_baseline"]`, and make the winner
    `best`; `--retrain-seeds 0` skips it, and then whether the winner beats the baseline is not measured."""
    from ..core.arch import Arch
    from .final import select

    args, summary, space = ctx.args, found.summary, ctx.space
    summary["beats_baseline"] = None
    if args.retrain_seeds:
        first = first_final_seed(args, found)
        seeds = range(first, first + args.retrain_seeds)
        ctx.say(
            f"final retrain of {len(found.finalists)} finalists and the baseline, {args.retrain_seeds} seeds each …"
        )
        final = select(
            space,
            found.finalists,
            found.baseline,
            found.data,
            seeds,
            args.batch_size,
            args.lr,
            args.val_fraction,
            ctx.device,
        )
        summary["final"] = final
        summary["beats_baseline"] = final["beats_baseline"]
        won = final["winner"]
        summary["best"] = {k: won[k] for k in found.winner_fields if k in won}
    best = summary["best"]
    best.setdefault("params", space.params(Arch.from_dict(best["arch"])))


def export_winner(space, summary: dict, folder: Path) -> str:
    """The winner's readable Python and its arch JSON in `folder`, as every search method writes them, and
    `selection.json`: whether it beat the baseline on the validation slice, so a best candidate that did not
    is marked as such beside the code."""
    from ..core.arch import Arch
    from .final import verdict

    arch = Arch.from_dict(summary["best"]["arch"])
    source = atomic_write(folder / f"{space.name}_best.py", space.subnet_source(arch))
    atomic_write(folder / "best_arch.json", arch.to_json(indent=1) + "\n")
    final = summary.get("final")
    selection = {"beats_baseline": summary.get("beats_baseline")}
    if final:
        won, base = final["winner"], final["baseline"]
        selection.update(
            verdict=verdict(final),
            origin=won["origin"],
            margin=final["margin"],
            val_ne=won["val_ne"],
            baseline_val_ne=base["val_ne"] if base else None,
            eval_ne=won["eval_ne"],
            baseline_eval_ne=base["eval_ne"] if base else None,
        )
    atomic_write(folder / "selection.json", json.dumps(selection, indent=1) + "\n")
    return str(source)


def render_summary(searcher: Searcher, summary: dict) -> str:
    """The terminal summary: the method's lines, the final selection's table and verdict, the winner, the
    files written."""
    lines = searcher.render(summary)
    lines += render_final(summary)
    best = summary["best"]
    lines.append(f"winner         {best.get('origin', 'best by proxy')}, FLOPs {best['flops']:,}")
    if "plot" in summary:
        lines.append(f"wrote {summary['plot']}")
    if "export" in summary:
        lines.append(f"exported the {_exported_what(summary)} to {summary['export']}")
    lines.append(f"study {summary['study']} in {summary['storage']}: `rks report {summary['storage']} -o report.html`")
    return "\n".join(lines)


def render_final(summary: dict) -> list[str]:
    from .final import verdict

    final = summary.get("final")
    if not final:
        return ["no final retrain (--retrain-seeds 0): whether the winner beats the baseline is not measured"]
    won = final["winner"]
    choosing = won.get("choosing", won)["examples"]
    lines = [
        f"final retrain: {choosing:,} rows, seeds {', '.join(map(str, won['seeds']))}; chosen on the validation "
        f"slice (the latest {100 * final['val_fraction']:g}% of the training rows); the winner and the baseline "
        f"then refit (*) on all {won['examples']:,} training rows; eval NE and AUC on the held-out tail, which "
        "nothing before read:",
        f"  {'model':<16} {'FLOPs':>12} {'val NE':>8} {'eval NE':>9} {'AUC':>7}",
    ]
    for r in ([final["baseline"]] if final["baseline"] else []) + final["finalists"]:
        mark = " <" if r is won else ""
        refit = "*" if r.get("refit") else " "
        lines.append(
            f"  {r['origin']:<16} {r['flops']:>12,} {r['val_ne']:>8.4f} {r['eval_ne']:>8.4f}{refit} "
            f"{r['auc']:>7.4f}{mark}"
        )
    lines.append(verdict(final))
    return lines


def _exported_what(summary: dict) -> str:
    if summary.get("beats_baseline") is False:
        return "best candidate, which does not beat the baseline (selection.json says so),"
    return "winner"
