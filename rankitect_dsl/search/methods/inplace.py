"""What the searchers trained in place with the supernet share (one-shot, DNAS): the baseline they measure
FLOPs against, the target, the data, checkpoint and log files keyed by the run's settings, the study store
(a run record, and γ(θ) at every checkpoint as a trial), progress, and the summary."""

from __future__ import annotations

import hashlib
import json
import math
import sys

from ...core.errors import RksError
from ..base import Found, SearchContext, Searcher
from ..flags import positive
from ..inplace.curves import curves


class InPlaceSearcher(Searcher):
    label = ""  # how the progress line and the summary name the method
    start_default = "uniform"  # where the arch distribution and the supernet start (--start)
    warmup_default = 0.1

    @classmethod
    def add_arguments(cls, g) -> None:
        g.add_argument("--examples", type=positive(int), help="training examples the supernet streams (required)")
        g.add_argument(
            "--warmup",
            type=float,
            help=f"fraction of steps before the arch distribution learns (default {cls.warmup_default:g})",
        )
        g.add_argument(
            "--checkpoint-every",
            type=positive(int),
            default=200,
            help="supernet steps between checkpoints, each also recorded as γ(θ) in the study (default 200)",
        )
        g.add_argument("--baseline-arch", help="the baseline's arch JSON (default: the space's baseline)")
        g.add_argument(
            "--start",
            choices=("uniform", "incumbent"),
            help="uniform: the arch distribution uniform over every decision, the supernet from its initialisation; "
            "incumbent: the distribution centred on the baseline (each decision shaping it keeps its value with "
            "probability 0.75) and the supernet (and one-shot's co-trained baseline) starting from the baseline "
            f"trained one pass, the paper's transfer learning (default {cls.start_default}: measured in "
            "docs/search.md, Results)",
        )

    def config(self, target: float, warmup: float, common: dict):
        """The method's settings from its flags (each refused with one line when out of range)."""
        raise NotImplementedError

    def make_search(self, space, fit, baseline, cfg, checkpoint, log):
        raise NotImplementedError

    def validate(self, space) -> None:
        args = self.args
        if args.examples is None:
            raise RksError(f"--method {self.name} needs --examples N (training examples the supernet streams)")
        if args.flops_target is None:
            raise RksError(f"--method {self.name} needs --flops-target C (absolute FLOPs or a multiple like 1x)")

    def baseline(self, space):
        if self.args.baseline_arch:
            return space.load_arch(self.args.baseline_arch)
        if space.baseline is not None:
            return space.baseline
        raise RksError(
            f"space `{space.name}` has no baseline arch, and --method {self.name} measures FLOPs (and one-shot NE%) "
            "against one: pass --baseline-arch ARCH.json"
        )

    def search(self, ctx: SearchContext) -> Found:
        from ...runtime import distributed
        from ...runtime.progress import Progress
        from ..constraints import check_flops_rule, parse_flops
        from ..sampling.loop import space_fingerprint
        from ..store.study import GAMMA, StudyStore

        args, space = self.args, ctx.space
        baseline = self.baseline(space)
        target = parse_flops(args.flops_target, space, "--flops-target", baseline)
        if target is None:
            raise RksError(f"--flops-target none: --method {self.name} needs a FLOPs target")
        warmup = args.warmup if args.warmup is not None else self.warmup_default
        if not 0 <= warmup < 1:
            raise RksError(f"--warmup is a fraction of the steps in [0, 1), got {warmup}")
        common = dict(
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            checkpoint_every=args.checkpoint_every,
            device=ctx.device,
            start=args.start or self.start_default,
        )
        cfg = self.config(target, warmup, common)
        check_flops_rule(space, None, target, args.seed)
        data, fit = ctx.load_data(args.examples)
        fingerprint = space_fingerprint(space)
        # A run resumes on any device; runs from before `start` existed keep their key.
        settings = {k: v for k, v in vars(cfg).items() if k != "device" and (k, v) != ("start", "uniform")}
        key = hashlib.sha256(
            json.dumps([fingerprint, args.data, args.val_fraction, baseline.to_dict(), repr(settings)]).encode()
        ).hexdigest()[:12]
        meta = {"space": space.name, "space_sha": fingerprint, "method": self.name, "data": args.data}
        main = distributed.current().main  # under torchrun rank 0 alone writes the study, the log and the checkpoint
        store = StudyStore(ctx.url, ctx.study, meta) if main else None
        files = f"{ctx.study}-{key}.{self.name}"
        search = self.make_search(
            space, fit, baseline, cfg, ctx.beside_storage(files + ".pt"), ctx.beside_storage(files + ".jsonl")
        )
        warm = 0
        if search.checkpoint.exists():  # every rank resumes alike; a warm start on one rank alone would hang DDP
            if main:  # said even under --json: stderr, and what a rerun did matters
                print(f"resuming from {search.checkpoint}", file=sys.stderr)
        elif cfg.start == "incumbent":
            ctx.say(f"warm start: the baseline trained on {fit.n_train:,} rows, its weights into the supernet …")
            warm = search.warm_start()

        def record(_, gamma: dict) -> None:
            if math.isfinite(gamma["ne_batch"]):  # else every batch since the last checkpoint was one class
                store.record(GAMMA, gamma["ne_batch"], {**gamma, "run": key})

        with Progress(search.steps, self.label, "step", ctx.progress) as bar:
            result = search.run(progress=bar, on_checkpoint=record)
        winner = result.pop("arch")
        summary = {
            "best": {
                "arch": winner.to_dict(),
                "origin": "γ(θ)",
                **{k: result.pop(k) for k in ("flops", "params", "probability")},
            },
            "baseline": {"arch": baseline.to_dict(), "flops": space.flops(baseline), "params": space.params(baseline)},
            "flops_target": target,
            **result,
            "run": key,
            "curves": curves(search.log) if main else [],
            "log": str(search.log),
            "checkpoint": str(search.checkpoint),
        }
        summary["gamma"] = dict(summary["best"])
        if main:
            self.warn_gap(ctx, summary, target)
        found = Found(summary, search.finalists(args.finalists), baseline, data, store)
        found.pretrain_examples = warm  # the warm start's baseline training, counted in the search's cost
        found.winner_fields = ("arch", "flops", "origin", "probability")
        return found

    def warn_gap(self, ctx: SearchContext, summary: dict, target: float) -> None:
        if summary["target_gap"] > 0.1:
            print(
                f"warning: γ(θ)'s {summary['best']['flops']:,} FLOPs are {100 * summary['target_gap']:.0f}% "
                f"{self.gap_word()} the target {target:,.0f}; {self.gap_fix(summary)}",
                file=sys.stderr,
            )

    def gap_word(self) -> str:
        return "from"

    def gap_fix(self, summary: dict) -> str:
        raise NotImplementedError

    def work_line(self, summary: dict) -> str:
        raise NotImplementedError

    def render(self, summary: dict) -> list[str]:
        base, gamma = summary["baseline"], summary["gamma"]
        return [
            f"{self.work_line(summary)}, {summary['seconds']:.0f} s; log {summary['log']}",
            f"baseline       FLOPs {base['flops']:,}",
            f"γ(θ)           FLOPs {gamma['flops']:,} ({summary['flops_ratio']:.2f}x the baseline; target "
            f"{summary['flops_target']:,.0f}, {100 * summary['target_gap']:.1f}% off)",
        ]
