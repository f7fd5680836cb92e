"""The `rks` command line. Bad input ends in one clear message and exit status 1, never a traceback."""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

from .compiler.dot import FORMATS
from .core.blocks import BLOCK_NAMES
from .core.errors import RksError
from .core.files import atomic_write
from .core.limits import scientific
from .runtime import EMBED_OPTIMIZERS, LR_SCHEDULES
from .search import FINALISTS, VAL_FRACTION


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"rks: error: {message}\n")


def _space(path):
    from .space import load_space

    return load_space(path)


def _read_arch(space, path, baseline=False):
    from .core.arch import Arch

    if baseline:
        if space.baseline is None:
            raise RksError(f"space `{space.name}` names no baseline arch", space.path)
        return space.baseline
    if path is None:
        raise RksError("give an ARCH.json file or --baseline")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise RksError(f"cannot read arch file {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise RksError(f"arch file {path} is not UTF-8 text (byte {err.start}); an arch is a JSON file") from None
    arch = Arch.from_json(text)
    space.validate(arch)
    return arch


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


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got `{text}`") from None
    if not values or min(values) <= 0 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct positive integers, got `{text}`")
    return values


def _dim_range(text: str) -> tuple[float, float, int]:
    import re

    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\.\.([0-9]*\.?[0-9]+):([0-9]+)", text)
    if not m or float(m[1]) <= 0 or float(m[2]) < float(m[1]) or int(m[3]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected LOW..HIGH:STEPS with 0 < LOW <= HIGH, like 0.5..1.25:7; got `{text}`"
        )
    return float(m[1]), float(m[2]), int(m[3])


def _study_name(text: str) -> str:
    """A study's name also names its checkpoint and log files beside the store: a plain file-name stem."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", text):
        raise argparse.ArgumentTypeError(
            f"`{text[:60]}` is not a study name: use up to 128 letters, digits, `.`, `_` and `-`, starting with a "
            "letter or digit"
        )
    return text


def _keep(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"a keep probability lies in (0, 1], got `{text}`")
    return value


GROW_SEED, GROW_DISTANCES, GROW_DIMS, GROW_KEEP, GROW_BOTTLENECK = 0, (1, 2, 3, 6, 9), (0.5, 1.25, 7), 0.8, 256


def cmd_grow(args):
    from .lang.grow import GrowConfig, grow_source
    from .space import load_source

    base = _space(args.file)
    name = args.name or Path(args.output).stem
    given = [flag for flag in ("seed", "distances", "dims", "keep") if getattr(args, flag) is not None]
    if args.blocks_only:
        from .lang.grow_blocks import blocks_only_source

        if given:
            raise RksError(
                f"--blocks-only fixes the production connections and dims: --{given[0]} does not apply to it"
            )
        source = blocks_only_source(base, Path(args.file).name, name, args.bottleneck)
    else:
        low, high, steps = args.dims or GROW_DIMS
        cfg = GrowConfig(
            GROW_SEED if args.seed is None else args.seed,
            args.distances or GROW_DISTANCES,
            low,
            high,
            steps,
            GROW_KEEP if args.keep is None else args.keep,
            args.bottleneck or GROW_BOTTLENECK,
            name,
        )
        source = grow_source(base, cfg, Path(args.file).name)
    grown = load_source(source, args.output)  # the checker also checks the baseline is in the space
    atomic_write(args.output, source)
    print(
        f"wrote {args.output}: space `{grown.name}`, {len(grown.spec.choices)} choices "
        f"(from {len(base.spec.choices)}), size {scientific(grown.size)}, baseline `{grown.spec.baseline_name}` "
        f"at {grown.flops(grown.baseline):,} FLOPs"
    )
    return 0


def stats_dict(space) -> dict:
    blocks = Counter(b for c in space.spec.choices for b in c.blocks)
    edges = sum(1 for _, v in space.graph.in_edges() if space.graph.nodes[v]["kind"] == "choice")
    return {
        "space": space.name,
        "choices": len(space.spec.choices),
        "decisions": len(space.decisions),
        "blocks": {b: blocks.get(b, 0) for b in BLOCK_NAMES},
        "connections": edges,
        "size": str(space.size),
        "log10_size": space.log10_size,
        "baseline": space.spec.baseline_name,
    }


def cmd_stats(args):
    space = _space(args.file)
    info = stats_dict(space)
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


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"`{text}` is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _arch_args(s, verb):
    """FILE.rks, then an ARCH.json or --baseline: the arch a command works on."""
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help=f"{verb} the space's named baseline arch")


def _data_args(s):
    s.add_argument(
        "--data", default="synthetic", help="synthetic[:SEED] | criteo:PATH | table:PATH (default: synthetic)"
    )
    s.add_argument("--schema", help="schema JSON for a table: source")
    s.add_argument("--min-count", type=_positive(int), default=2, help="vocabulary frequency threshold (default 2)")
    s.add_argument("--eval-fraction", type=float, default=0.2, help="held-out tail of the data (default 0.2)")
    s.add_argument(
        "--batch-size",
        type=_positive(int),
        help="default: 64, doubled for each doubling of the training part beyond 20,000 rows",
    )
    s.add_argument("--lr", type=_positive(float), default=1e-3)
    s.add_argument("--seed", type=int, default=0)


def _val_fraction_arg(s):
    s.add_argument(
        "--val-fraction",
        type=float,
        default=VAL_FRACTION,
        help="the latest part of the training rows held out to choose on: never trained on by a final "
        f"retrain, never read by a proxy (default {VAL_FRACTION:g})",
    )


def cmd_train(args):
    import torch

    from .data.loading import load_data
    from .data.sources import parse_data_spec
    from .data.synthetic import SyntheticSource
    from .runtime.model import build_model
    from .runtime.trainer import TrainConfig, train_final

    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    if args.examples is None and isinstance(parse_data_spec(args.data, args.schema), SyntheticSource):
        raise RksError("synthetic data has as many rows as it is asked for: give --examples N")
    data = load_data(
        args.data, space, args.examples or 1, args.schema, args.min_count, args.eval_fraction, args.val_fraction
    )
    fit = data.validation_view(args.val_fraction)
    args.examples = args.examples or fit.n_train
    model = build_model(space, arch, fit, args.seed)
    cfg = TrainConfig(
        args.examples,
        args.batch_size,
        args.lr,
        args.seed,
        not args.json,
        embed_optimizer=args.embed_optimizer,
        embed_lr=args.embed_lr,
        lr_schedule=args.lr_schedule,
    )
    result = train_final(model, data, fit, cfg)
    out = {
        "space": space.name,
        "data": data.name,
        **result.to_dict(),
        "flops": space.flops(arch),
        "params": space.params(arch),
    }
    if args.save:
        folder = Path(args.save)
        atomic_write(folder / "model.py", space.subnet_source(arch))
        atomic_write(folder / "arch.json", arch.to_json(indent=1) + "\n")
        import io

        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        atomic_write(folder / "weights.pt", buffer.getvalue())
        atomic_write(folder / "metrics.json", json.dumps(out, indent=1) + "\n")
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


def _default_storage(study: str) -> str:
    return f"sqlite:///runs/{study}.db"


def _beside_storage(url: str, name: str) -> Path:
    from .data.preprocess import cache_root

    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).with_name(name)
    return cache_root() / name


def cmd_search(args):
    if args.method in ("oneshot", "dnas"):
        return cmd_inplace_search(args)
    if args.budget is None:
        raise RksError(f"--method {args.method} needs --budget N (candidates to evaluate)")
    from .data.loading import load_data
    from .runtime.trainer import default_batch_size
    from .search.constraints import check_flops_rule, default_flops_cap, parse_flops
    from .search.loop import Search, SearchConfig, space_fingerprint
    from .search.pareto import plot_pareto
    from .search.proxies import PROXY_SCHEDULE, EarlyStopProxy, WeightSharingProxy
    from .search.study_store import StudyStore

    space = _space(args.file)
    cfg = SearchConfig(
        args.method,
        args.budget,
        args.proxy,
        args.proxy_examples,
        args.round_size,
        args.halving,
        default_flops_cap(args.flops_max, space),
        parse_flops(args.flops_target, space, "--flops-target"),
        args.seed,
        not args.json,
    )
    check_flops_rule(space, cfg.flops_cap, cfg.flops_target, cfg.seed)
    study = args.study or f"{space.name}-{args.method}-{args.proxy}"
    url = args.storage or _default_storage(study)
    rungs = math.ceil(math.log2(args.halving)) if args.halving > 1 else 0
    pretrain = args.pretrain_examples or 5 * args.proxy_examples
    needed = args.proxy_examples * 2**rungs + (pretrain if args.proxy == "weight-sharing" else 0)
    data = load_data(args.data, space, needed, args.schema, args.min_count, args.eval_fraction, args.val_fraction)
    fit = data.validation_view(args.val_fraction)  # all the search trains on; the slice after it chooses
    if args.proxy == "early-stop" and cfg.proxy_examples * 2**rungs > fit.n_train:
        cfg.proxy_examples = max(args.batch_size or default_batch_size(fit.n_train), fit.n_train // 2**rungs)
        print(
            f"--proxy-examples lowered to {cfg.proxy_examples:,}: the last rung reads one pass over the "
            f"{fit.n_train:,} training rows before the validation slice, not several",
            file=sys.stderr,
        )
    meta = {
        "space": space.name,
        "space_sha": space_fingerprint(space),
        "method": args.method,
        "proxy": args.proxy,
        "data": args.data,
        "proxy_examples": cfg.proxy_examples,
        "seed": args.seed,
        "val_fraction": args.val_fraction,
        "proxy_schedule": PROXY_SCHEDULE,
    }
    if args.proxy_repeats > 1:  # studies made before repeats existed stay resumable
        meta["proxy_repeats"] = args.proxy_repeats
    store = StudyStore(url, study, meta)
    checkpoint = _beside_storage(url, f"{study}.supernet.pt")
    pretrains = args.proxy == "weight-sharing" and not checkpoint.exists()  # this run pays for pretraining
    started = time.time()
    if args.proxy == "weight-sharing":
        proxy = WeightSharingProxy(
            space,
            fit,
            pretrain,
            args.seed,
            args.batch_size,
            args.lr,
            checkpoint,
            not args.json,
            args.proxy_repeats,
        )
    else:
        proxy = EarlyStopProxy(space, fit, args.seed, args.batch_size, args.lr, args.proxy_repeats)
    search = Search(space, proxy, store, cfg)
    summary = search.run()
    _final_selection(args, space, summary, search.finalists(args.finalists), space.baseline, data)
    if summary.get("final"):
        won = summary["final"]["winner"]
        summary["best"] = {k: won[k] for k in ("arch", "flops", "origin", "window_ne", "score", "rung") if k in won}
    store.record_run(space, args.command_line, time.time() - started, pretrain if pretrains else 0, summary)
    plot_path = (
        Path(args.plot)
        if args.plot
        else (Path(args.export) / "pareto.png" if args.export else _beside_storage(url, f"{study}-pareto.png"))
    )
    plot_pareto(
        store.completed(),
        summary["pareto"],
        summary["baseline"],
        plot_path,
        f"{space.name}: {args.method} search, {args.proxy} proxy",
    )
    summary["plot"] = str(plot_path)
    if args.export:
        from .core.arch import Arch

        summary["export"] = _export_winner(space, Arch.from_dict(summary["best"]["arch"]), Path(args.export), summary)
    if args.json:
        print(json.dumps(summary))
        return 0
    _print_search(summary)
    return 0


def _final_selection(args, space, summary, finalists, baseline, data) -> None:
    """Retrain the finalists and the baseline by the final trainer and choose on the validation slice
    (`search/final.py`), into `summary["final"]` and `summary["beats_baseline"]`; `--retrain-seeds 0` skips
    it, and then whether the winner beats the baseline is not measured (None)."""
    from .search.final import select

    summary["beats_baseline"] = None
    if not args.retrain_seeds:
        return
    seeds = range(args.seed, args.seed + args.retrain_seeds)
    label = f"final retrain of {len(finalists)} finalists and the baseline, {args.retrain_seeds} seeds each"
    if not args.json:
        print(label + " …", file=sys.stderr)
    final = select(space, finalists, baseline, data, seeds, args.batch_size, args.lr, args.val_fraction)
    summary["final"] = final
    summary["beats_baseline"] = final["beats_baseline"]


def _print_final(summary) -> None:
    from .search.final import verdict

    final = summary.get("final")
    if not final:
        print("no final retrain (--retrain-seeds 0): whether the winner beats the baseline is not measured")
        return
    won = final["winner"]
    print(
        f"final retrain: {won['examples']:,} rows, seeds {', '.join(map(str, won['seeds']))}; chosen on the "
        f"validation slice (the latest {100 * final['val_fraction']:g}% of the training rows), quoted on the tail:"
    )
    print(f"  {'model':<16} {'FLOPs':>12} {'val NE':>8} {'eval NE':>8} {'AUC':>7}")
    for r in ([final["baseline"]] if final["baseline"] else []) + final["finalists"]:
        mark = " <" if r is won or r == won else ""
        print(f"  {r['origin']:<16} {r['flops']:>12,} {r['val_ne']:>8.4f} {r['eval_ne']:>8.4f} {r['auc']:>7.4f}{mark}")
    print(verdict(final))


def _print_search(summary):
    print(f"study {summary['study']} ({summary['storage']}): {summary['evaluated']} candidates evaluated")
    if summary["baseline"]:
        print(
            f"baseline       window NE {summary['baseline']['window_ne']:.4f}   FLOPs {summary['baseline']['flops']:,}"
        )
    print("Pareto front (window NE against FLOPs):")
    print(f"  {'trial':>5} {'FLOPs':>12} {'window NE':>10}")
    for p in summary["pareto"]:
        print(f"  {p['trial']:>5} {p['flops']:>12,} {p['window_ne']:>10.4f}")
    if summary["finalists"]:
        print("finalists after successive halving (rung, score):")
        for i, f in enumerate(summary["finalists"], 1):
            print(f"  {i}. rung {f['rung']}  {f['score']:.4f}")
    best = summary["best"]
    proxy = f"window NE {best['window_ne']:.4f}   " if best.get("window_ne") is not None else ""
    found = "best by proxy " if "final" not in summary else f"winner         {best['origin']}, "
    print(f"{found} {proxy}FLOPs {best['flops']:,}")
    _print_final(summary)
    print(f"wrote {summary['plot']}")
    if "export" in summary:
        print(f"exported the {_exported_what(summary)} to {summary['export']}")


def cmd_study_show(args):
    from .search.study_store import BASELINE, CANDIDATE, HALVING, open_study

    store = open_study(args.storage, args.study)
    name = store.name
    trials = store.trials()
    states = Counter(t.state.name for t in trials)
    print(f"study {name}: " + ", ".join(f"{k}={v}" for k, v in store.meta.items()))
    print("trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())))
    for t in store.completed(BASELINE):
        print(f"baseline  window NE {t.user_attrs['window_ne']:.4f}  FLOPs {t.user_attrs['flops']:,}")
    done = sorted(store.completed(CANDIDATE), key=lambda t: t.value)
    print(f"{'rank':>4} {'trial':>5} {'round':>5} {'score':>8} {'window NE':>10} {'FLOPs':>12}")
    for i, t in enumerate(done[: args.top], 1):
        print(
            f"{i:>4} {t.number:>5} {t.user_attrs.get('round', 0) + 1:>5} {t.value:>8.4f} "
            f"{t.user_attrs['window_ne']:>10.4f} {t.user_attrs['flops']:>12,}"
        )
    for t in store.pending(CANDIDATE):
        print(f"running/waiting: trial {t.number}")
    halving = store.completed(HALVING)
    if halving:
        print(f"successive halving: {len(halving)} evaluations up to rung {max(t.user_attrs['rung'] for t in halving)}")
    return 0


def cmd_report(args):
    from .report import build_report, render_report

    report = build_report(args.storage, args.study)
    page, summary = render_report(report)
    markdown = Path(args.output).with_suffix(".md")
    atomic_write(args.output, page)
    atomic_write(markdown, summary)
    print(f"wrote {args.output} and {markdown}")
    return 0


def _alpha(text: str):
    """`--alpha`: a number, or `auto` (None: adapted)."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _inplace_config(args, target):
    """The one-shot or DNAS settings from the flags, each refused with one line when out of range."""
    warmup = args.warmup if args.warmup is not None else (0.25 if args.method == "oneshot" else 0.1)
    if not 0 <= warmup < 1:
        raise RksError(f"--warmup is a fraction of the steps in [0, 1), got {warmup}")
    common = dict(batch_size=args.batch_size, lr=args.lr, seed=args.seed, checkpoint_every=args.checkpoint_every)
    if args.method == "oneshot":
        from .search.oneshot import OneShotConfig

        if args.alpha is not None and args.alpha < 0:
            raise RksError(f"--alpha must be >= 0, got {args.alpha}")
        return OneShotConfig(
            args.examples,
            target,
            args.alpha,
            args.penalty,
            args.policy,
            args.rl_batch,
            args.replay_k,
            policy_lr=args.policy_lr,
            warmup=warmup,
            **common,
        )
    from .search.dnas import DNASConfig

    if args.lam < 0:
        raise RksError(f"--lambda must be >= 0, got {args.lam}")
    if args.tau_end > args.tau_start:
        raise RksError(
            f"the temperature must not increase: --tau-start {args.tau_start} is below --tau-end {args.tau_end}"
        )
    return DNASConfig(
        args.examples,
        target,
        lam=args.lam,
        tau_start=args.tau_start,
        tau_end=args.tau_end,
        arch_lr=args.arch_lr,
        warmup=warmup,
        checkpoint_activations=args.checkpoint_activations,
        **common,
    )


def cmd_inplace_search(args):
    """`rks search --method oneshot|dnas`: a distribution over archs trained in place with the supernet."""
    import hashlib

    from .core.arch import Arch
    from .data.loading import load_data
    from .search.constraints import check_flops_rule, parse_flops
    from .search.dnas import DNASSearch
    from .search.loop import space_fingerprint
    from .search.oneshot import OneShotSearch

    space = _space(args.file)
    method = args.method
    if args.examples is None:
        raise RksError(f"--method {method} needs --examples N (training examples the supernet streams)")
    if args.flops_target is None:
        raise RksError(f"--method {method} needs --flops-target C (absolute FLOPs or a multiple like 1x)")
    if args.baseline_arch:
        baseline = _read_arch(space, args.baseline_arch, False)
    elif space.baseline is not None:
        baseline = space.baseline
    else:
        raise RksError(
            f"space `{space.name}` has no baseline arch, and --method {method} measures FLOPs (and one-shot NE%) "
            "against one: pass --baseline-arch ARCH.json"
        )
    target = parse_flops(args.flops_target, space, "--flops-target", baseline)
    if target is None:
        raise RksError(f"--flops-target none: --method {method} needs a FLOPs target")
    cfg = _inplace_config(args, target)
    check_flops_rule(space, None, target, args.seed)
    data = load_data(
        args.data, space, args.examples, args.schema, args.min_count, args.eval_fraction, args.val_fraction
    )
    fit = data.validation_view(args.val_fraction)  # all the supernet trains on; the slice after it chooses
    study = args.study or f"{space.name}-{method}"
    url = args.storage or _default_storage(study)
    key = hashlib.sha256(
        json.dumps([space_fingerprint(space), args.data, args.val_fraction, baseline.to_dict(), repr(cfg)]).encode()
    ).hexdigest()[:12]
    kind = OneShotSearch if method == "oneshot" else DNASSearch
    search = kind(
        space,
        fit,
        baseline,
        cfg,
        _beside_storage(url, f"{study}-{key}.{method}.pt"),
        _beside_storage(url, f"{study}-{key}.{method}.jsonl"),
    )
    if search.checkpoint.exists():
        print(f"resuming from {search.checkpoint}", file=sys.stderr)
    from tqdm import tqdm

    label = "one-shot search" if method == "oneshot" else "DNAS"
    with tqdm(total=search.steps, desc=label, unit="step", disable=True if args.json else None) as bar:
        result = search.run(lambda step, total, record: bar.update(step - bar.n))
    winner = result.pop("arch")
    summary = {
        "study": study,
        "method": method,
        "best": {"arch": winner.to_dict(), **{k: result.pop(k) for k in ("flops", "params", "probability")}},
        "baseline": {"arch": baseline.to_dict(), "flops": space.flops(baseline), "params": space.params(baseline)},
        "flops_target": target,
        **result,
        "log": str(search.log),
        "checkpoint": str(search.checkpoint),
    }
    if summary["target_gap"] > 0.1:
        if method == "oneshot" and args.alpha is None:
            fix = f"raise --examples (α adapted up to {summary['alpha_end']:.3g})"
        else:
            fix = f"raise {'--alpha' if method == 'oneshot' else '--lambda'} or --examples"
        above = method == "oneshot" and args.penalty == "relu"
        print(
            f"warning: γ(θ)'s {summary['best']['flops']:,} FLOPs are {100 * summary['target_gap']:.0f}% "
            f"{'above' if above else 'from'} the target {target:,.0f}; {fix}",
            file=sys.stderr,
        )
    summary["gamma"] = dict(summary["best"])
    _final_selection(args, space, summary, search.finalists(args.finalists), baseline, data)
    if summary.get("final"):
        won = summary["final"]["winner"]
        summary["best"] = {
            "arch": won["arch"],
            "flops": won["flops"],
            "params": space.params(Arch.from_dict(won["arch"])),
            "origin": won["origin"],
            "probability": won.get("probability"),
        }
        winner = Arch.from_dict(won["arch"])
    if args.export:
        summary["export"] = _export_winner(space, winner, Path(args.export), summary)
    if args.json:
        print(json.dumps(summary))
    else:
        _print_inplace(summary)
    return 0


def _exported_what(summary: dict) -> str:
    if summary.get("beats_baseline") is False:
        return "best candidate, which does not beat the baseline (selection.json says so),"
    return "winner"


def _export_winner(space, arch, folder: Path, summary: dict) -> str:
    """The winner's readable Python and its arch JSON in `folder`, as every search method writes them, and
    `selection.json`: whether it beat the baseline on the validation slice, so a best candidate that did not
    is marked as such beside the code."""
    source = atomic_write(folder / f"{space.name}_best.py", space.subnet_source(arch))
    atomic_write(folder / "best_arch.json", arch.to_json(indent=1) + "\n")
    final = summary.get("final")
    selection = {"beats_baseline": summary.get("beats_baseline")}
    if final:
        from .search.final import verdict

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


def _print_inplace(summary):
    best, base = summary["best"], summary["baseline"]
    if summary["method"] == "oneshot":
        work = f"one-shot search: {summary['steps']:,} supernet steps, {summary['policy_updates']:,} policy updates"
    else:
        work = f"DNAS: {summary['steps']:,} joint steps of the supernet and θ"
    print(f"{work}, {summary['seconds']:.0f} s; log {summary['log']}")
    print(f"baseline       FLOPs {base['flops']:,}")
    print(
        f"γ(θ)           FLOPs {summary['gamma']['flops']:,} ({summary['flops_ratio']:.2f}x the baseline; target "
        f"{summary['flops_target']:,.0f}, {100 * summary['target_gap']:.1f}% off)"
    )
    _print_final(summary)
    if "final" in summary:
        print(f"winner         {best['origin']}, FLOPs {best['flops']:,}")
    if "export" in summary:
        print(f"exported the {_exported_what(summary)} to {summary['export']}")


def cmd_proxy_study(args):
    from .data.loading import load_data
    from .search.proxy_study import plot_proxy_study, run_proxy_study

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


def build_parser() -> argparse.ArgumentParser:
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
        type=_int_list,
        help=f"connection distances (default {','.join(map(str, GROW_DISTANCES))})",
    )
    s.add_argument("--dims", type=_dim_range, help="LOW..HIGH:STEPS x the production width (default 0.5..1.25:7)")
    s.add_argument("--keep", type=_keep, help=f"connection keep-probability (default {GROW_KEEP})")
    s.add_argument(
        "--bottleneck",
        type=_positive(int),
        help=f"pairwise bottleneck (default {GROW_BOTTLENECK}, the paper's; with --blocks-only the production's)",
    )
    s.add_argument("--name", help="the grown space's name (default: the output file's stem)")
    s.set_defaults(func=cmd_grow)

    s = sub.add_parser("stats", help="size and structure of a space")
    s.add_argument("file")
    s.add_argument("--json", action="store_true")
    s.add_argument("--sample", type=int, default=0, help="also sample N archs and summarise their cost")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--plot", help="with --sample: write the Figure 3 histograms to this PNG")
    s.set_defaults(func=cmd_stats)

    s = sub.add_parser("sample", help="sample archs as JSON lines")
    s.add_argument("file")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-n", type=int, default=1)
    s.set_defaults(func=cmd_sample)

    s = sub.add_parser("graph", help="draw the space or one subnet (Graphviz DOT, SVG or PNG)")
    s.add_argument("file")
    s.add_argument("--arch", metavar="ARCH.json", help="draw this arch's subnet instead of the whole space")
    s.add_argument("--format", choices=FORMATS, help="default: from the output's suffix, else dot")
    s.add_argument("-o", "--output", required=True)
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
    s.add_argument("--embed-fc", type=_positive(float), help="multiply the EmbedFC dims (the paper: 3)")
    s.add_argument(
        "--dims", type=_positive(float), help="multiply linear, EmbedFC and dot-compressed dims (the paper: 1.5)"
    )
    s.add_argument("--bottleneck", type=_positive(float), help="multiply the pair bottleneck (the paper: 2)")
    s.add_argument("--extend", metavar="SPACE_OUT.rks", help="write the space extended to admit the scaled values")
    s.set_defaults(func=cmd_scale)

    s = sub.add_parser("flops", help="FLOPs and params of an arch, per choice")
    _arch_args(s, "count")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_flops)

    s = sub.add_parser("train", help="train an arch's exported subnet on CTR data and report NE")
    _arch_args(s, "train")
    s.add_argument(
        "--examples",
        type=_positive(int),
        help="training examples, in order (default: one pass over the training rows before the validation slice; "
        "synthetic data needs it)",
    )
    s.add_argument("--json", action="store_true")
    s.add_argument("--save", help="folder for model.py, arch.json, weights.pt and metrics.json")
    s.add_argument(
        "--embed-optimizer",
        choices=EMBED_OPTIMIZERS,
        default="rowwise-adagrad",
        help="optimiser of the embedding tables (default rowwise-adagrad; the body always uses Adam at --lr)",
    )
    s.add_argument("--embed-lr", type=_positive(float), default=0.1, help="the tables' learning rate (default 0.1)")
    s.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="linear",
        help="the body rate over the pass: linear decay to zero (default) or constant",
    )
    _data_args(s)
    _val_fraction_arg(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("search", help="sampling-based architecture search with a resumable study")
    s.add_argument("file")
    s.add_argument("--method", choices=["random", "predictor", "oneshot", "dnas"], required=True)
    s.add_argument("--budget", type=_positive(int), help="candidates to evaluate (random, predictor)")
    s.add_argument("--proxy", choices=["early-stop", "weight-sharing"], default="early-stop")
    s.add_argument(
        "--proxy-examples", type=_positive(int), default=20000, help="training examples per proxy evaluation"
    )
    s.add_argument(
        "--pretrain-examples", type=_positive(int), help="weight-sharing supernet pretraining (default 5x proxy)"
    )
    s.add_argument("--round-size", type=_positive(int), help="candidates per round (default budget/5, at least 2)")
    s.add_argument("--halving", type=int, default=0, metavar="K", help="successive halving over the best K candidates")
    s.add_argument("--flops-target", help="FLOPs target (L1 penalty), absolute or relative to the baseline like 2.5x")
    s.add_argument(
        "--flops-max",
        help="FLOPs cap, absolute or relative to the baseline like 2.5x (default: the baseline's FLOPs; none: no cap)",
    )
    s.add_argument(
        "--retrain-seeds",
        type=int,
        default=3,
        help="after the search, retrain the finalists and the baseline with this many seeds; the best on the "
        "validation slice wins, and the evaluation tail, which nothing reads before, is quoted (default 3; 0 "
        "skips: the proxy's best is the winner, unmeasured against the baseline)",
    )
    s.add_argument(
        "--finalists",
        type=_positive(int),
        default=FINALISTS,
        help="candidates retrained beside the baseline at the end: the top of the ranking (random, predictor) "
        f"or γ(θ) and the most likely runners-up (oneshot, dnas) (default {FINALISTS})",
    )
    s.add_argument(
        "--proxy-repeats",
        type=_positive(int),
        default=1,
        help="proxy runs per candidate, averaged; run k uses seed+k for every candidate (default 1)",
    )
    inplace = s.add_argument_group("searches trained with the supernet (--method oneshot, dnas)")
    inplace.add_argument("--examples", type=_positive(int), help="training examples the supernet streams")
    inplace.add_argument(
        "--warmup", type=float, help="fraction of steps before the arch distribution learns (oneshot 0.25, dnas 0.1)"
    )
    inplace.add_argument(
        "--checkpoint-every", type=_positive(int), default=200, help="supernet steps between checkpoints (200)"
    )
    inplace.add_argument("--baseline-arch", help="the baseline's arch JSON (default: the space's baseline)")
    oneshot = s.add_argument_group("one-shot search (--method oneshot; docs/oneshot.md)")
    oneshot.add_argument(
        "--alpha",
        type=_alpha,
        help="weight of the FLOPs cost in the reward, held fixed (default auto: adapted so γ(θ) holds the target)",
    )
    oneshot.add_argument("--penalty", choices=["l1", "relu"], default="l1", help="|F - c| or max(F - c, 0) (l1)")
    oneshot.add_argument("--policy", choices=["on", "on-off"], default="on-off", help="policy gradient (on-off)")
    oneshot.add_argument("--replay-k", type=_positive(int), default=50, help="off-policy updates per on-policy (50)")
    oneshot.add_argument("--rl-batch", type=_positive(int), default=16, help="sampled archs per policy update (16)")
    oneshot.add_argument("--policy-lr", type=_positive(float), default=0.05, help="the policy's Adam rate (0.05)")
    dnas = s.add_argument_group("DNAS (--method dnas; docs/dnas.md)")
    dnas.add_argument(
        "--lambda", dest="lam", type=float, default=1.0, help="weight of E|FLOPs(a) - c| / c in the loss (1)"
    )
    dnas.add_argument("--tau-start", type=_positive(float), default=5.0, help="first Gumbel-softmax temperature (5)")
    dnas.add_argument("--tau-end", type=_positive(float), default=0.1, help="last temperature, exponential decay (0.1)")
    dnas.add_argument("--arch-lr", type=_positive(float), default=0.1, help="Adam rate of the arch logits (0.1)")
    dnas.add_argument(
        "--checkpoint-activations", action="store_true", help="recompute each choice in backward: memory for time"
    )
    s.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/STUDY.db)")
    s.add_argument("--study", type=_study_name, help="study name: letters, digits, . _ - (default SPACE-METHOD-PROXY)")
    s.add_argument("--export", help="folder for the winner's Python source and arch JSON")
    s.add_argument("--plot", help="PNG of the Pareto front (default beside the export or the storage)")
    s.add_argument("--json", action="store_true")
    _data_args(s)
    _val_fraction_arg(s)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser(
        "proxy-study",
        help="Kendall tau of the early-stop and weight-sharing proxies against the final retrain's validation NE",
    )
    s.add_argument("file")
    s.add_argument("--models", type=_positive(int), required=True, help="sampled models (K)")
    s.add_argument(
        "--examples",
        type=_positive(int),
        default=20000,
        help="training rows of synthetic data (default 20,000; a file's rows are its own)",
    )
    s.add_argument("--budgets", help="comma-separated proxy budgets (default: 1/32 … 1/2 of a pass)")
    s.add_argument(
        "--pretrain-examples", type=_positive(int), help="weight-sharing supernet pretraining (default: --examples)"
    )
    s.add_argument("--plot", help="PNG to write (default SPACE-proxy-study.png)")
    s.add_argument("--json", action="store_true")
    _data_args(s)
    _val_fraction_arg(s)
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
    show.add_argument("--study")
    show.add_argument("--top", type=int, default=10)
    show.set_defaults(func=cmd_study_show)
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rankitect-dsl")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "rks " + shlex.join(argv)
    try:
        return args.func(args) or 0
    except RksError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rks: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()


def _closed_pipe() -> int:
    """The reader of our output went away (`rks study show … | head`): end quietly, as `cat` does. stdout is
    pointed at /dev/null so the interpreter's final flush does not raise again."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
