"""The `rks` command line. Bad input ends in one clear message and exit status 1, never a traceback."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .compiler.dot import FORMATS
from .core.blocks import NORMS
from .core.errors import RksError
from .core.files import atomic_write
from .core.limits import scientific
from .lang.grow import GROW_BOTTLENECK, GROW_DISTANCES, GROW_KEEP, GROW_SEED
from .runtime import EMBED_OPTIMIZERS, LR_SCHEDULES
from .search import flags


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"rks: error: {message}\n")


def _space(path):
    from .space import load_space

    return load_space(path)


def _read_arch(space, path, baseline=False):
    if baseline:
        if space.baseline is None:
            raise RksError(f"space `{space.name}` names no baseline arch", space.path)
        return space.baseline
    if path is None:
        raise RksError("give an ARCH.json file or --baseline")
    return space.load_arch(path)


def cmd_check(args):
    status = 0
    for path in args.files:
        try:
            space = _space(path)
        except RksError as err:
            print(err.render(), file=sys.stderr)
            status = 1
            continue
        size = scientific(space.size) if space.size > 10**6 else space.size
        counts = f"{len(space.spec.choices)} choices, {len(space.decisions)} decisions"
        print(f"{path}: ok: space `{space.name}`, {counts}, size {size}")
    return status


def cmd_fmt(args):
    from .lang.formatter import format_source

    status = 0
    for path in args.files:
        try:
            source = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise RksError(f"cannot read {path}: {err.strerror}") from None
        except UnicodeDecodeError as err:
            raise RksError(f"{path} is not UTF-8 text (byte {err.start})") from None
        formatted = format_source(source, path)
        if formatted == source:
            continue
        if args.check:
            print(f"{path}: would be reformatted (run `rks fmt {path}`)", file=sys.stderr)
            status = 1
        else:
            atomic_write(path, formatted)
            print(f"formatted {path}")
    return status


def cmd_grow(args):
    from .lang.grow import grown_source
    from .space import load_source

    base = _space(args.file)
    name = args.name or Path(args.output).stem
    options = {flag: getattr(args, flag) for flag in ("seed", "distances", "dims", "keep", "bottleneck", "norm")}
    source = grown_source(base, Path(args.file).name, name, args.blocks_only, **options)
    grown = load_source(source, args.output)  # the checker also checks the baseline is in the space
    atomic_write(args.output, source)
    print(
        f"wrote {args.output}: space `{grown.name}`, {len(grown.spec.choices)} choices "
        f"(from {len(base.spec.choices)}), size {scientific(grown.size)}, baseline `{grown.spec.baseline_name}` "
        f"at {grown.flops(grown.baseline):,} FLOPs"
    )
    return 0


def cmd_stats(args):
    space = _space(args.file)
    info = space.stats()
    if args.plot and not args.sample:
        raise RksError("--plot needs --sample N")
    if args.sample:
        from .compiler.sample_stats import sample_stats

        info["sample"] = sample_stats(space, args.sample, args.seed, args.plot)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"space        {info['space']}")
    print(f"choices      {info['choices']}")
    print(f"decisions    {info['decisions']}")
    print("blocks       " + ", ".join(f"{b} {n}" for b, n in info["blocks"].items()))
    print(f"connections  {info['connections']} candidate connections")
    print(f"size         {info['size']}")
    print(f"log10 size   {info['log10_size']:.3f}")
    if "sample" in info:
        for key, summary in info["sample"]["summary"].items():
            print(f"{key:<16}" + "  ".join(f"{k} {v:.4g}" for k, v in summary.items()))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0


def cmd_sample(args):
    space = _space(args.file)
    if args.n < 1:
        raise RksError("-n must be at least 1")
    for arch in space.sample_many(args.n, args.seed):
        print(arch.to_json())
    return 0


def cmd_graph(args):
    from .compiler.dot import arch_dot, render, space_dot

    space = _space(args.file)
    fmt = args.format or next((f for f in FORMATS if args.output.endswith("." + f)), "dot")
    source = arch_dot(space, _read_arch(space, args.arch)) if args.arch else space_dot(space)
    atomic_write(args.output, render(source, fmt))
    print(f"wrote {args.output}")
    return 0


def cmd_compile(args):
    space = _space(args.file)
    for path in space.compile(args.output):
        print(f"wrote {path}")
    return 0


def cmd_export(args):
    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    atomic_write(args.output, space.subnet_source(arch))
    print(f"wrote {args.output}")
    return 0


def _cost(space, arch) -> str:
    return f"{space.flops(arch):,} FLOPs, {space.params(arch):,} params"


def cmd_merge(args):
    space = _space(args.file)
    archs = [_read_arch(space, path) for path in args.archs]
    merged = space.merge(archs)
    atomic_write(args.output, merged.to_json(indent=2) + "\n")
    for path, arch in zip(args.archs, archs):
        print(f"{path}: {_cost(space, arch)}")
    print(f"wrote {args.output}: {_cost(space, merged)}")
    return 0


def cmd_scale(args):
    from .core.scale import recipe_factors, scale_arch

    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    factors = recipe_factors(args.dims, args.embed_fc)
    if not factors and not args.bottleneck:
        raise RksError("nothing to scale: give --embed-fc F, --dims F and/or --bottleneck F")
    scaled, outside, bottleneck = scale_arch(space.spec, arch, factors, args.bottleneck or 1.0)
    target = space
    if outside and not args.extend:
        listed = "\n".join(f"  {o.describe()}" for o in outside)
        raise RksError(
            f"the scaled arch leaves space `{space.name}`:\n{listed}\n"
            "pass --extend SPACE_OUT.rks to write a space that admits these values",
            args.arch or args.file,
        )
    if args.extend:
        recipe = [f"{b} x{f:g}" for b, f in factors.items()]
        recipe += [f"bottleneck x{args.bottleneck:g}"] if args.bottleneck else []
        header = [
            f"Space `{space.name}` of {Path(args.file).name}, extended by `rks scale` to admit an arch scaled by",
            f"{', '.join(recipe)}:",
            *(f"  {o.describe()}" for o in outside),
        ]
        target = space.extended(outside, bottleneck, header)
        target.validate(scaled)
        atomic_write(args.extend, target.source)
        print(f"wrote {args.extend}: space `{target.name}` admitting {len(outside)} scaled value(s)")
    atomic_write(args.output, scaled.to_json(indent=2) + "\n")
    print(f"{args.arch or 'baseline'}: {_cost(space, arch)}")
    print(f"wrote {args.output}: {_cost(target, scaled)}")
    return 0


def cmd_flops(args):
    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    flops, params = space.flops(arch), space.params(arch)
    parts = space.cost_breakdown(arch)
    used = {part: v for part, v in parts.items() if v["flops"] or v["params"]}
    if args.json:
        by_kind = {
            "choices": {p.names[0]: v for p, v in used.items() if p.kind == "choice"},
            "pairs": [{"left": p.names[0], "right": p.names[1], **v} for p, v in used.items() if p.kind == "pair"],
            "head": next(v for p, v in parts.items() if p.kind == "head"),
        }
        print(json.dumps({"space": space.name, "flops": flops, "params": params, **by_kind}))
        return 0
    print(f"{'part':<24} {'FLOPs':>14} {'params':>12}")
    for part, v in used.items():
        print(f"{part.label:<24} {v['flops']:>14,} {v['params']:>12,}")
    print(f"{'total':<24} {flops:>14,} {params:>12,}")
    return 0


def cmd_lsp(args):
    try:
        from .lsp.server import serve
    except ImportError as err:
        raise RksError(
            f"`rks lsp` needs the language-server extra ({err.name} is missing): pip install 'rankitect-dsl[lsp]'"
        ) from None
    serve(_version())
    return 0


def _arch_args(s, verb):
    """FILE.rks, then an ARCH.json or --baseline: the arch a command works on."""
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help=f"{verb} the space's named baseline arch")


def cmd_train(args):
    from .data.loading import load_data, passes_warning
    from .data.sources import parse_data_spec
    from .data.synthetic import SyntheticSource
    from .runtime.checkpoints import save_trained
    from .runtime.engine import TrainConfig, start, train_final
    from .runtime.model import build_model

    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    world = start(args.device)  # a device this machine lacks is refused before the data loads
    if args.examples is None and isinstance(parse_data_spec(args.data, args.schema), SyntheticSource):
        raise RksError("synthetic data has as many rows as it is asked for: give --examples N")
    data = load_data(
        args.data, space, args.examples or 1, args.schema, args.min_count, args.eval_fraction, args.val_fraction
    )
    fit = data.validation_view(args.val_fraction)
    args.examples = args.examples or fit.n_train
    warning = passes_warning(args.examples, fit, isinstance(parse_data_spec(args.data, args.schema), SyntheticSource))
    if warning and world.main:
        print(warning, file=sys.stderr)
    model = build_model(space, arch, fit, args.seed)
    cfg = TrainConfig(
        args.examples,
        args.batch_size,
        args.lr,
        args.seed,
        not args.json and world.main,
        embed_optimizer=args.embed_optimizer,
        embed_lr=args.embed_lr,
        lr_schedule=args.lr_schedule,
        device=args.device,
    )
    result = train_final(model, data, fit, cfg)
    if not world.main:  # a torchrun rank other than 0 trained its share; rank 0 saves and reports
        return 0
    out = {
        "space": space.name,
        "data": data.name,
        **result.to_dict(),
        "flops": space.flops(arch),
        "params": space.params(arch),
    }
    if args.save:
        save_trained(Path(args.save), space.subnet_source(arch), arch.to_json(indent=1), model.state_dict(), out)
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"trained {space.name} on {data.name}: {result.examples:,} examples ({result.passes:.2f} passes) "
        f"in {result.seconds:.1f} s"
    )
    if "val_ne" in result.extra:
        print(
            f"validation NE {result.extra['val_ne']:.4f} on the latest {result.extra['val_examples']:,} training "
            f"rows, held out (--val-fraction {args.val_fraction:g}); {fit.n_train:,} rows trained on"
        )
    print(
        f"window NE {result.window_ne:.4f}   eval NE {result.eval_ne:.4f}   AUC {result.auc:.4f}   "
        f"(eval on {result.eval_examples:,} held-out examples)"
    )
    print(f"FLOPs {out['flops']:,}   params {out['params']:,}")
    if args.save:
        print(f"saved model.py, arch.json, weights.pt, metrics.json in {args.save}")
    return 0


def cmd_search(args):
    from .search.base import render_summary, run_search
    from .search.registry import searcher_class

    searcher = searcher_class(args.method)(args)
    summary = run_search(searcher, _space(args.file), args.command_line)
    if summary is not None:  # None: a helper worker of `--jobs`, which prints nothing
        print(json.dumps(summary) if args.json else render_summary(searcher, summary))
    return 0


def cmd_study_show(args):
    from .search.store.study import open_study
    from .search.store.view import study_lines

    print("\n".join(study_lines(open_study(args.storage, args.study), args.top)))
    return 0


def cmd_report(args):
    from .report import write_report

    html, markdown, archs = write_report(args.storage, args.study, args.output)
    print(f"wrote {html} and {markdown}, and the archs its commands read in {archs}")
    return 0


def cmd_proxy_study(args):
    from .data.loading import load_data
    from .search.sampling.proxy_study import plot_proxy_study, run_proxy_study

    space = _space(args.file)
    budgets = sorted({int(b) for b in args.budgets.split(",")}) if args.budgets else None
    if budgets and budgets[0] <= 0:
        raise RksError("--budgets are positive numbers of training examples")
    pretrain = args.pretrain_examples or args.examples
    data = load_data(
        args.data, space, args.examples, args.schema, args.min_count, args.eval_fraction, args.val_fraction
    )
    study = run_proxy_study(
        space,
        data,
        args.models,
        budgets,
        pretrain,
        args.seed,
        args.batch_size,
        args.lr,
        not args.json,
        args.val_fraction,
    )
    plot = args.plot or f"{space.name}-proxy-study.png"
    plot_proxy_study(study, plot)
    study["plot"] = plot
    if args.json:
        print(json.dumps(study))
        return 0
    print(f"{study['models']} models of {space.name}; truth: {study['truth']}; supernet pretrained on {pretrain:,}")
    print(f"{'budget':>8} {'early-stop tau':>15} {'weight-sharing tau':>19}")
    for r in study["rows"]:
        print(f"{r['budget']:>8,} {r['early_stop_tau']:>15.3f} {r['weight_sharing_tau']:>19.3f}")
    print(f"wrote {plot}")
    return 0


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    """The parser; `rks search` lists the common flags and, with `--method`, only that method's own."""
    p = _Parser(prog="rks", description="Compile and search .rks ranking-model search spaces.")
    p.add_argument("--version", action="version", version=f"rks {_version()}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("check", help="check .rks files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("fmt", help="rewrite .rks files in the canonical layout (comments kept)")
    s.add_argument("files", nargs="+")
    s.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each file fmt would change")
    s.set_defaults(func=cmd_fmt)

    s = sub.add_parser("lsp", help="the language server for editors (diagnostics, hovers, …), over stdio")
    s.set_defaults(func=cmd_lsp)

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
    s.set_defaults(func=cmd_grow)

    s = sub.add_parser("stats", help="size and structure of a space")
    s.add_argument("file")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.add_argument("--sample", type=int, default=0, help="also sample N archs and summarise their cost")
    s.add_argument("--seed", type=int, default=0, help="seed of the --sample draws (default 0)")
    s.add_argument("--plot", help="with --sample: write the Figure 3 histograms to this PNG")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("sample", help="sample archs as JSON lines")
    s.add_argument("file")
    s.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    s.add_argument("-n", type=int, default=1, help="how many archs (default 1)")
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("graph", help="draw the space or one subnet (Graphviz DOT, SVG or PNG)")
    s.add_argument("file")
    s.add_argument("--arch", metavar="ARCH.json", help="draw this arch's subnet instead of the whole space")
    s.add_argument("--format", choices=FORMATS, help="default: from the output's suffix, else dot")
    s.add_argument("-o", "--output", required=True, help="the file to write (.dot, .svg or .png)")
    s.set_defaults(func=cmd_graph)

    s = sub.add_parser("compile", help="write the masked supernet module and the space description")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("export", help="write the standalone PyTorch source of one arch")
    _arch_args(s, "export")
    s.add_argument("-o", "--output", required=True, help="the .py file to write")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("merge", help="merge archs into one holding all their blocks, connections and pairs")
    s.add_argument("file", help="the space (.rks)")
    s.add_argument("archs", nargs="+", metavar="ARCH.json", help="archs of the space to merge")
    s.add_argument("-o", "--output", required=True, help="the merged arch's JSON file")
    s.set_defaults(func=cmd_merge)

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
    s.set_defaults(func=cmd_scale)

    s = sub.add_parser("flops", help="FLOPs and params of an arch, per choice")
    _arch_args(s, "count")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    s.set_defaults(func=cmd_flops)

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
    s.set_defaults(func=cmd_train)

    flags.add_search_parser(sub, method).set_defaults(func=cmd_search)

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
    s.set_defaults(func=cmd_proxy_study)

    s = sub.add_parser("report", help="one self-contained HTML page (and a Markdown summary) for a finished search")
    s.add_argument("storage", help="the search's Optuna storage URL, e.g. sqlite:///runs/x.db")
    s.add_argument("--study", help="the study (default: the store's only one)")
    s.add_argument("-o", "--output", required=True, help="the HTML file; the Markdown summary goes beside it (.md)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("study", help="inspect a study store")
    study_sub = s.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    show = study_sub.add_parser("show", help="print a finished or running study")
    show.add_argument("storage", help="Optuna storage URL, e.g. sqlite:///runs/x.db")
    show.add_argument("--study", help="the study (default: the store's only one)")
    show.add_argument("--top", type=int, default=10, help="best candidates to list (default 10)")
    show.set_defaults(func=cmd_study_show)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rankitect-dsl")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _method(argv: list) -> str | None:
    """The `--method` of an `rks search` command line, read before the parser that depends on it is built."""
    if not argv or argv[0] != "search":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    return pre.parse_known_args(argv[1:])[0].method


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_method(argv)).parse_args(argv)
    if getattr(args, "nproc", 1) > 1:
        from .runtime.distributed import exec_torchrun

        exec_torchrun(argv, args.nproc)
    args.command_line = "rks " + shlex.join(argv)
    try:
        return args.func(args) or 0
    except RksError as err:
        _abandon_world()
        print(err.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _abandon_world()
        print("rks: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _abandon_world() -> None:
    """Under torchrun, a rank that failed exits without waiting for the others at the end."""
    if "torch.distributed" in sys.modules:
        from .runtime import distributed

        distributed.abandon()


def _closed_pipe() -> int:
    """The reader of our output went away (`rks study show … | head`): end quietly, as `cat` does. stdout is
    pointed at /dev/null so the interpreter's final flush does not raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
