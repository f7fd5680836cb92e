"""The sampling searches (paper 3.2.1): candidates scored by a proxy in a resumable study, successive
halving over the best, the Pareto front. `SamplingSearcher` holds what they share; `RandomSearcher`
proposes every round at random, and the others (`predictor.py`, `evolution.py`) give a `Proposer`."""

from __future__ import annotations

import math
from pathlib import Path

from ...core.errors import RksError
from ..base import Found, SearchContext, Searcher
from ..flags import positive
from ..store.study import HEARTBEAT_GRACE, HEARTBEAT_SECONDS

PROXIES = ("early-stop", "weight-sharing")


class SamplingSearcher(Searcher):
    help = "candidates scored by a proxy"
    first_round = "incumbent"  # the first round's default: the baseline's neighbours, or "random"

    @staticmethod
    def add_arguments(g) -> None:
        g.add_argument("--budget", type=positive(int), help="candidates to evaluate (required)")
        g.add_argument(
            "--proxy",
            choices=PROXIES,
            default="early-stop",
            help="how a candidate is scored: early-stop trains it from scratch on --proxy-examples; weight-sharing "
            "fine-tunes it from a pretrained supernet (default early-stop)",
        )
        g.add_argument(
            "--proxy-examples", type=positive(int), default=20000, help="training examples per proxy evaluation (20000)"
        )
        g.add_argument(
            "--pretrain-examples", type=positive(int), help="weight-sharing supernet pretraining (default 5x proxy)"
        )
        g.add_argument(
            "--proxy-repeats",
            type=positive(int),
            default=1,
            help="proxy runs per candidate, averaged; run k uses seed+k for every candidate (default 1)",
        )
        g.add_argument("--round-size", type=positive(int), help="candidates per round (default budget/5, at least 2)")
        g.add_argument(
            "--first-round",
            choices=("incumbent", "random"),
            help="the first round: the baseline's neighbours under the FLOPs cap, its single moves first, or drawn "
            "at random (default incumbent; random for --method random)",
        )
        g.add_argument(
            "--halving",
            type=int,
            default=0,
            metavar="K",
            help="successive halving over the best K candidates (0: none)",
        )
        g.add_argument(
            "--flops-max",
            help="FLOPs cap, absolute or relative to the baseline like 2.5x (default: the baseline's FLOPs; none: "
            "no cap)",
        )
        g.add_argument("--plot", help="PNG of the Pareto front (default beside the export or the storage)")
        g.add_argument(
            "--heartbeat",
            type=positive(int),
            default=HEARTBEAT_SECONDS,
            metavar="SECONDS",
            help="on a database store, seconds between a worker's heartbeats; a trial that misses "
            f"{HEARTBEAT_GRACE} is its dead worker's, failed and retried on any host (default {HEARTBEAT_SECONDS})",
        )
        g.add_argument(
            "--jobs",
            type=positive(int),
            default=1,
            help="worker processes on the study: this one and N-1 helpers; their store is a journal file "
            "unless --storage says otherwise, never SQLite (default 1)",
        )

    def proposer(self):
        """The `loop.Proposer` of the rounds after the first; None: every round at random."""
        return None

    def validate(self, space) -> None:
        if self.args.budget is None:
            raise RksError(f"--method {self.name} needs --budget N (candidates to evaluate)")

    def default_study(self, space) -> str:
        return f"{space.name}-{self.name}-{self.args.proxy}"

    def default_storage(self, study: str) -> str:
        if self.args.jobs > 1:
            return f"journal:runs/{study}.journal"
        return super().default_storage(study)

    def search(self, ctx: SearchContext) -> Found:
        from ...runtime import distributed
        from ...runtime.engine import default_batch_size
        from ..sampling.loop import Search
        from ..sampling.proxies import EarlyStopProxy, WeightSharingProxy
        from ..store.study import StudyStore
        from ..store.workers import check_storage, is_worker, start_workers, threads_per_job, wait_for_workers

        args, space = self.args, ctx.space
        check_storage(ctx.url, args.jobs)
        world = distributed.current()
        if world.distributed and args.jobs > 1:
            raise RksError(
                "--jobs under torchrun: start the workers one way, torchrun ranks or --jobs helpers, not both"
            )
        worker = is_worker()
        cfg = self.config(ctx)
        rungs = math.ceil(math.log2(args.halving)) if args.halving > 1 else 0
        pretrain = args.pretrain_examples or 5 * args.proxy_examples
        needed = args.proxy_examples * 2**rungs + (pretrain if args.proxy == "weight-sharing" else 0)
        data, fit = ctx.load_data(needed)
        if args.proxy == "early-stop" and cfg.proxy_examples * 2**rungs > fit.n_train:
            cfg.proxy_examples = max(args.batch_size or default_batch_size(fit.n_train), fit.n_train // 2**rungs)
            ctx.say(
                f"--proxy-examples lowered to {cfg.proxy_examples:,}: the last rung reads one pass over the "
                f"{fit.n_train:,} training rows before the validation slice, not several"
            )
        store = StudyStore(ctx.url, ctx.study, self.meta(space, cfg), heartbeat=args.heartbeat) if world.main else None
        checkpoint = ctx.beside_storage(f"{ctx.study}.supernet.pt")
        pretrains = args.proxy == "weight-sharing" and not checkpoint.exists()  # this run pays for pretraining
        common = dict(seed=args.seed, batch_size=args.batch_size, lr=args.lr, repeats=args.proxy_repeats)
        if args.proxy == "weight-sharing":
            proxy = WeightSharingProxy(
                space, fit, pretrain, checkpoint=checkpoint, progress=ctx.progress, device=ctx.device, **common
            )
        else:
            proxy = EarlyStopProxy(space, fit, device=ctx.device, **common)
        if world.distributed:  # the supernet pretraining was data parallel; the trials run on rank 0
            distributed.part()  # the ranks but 0 end here, cleanly, however long the trials take
            if not world.main:
                return None
            ctx.say(
                f"the candidates train on rank 0 alone: for {world.size} workers on one study, use --jobs "
                f"{world.size} on one machine or one command per machine on a shared --storage (docs/scale-out.md)"
            )
        search = Search(space, proxy, store, cfg, self.proposer())
        if worker:
            search.run(rounds_only=True)
            return None
        if args.jobs > 1:
            import torch

            torch.set_num_threads(threads_per_job(args.jobs))
        helpers = start_workers(ctx.command_line, ctx.url, ctx.study, args.jobs) if args.jobs > 1 else []
        try:
            summary = search.run()
        except BaseException:
            for proc, _ in helpers:
                proc.kill()
            raise
        wait_for_workers(helpers)
        found = Found(summary, search.finalists(args.finalists), space.baseline, data, store)
        found.pretrain_examples = pretrain if pretrains else 0
        found.winner_fields = ("arch", "flops", "origin", "window_ne", "score", "rung")
        return found

    def config(self, ctx: SearchContext):
        """The loop's settings from the flags, the FLOPs rule checked against what the space can reach."""
        from ..constraints import check_flops_rule, default_flops_cap, parse_flops
        from ..sampling.loop import SearchConfig

        args, space = self.args, ctx.space
        cfg = SearchConfig(
            self.name,
            args.budget,
            args.proxy,
            args.proxy_examples,
            args.round_size,
            args.halving,
            default_flops_cap(args.flops_max, space),
            parse_flops(args.flops_target, space, "--flops-target"),
            args.seed,
            ctx.progress,
            args.first_round or self.first_round,
        )
        check_flops_rule(space, cfg.flops_cap, cfg.flops_target, cfg.seed)
        return cfg

    def meta(self, space, cfg) -> dict:
        """What identifies the study: a rerun with other settings is refused rather than mixed in."""
        from ..sampling.loop import space_fingerprint
        from ..sampling.proxies import PROXY_SCHEDULE

        args = self.args
        meta = {
            "space": space.name,
            "space_sha": space_fingerprint(space),
            "method": self.name,
            "proxy": args.proxy,
            "data": args.data,
            "proxy_examples": cfg.proxy_examples,
            "seed": args.seed,
            "val_fraction": args.val_fraction,
            "proxy_schedule": PROXY_SCHEDULE,
        }
        if args.proxy_repeats > 1:  # studies made before repeats existed stay resumable
            meta["proxy_repeats"] = args.proxy_repeats
        if cfg.first_round != "random":  # so do studies made before a first round from the baseline
            meta["first_round"] = cfg.first_round
        return meta

    def after(self, ctx: SearchContext, found: Found) -> None:
        from ..sampling.pareto import plot_pareto

        args, summary = self.args, found.summary
        if args.plot:
            path = Path(args.plot)
        elif args.export:
            path = Path(args.export) / "pareto.png"
        else:
            path = ctx.beside_storage(f"{ctx.study}-pareto.png")
        title = f"{ctx.space.name}: {self.name} search, {args.proxy} proxy"
        plot_pareto(found.store.completed(), summary["pareto"], summary["baseline"], path, title)
        summary["plot"] = str(path)

    def render(self, summary: dict) -> list[str]:
        lines = [f"study {summary['study']} ({summary['storage']}): {summary['evaluated']} candidates evaluated"]
        base = summary["baseline"]
        if base:
            lines.append(f"baseline       window NE {base['window_ne']:.4f}   FLOPs {base['flops']:,}")
        lines += ["Pareto front (window NE against FLOPs):", f"  {'trial':>5} {'FLOPs':>12} {'window NE':>10}"]
        lines += [f"  {p['trial']:>5} {p['flops']:>12,} {p['window_ne']:>10.4f}" for p in summary["pareto"]]
        if summary["finalists"]:
            lines.append("finalists after successive halving (rung, score):")
            lines += [f"  {i}. rung {f['rung']}  {f['score']:.4f}" for i, f in enumerate(summary["finalists"], 1)]
        return lines


class RandomSearcher(SamplingSearcher):
    name = "random"
    help = "random search: every round drawn uniformly from the space, scored by a proxy"
    first_round = "random"
