"""The `rks` command line. Bad input ends in one clear message and exit status 1, never a traceback."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from .errors import RksError
from .files import atomic_write
from .ir import BLOCKS


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"rks: error: {message}\n")


def _space(path):
    from .space import load_space
    return load_space(path)


def _read_arch(space, path, baseline=False):
    from .arch import Arch
    if baseline:
        if space.baseline is None:
            raise RksError(f"space `{space.name}` names no baseline arch", space.path)
        return space.baseline
    if path is None:
        raise RksError("give an ARCH.json file or --baseline")
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise RksError(f"cannot read arch file {path}: {err.strerror}") from None
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
        print(f"{path}: ok: space `{space.name}`, {len(space.spec.choices)} choices, "
              f"{len(space.decisions)} decisions, size {space.size:.3e}" if space.size > 10**6 else
              f"{path}: ok: space `{space.name}`, {len(space.spec.choices)} choices, {len(space.decisions)} decisions, size {space.size}")
    return status


def stats_dict(space) -> dict:
    blocks = Counter(b for c in space.spec.choices for b in c.blocks)
    edges = sum(1 for _, v in space.graph.in_edges() if space.graph.nodes[v]["kind"] == "choice")
    return {"space": space.name, "choices": len(space.spec.choices), "decisions": len(space.decisions),
            "blocks": {b: blocks.get(b, 0) for b in BLOCKS}, "connections": edges,
            "size": str(space.size), "log10_size": space.log10_size,
            "baseline": space.spec.baseline_name}


def cmd_stats(args):
    space = _space(args.file)
    info = stats_dict(space)
    if args.plot and not args.sample:
        raise RksError("--plot needs --sample N")
    if args.sample:
        from .report import sample_stats
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
    from .graph import to_dot
    space = _space(args.file)
    atomic_write(args.output, to_dot(space.spec, space.graph))
    print(f"wrote {args.output}")
    return 0


def cmd_compile(args):
    from .codegen import compile_space
    space = _space(args.file)
    for path in compile_space(space, args.output):
        print(f"wrote {path}")
    return 0


def cmd_export(args):
    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    atomic_write(args.output, space.subnet_source(arch))
    print(f"wrote {args.output}")
    return 0


def cmd_flops(args):
    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    flops, params = space.flops(arch), space.params(arch)
    parts = space.cost_breakdown(arch) if not space._is_merged(arch) else {}
    used = {k: v for k, v in parts.items() if v["flops"] or v["params"]}
    if args.json:
        print(json.dumps({"space": space.name, "flops": flops, "params": params, "choices": used}))
        return 0
    print(f"{'part':<24} {'FLOPs':>14} {'params':>12}")
    for key, v in used.items():
        print(f"{key:<24} {v['flops']:>14,} {v['params']:>12,}")
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


def _data_args(s):
    s.add_argument("--data", default="synthetic", help="synthetic[:SEED] | criteo:PATH | table:PATH (default: synthetic)")
    s.add_argument("--schema", help="schema JSON for a table: source")
    s.add_argument("--min-count", type=_positive(int), default=2, help="vocabulary frequency threshold (default 2)")
    s.add_argument("--eval-fraction", type=float, default=0.2, help="held-out tail of the data (default 0.2)")
    s.add_argument("--batch-size", type=_positive(int), default=256)
    s.add_argument("--lr", type=_positive(float), default=1e-3)
    s.add_argument("--seed", type=int, default=0)


def cmd_train(args):
    import torch
    from .trainer import TrainConfig, build_model, load_data, train
    space = _space(args.file)
    arch = _read_arch(space, args.arch, args.baseline)
    data = load_data(args.data, space, args.examples, args.schema, args.min_count, args.eval_fraction)
    model = build_model(space, arch, data, args.seed)
    result = train(model, data, TrainConfig(args.examples, args.batch_size, args.lr, args.seed, not args.json))
    out = {"space": space.name, "data": data.name, **result.to_dict(), "flops": space.flops(arch), "params": space.params(arch)}
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
    print(f"trained {space.name} on {data.name}: {result.examples:,} examples ({result.passes:.2f} passes) in {result.seconds:.1f} s")
    print(f"window NE {result.window_ne:.4f}   eval NE {result.eval_ne:.4f}   AUC {result.auc:.4f}   "
          f"(eval on {result.eval_examples:,} held-out examples)")
    print(f"FLOPs {out['flops']:,}   params {out['params']:,}")
    if args.save:
        print(f"saved model.py, arch.json, weights.pt, metrics.json in {args.save}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="rks", description="Compile and search .rks ranking-model search spaces.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("check", help="check .rks files")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=cmd_check)

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

    s = sub.add_parser("graph", help="write the space's DAG as Graphviz DOT")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=cmd_graph)

    s = sub.add_parser("compile", help="write the masked supernet module and the space description")
    s.add_argument("file")
    s.add_argument("-o", "--output", required=True, help="output folder")
    s.set_defaults(func=cmd_compile)

    s = sub.add_parser("export", help="write the standalone PyTorch source of one arch")
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help="export the space's named baseline arch")
    s.add_argument("-o", "--output", required=True, help="the .py file to write")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("flops", help="FLOPs and params of an arch, per choice")
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help="use the space's named baseline arch")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_flops)

    s = sub.add_parser("train", help="train an arch's exported subnet on CTR data and report NE")
    s.add_argument("file")
    s.add_argument("arch", nargs="?", help="ARCH.json")
    s.add_argument("--baseline", action="store_true", help="train the space's named baseline arch")
    s.add_argument("--examples", type=_positive(int), required=True, help="training examples (one ordered pass)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--save", help="folder for model.py, arch.json, weights.pt and metrics.json")
    _data_args(s)
    s.set_defaults(func=cmd_train)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except RksError as err:
        print(err.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rks: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
