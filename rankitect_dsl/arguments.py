"""The `rks` command line's arguments: one builder per group of commands, each command's `command` (and
`study_command`) naming what `cli.py` runs. Nothing here imports more than the flag types need."""

from __future__ import annotations

import argparse
import sys

from .compiler.dot import FORMATS
from .core.blocks import NORMS
from .lang.grow import GROW_BOTTLENECK, GROW_DISTANCES, GROW_KEEP, GROW_SEED
from .runtime import EMBED_OPTIMIZERS, LR_SCHEDULES
from .search import flags


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"rks: error: {message}\n")


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    """The parser; `rks search` lists the common flags and, with `--method`, only that method's own."""
    p = Parser(prog="rks", description="Compile and search .rks ranking-model search spaces.")
    p.add_argument("--version", action="version", version=f"rks {version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    _language_commands(sub)
    _space_commands(sub)
    _training_commands(sub, method)
    _study_commands(sub)
    return p


def _language_commands(sub) -> None:
    """check, fmt, lsp, grow: the .rks text itself."""
    s = sub.add_parser("check", help="check .rks files")
    s.add_argument("files", nargs="+")

    s = sub.add_parser("fmt", help="rewrite .rks files in the canonical layout (comments kept)")
    s.add_argument("files", nargs="+")
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each file fmt would change")

    s = sub.add_parser("lsp", help="the language server for editors (diagnostics, hovers, …), over stdio")

    s = sub.add_parser("grow", help="grow a production model into a supernet (paper 4.2.1) and write its .rks")
    s.add_argument("file", help="BASE.rks whose baseline is the production model")
    s.add_argument("-o", "--output", required=True, help="the grown space's .rks file")
    s.add_argument(
        "--blocks-only",
        action="store_true",
        help="the 4.2.4 simplified supernet instead: connections fixed, one block per choice from its group, "
        "dims 0.5x to 2x production",
    )
    s.add_argument("--seed", type=int, help=f"seed of the DAG-order permutation (default {GROW_SEED})")
    s.add_argument(
        "--distances",
        type=flags.int_list,
        help=f"connection distances (default {','.join(map(str, GROW_DISTANCES))})",
    )
    s.add_argument("--dims", type=flags.dim_range, help="LOW..HIGH:STEPS x the production width (default 0.5..1.25:7)")
    s.add_argument("--keep", type=flags.keep, help=f"connection keep-probability (default {GROW_KEEP})")
    s.add_argument(
        "--bottleneck",
        type=flags.positive(int),
        help=f"pairwise bottleneck (default {GROW_BOTTLENECK}, the paper's; with --blocks-only the production's)",
    )
    s.add_argument(
        "--norm",
        choices=NORMS,
        help="what follows every block: LayerNorm (`layer`, paper 3.1) or nothing (`none`) (default: the base's)",
    )
    s.add_argument("--name", help="the grown space's name (default: the output file's stem)")


def _space_commands(sub) -> None:
    """stats, sample, graph, compile, export, merge, scale, flops: a space and its archs, no data."""
    s = sub.add_parser("stats", help="size and structure of a space")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.add_argument("--sample", type=int, default=0, help="also sample N archs and summarise their cost")
    s.add_argument("--seed", type=int, default=0, help="seed of the --sample draws (default 0)")
    s.add_argument("--plot", help="with --sample: write the Figure 3 histograms to this PNG")

    s = sub.add_parser("sample", help="sample archs as JSON lines")
    s.add_argument("file")
    s.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    s.add_argument("-n", type=int, default=1, help="how many archs (default 1)")

    s = sub.add_parser("graph", help="draw the space or one subnet (Graphviz DOT, SVG or PNG)")
    s.add_argument("file")
    s.add_argument("--arch", metavar="ARCH.json", help="draw this arch's subnet instead of the whole space")
    s.add_argument("--format", choices=FORMATS, help="default: from the output's suffix, else dot")
    s.add_argument("-o", "--output", required=True, help="the file to write (.dot, .svg or .png)")

    s = sub.add_parser("compile", help="write the masked supernet module and the space description")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True, help="output folder")

    s = sub.add_parser("export", help="write the standalone PyTorch source of one arch")
    _arch_args(s, "export")
    s.add_argument("-o", "--output", required=True, help="the .py file to write")

    s = sub.add_parser("merge", help="merge archs into one holding all their blocks, connections and pairs")
    s.add_argument("file", help="the space (.rks)")
    s.add_argument("archs", nargs="+", metavar="ARCH.json", help="archs of the space to merge")
    s.add_argument("-o", "--output", required=True, help="the merged arch's JSON file")

    s = sub.add_parser(
        "scale", help="scale an arch's dims up (paper 4.2.3) and, with --extend, its space to admit them"
    )
    _arch_args(s, "scale")
    s.add_argument("-o", "--output", required=True, help="the scaled arch's JSON file")
    s.add_argument("--embed-fc", type=flags.positive(float), help="multiply the EmbedFC dims (the paper: 3)")
    s.add_argument(
        "--dims", type=flags.positive(float), help="multiply linear, EmbedFC and dot-compressed dims (the paper: 1.5)"
    )
    s.add_argument("--bottleneck", type=flags.positive(float), help="multiply the pair bottleneck (the paper: 2)")
    s.add_argument("--extend", metavar="SPACE_OUT.rks", help="write the space extended to admit the scaled values")

    s = sub.add_parser("flops", help="FLOPs and params of an arch, per choice")
    _arch_args(s, "count")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _training_commands(sub, method) -> None:
    """train, search, proxy-study: what reads data and trains."""
    s = sub.add_parser("train", help="train an arch's exported subnet on CTR data and report NE")
    _arch_args(s, "train")
    s.add_argument(
        "--examples",
        type=flags.positive(int),
        help="training examples, in order (default: one pass over the training rows before the validation slice; "
        "synthetic data needs it)",
    )
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.add_argument("--save", help="folder for model.py, arch.json, weights.pt and metrics.json")
    s.add_argument(
        "--embed-optimizer",
        choices=EMBED_OPTIMIZERS,
        default="rowwise-adagrad",
        help="optimiser of the embedding tables (default rowwise-adagrad; the body always uses Adam at --lr)",
    )
    s.add_argument(
        "--embed-lr", type=flags.positive(float), default=0.1, help="the tables' learning rate (default 0.1)"
    )
    s.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="linear",
        help="the body rate over the pass: linear decay to zero (default) or constant",
    )
    flags.data_args(s, val_fraction=0.0)
    flags.device_arg(s)

    flags.add_search_parser(sub, method)

    s = sub.add_parser(
        "proxy-study",
        help="Kendall tau of the early-stop and weight-sharing proxies against the final retrain's validation NE",
    )
    s.add_argument("file")
    s.add_argument("--models", type=flags.positive(int), required=True, help="sampled models (K)")
    s.add_argument(
        "--examples",
        type=flags.positive(int),
        default=20000,
        help="training rows of synthetic data (default 20,000; a file's rows are its own)",
    )
    s.add_argument("--budgets", help="comma-separated proxy budgets (default: 1/32 … 1/2 of a pass)")
    s.add_argument(
        "--pretrain-examples",
        type=flags.positive(int),
        help="weight-sharing supernet pretraining (default: --examples)",
    )
    s.add_argument("--plot", help="PNG to write (default SPACE-proxy-study.png)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    flags.data_args(s)


def _study_commands(sub) -> None:
    """report, study show: what a search left in its store."""
    s = sub.add_parser("report", help="one self-contained HTML page (and a Markdown summary) for a finished search")
    s.add_argument("storage", help="the search's Optuna storage URL, e.g. sqlite:///runs/x.db")
    s.add_argument("--study", help="the study (default: the store's only one)")
    s.add_argument("-o", "--output", required=True, help="the HTML file; the Markdown summary goes beside it (.md)")

    s = sub.add_parser("study", help="inspect a study store")
    study_sub = s.add_subparsers(dest="study_command", required=True, parser_class=Parser)
    show = study_sub.add_parser("show", help="print a finished or running study")
    show.add_argument("storage", help="Optuna storage URL, e.g. sqlite:///runs/x.db")
    show.add_argument("--study", help="the study (default: the store's only one)")
    show.add_argument("--top", type=int, default=10, help="best candidates to list (default 10)")


def _arch_args(s, verb):
    """FILE.rks, then an ARCH.json or --baseline: the arch a command works on."""
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help=f"{verb} the space's named baseline arch")


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rankitect-dsl")
    except PackageNotFoundError:
        return "unknown (not installed)"


def search_method(argv: list) -> str | None:
    """The `--method` of an `rks search` command line, read before the parser that depends on it is built."""
    if not argv or argv[0] != "search":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    return pre.parse_known_args(argv[1:])[0].method
