"""The `rks` command line. Bad input ends in one clear message and exit status 1, never a traceback."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from .arguments import build_parser, search_method, version
from .core.errors import RksError
from .core.files import atomic_write
from .core.limits import scientific


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
    from .compiler.dot import FORMATS, arch_dot, render, space_dot

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
    serve(version())
    return 0


def cmd_train(args):
    from dataclasses import fields

    from .runtime.train_run import TrainOptions, train_arch

    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    trained = train_arch(space, arch, TrainOptions(**{f.name: getattr(args, f.name) for f in fields(TrainOptions)}))
    if trained is None:  # a torchrun rank other than 0 trained its share; rank 0 saves and reports
        return 0
    if args.json:
        print(json.dumps(trained.metrics))
        return 0
    result = trained.result
    print(
        f"trained {space.name} on {trained.data_name}: {result.examples:,} examples ({result.passes:.2f} passes) "
        f"in {result.seconds:.1f} s"
    )
    if "val_ne" in result.extra:
        print(
            f"validation NE {result.extra['val_ne']:.4f} on the latest {result.extra['val_examples']:,} training "
            f"rows, held out (--val-fraction {args.val_fraction:g}); {trained.rows_trained_on:,} rows trained on"
        )
    print(
        f"window NE {result.window_ne:.4f}   eval NE {result.eval_ne:.4f}   AUC {result.auc:.4f}   "
        f"(eval on {result.eval_examples:,} held-out examples)"
    )
    print(f"FLOPs {trained.metrics['flops']:,}   params {trained.metrics['params']:,}")
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


COMMANDS = {
    "check": cmd_check,
    "fmt": cmd_fmt,
    "lsp": cmd_lsp,
    "grow": cmd_grow,
    "stats": cmd_stats,
    "sample": cmd_sample,
    "graph": cmd_graph,
    "compile": cmd_compile,
    "export": cmd_export,
    "merge": cmd_merge,
    "scale": cmd_scale,
    "flops": cmd_flops,
    "train": cmd_train,
    "search": cmd_search,
    "proxy-study": cmd_proxy_study,
    "report": cmd_report,
    ("study", "show"): cmd_study_show,
}


def command(args):
    """The function that runs the parsed command."""
    return COMMANDS[(args.command, args.study_command) if args.command == "study" else args.command]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(search_method(argv)).parse_args(argv)
    if getattr(args, "nproc", 1) > 1:
        from .runtime.distributed import exec_torchrun

        exec_torchrun(argv, args.nproc)
    args.command_line = "rks " + shlex.join(argv)
    try:
        return command(args)(args) or 0
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
