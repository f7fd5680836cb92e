"""`rks search --method local`: the local search from the production model (`search/sampling/local.py`) on real
training — every candidate trained by the final trainer on the rows before the validation slice, with the
incumbent's seeds — and its fits kept in the study store, one trial per (arch, seed), so a killed search
replays its path from the store and goes on. Under `--jobs N` the first seeds of the next N neighbours are
trained at once by this process and N − 1 helpers (`search/store/workers.py`), which take the fits this process
enqueues until it says it is done."""

from __future__ import annotations

import os
import time

from ...core.arch import Arch
from ...core.errors import RksError
from ..base import Found, SearchContext, Searcher
from ..flags import positive
from ..store.study import FIT, StudyStore

DONE = "local_done_by"  # the pid of the search process whose helpers may stop
EXAMPLES = 20000  # synthetic training rows by default


class FitStore:
    """(arch, seed) → the final trainer's scores, trained here or by a helper and kept in the study store."""

    def __init__(self, ctx: SearchContext, store: StudyStore, data, jobs: int):
        self.ctx, self.store, self.data, self.jobs = ctx, store, data, jobs
        self.space = ctx.space
        self.known: dict = {}  # (subnet key, seed) → scores
        self.trained = 0  # fits this process made
        self._collected: set = set()  # trial numbers already in `known`: a poll under --jobs reads only new ones
        self._collect()

    def _collect(self) -> None:
        for t in self.store.completed(FIT):
            if t.number in self._collected:
                continue
            self._collected.add(t.number)
            a = t.user_attrs
            self.known[(self.space.subnet_key(Arch.from_json(a["arch"])), a["seed"])] = {
                k: a[k] for k in ("val_ne", "eval_ne", "auc", "examples", "seconds")
            }

    def __call__(self, requests: list) -> list[dict]:
        keyed = [((self.space.subnet_key(arch), seed), arch, seed) for arch, seed in requests]
        missing = {key: (arch, seed) for key, arch, seed in keyed if key not in self.known}
        if self.jobs > 1 and len(missing) > 1:
            for arch, seed in missing.values():
                self.store.study.enqueue_trial({}, user_attrs=self._attrs(arch, seed))
            while any(key not in self.known for key in missing):
                if not self.take():
                    time.sleep(0.2)
                self.store.recover_interrupted()
                self._collect()
        for key, (arch, seed) in missing.items():
            if key not in self.known:
                self.train(self._attrs(arch, seed))
        return [self.known[key] for key, _, _ in keyed]

    def _attrs(self, arch: Arch, seed: int) -> dict:
        return {"arch": arch.to_json(), "seed": seed, "role": FIT, "vector": self.space.encode(arch)}

    def take(self) -> bool:
        """Train one enqueued fit, if one waits."""
        if not self.store.waiting():
            return False
        self.train({"role": "retry"})
        return True

    def train(self, attrs: dict) -> None:
        from ..final import fit_once

        trial, attrs = self.store.start(attrs)
        if "arch" not in attrs:  # the enqueued fit went to another process
            self.store.fail(trial, "nothing to train")
            return
        args, arch = self.ctx.args, Arch.from_json(attrs["arch"])
        try:
            scores = fit_once(
                self.space, arch, self.data, attrs["seed"], args.batch_size, args.lr, args.val_fraction, self.ctx.device
            )
        except BaseException as err:
            if not isinstance(err, (KeyboardInterrupt, SystemExit)):
                self.store.fail(trial, f"{type(err).__name__}: {err}")
            raise
        flops = self.space.flops(arch)
        self.store.finish(trial, scores["val_ne"], {**scores, "flops": flops, "params": self.space.params(arch)})
        self.known[(self.space.subnet_key(arch), attrs["seed"])] = scores
        self.trained += 1


class LocalSearcher(Searcher):
    name = "local"
    help = "local search from the production model: its neighbours within the FLOPs cap, raced on paired seeds"

    @staticmethod
    def add_arguments(g) -> None:
        g.add_argument("--budget", type=positive(int), help="candidates to visit (required)")
        g.add_argument(
            "--examples",
            type=positive(int),
            help=f"synthetic data: training rows before the validation slice (default {EXAMPLES:,}); a file's "
            "are all its rows before the slice",
        )
        g.add_argument(
            "--seeds",
            type=positive(int),
            help="paired seeds a candidate is raced on at most, seed … seed+K−1; at least 2, which measure the "
            "noise of a paired gain (default: --retrain-seeds, at least 2)",
        )
        g.add_argument(
            "--accept-z",
            type=positive(float),
            default=2.0,
            help="a move is taken when its mean paired gain on the validation slice exceeds this many standard "
            "errors of the paired noise (default 2)",
        )
        g.add_argument(
            "--flops-max",
            help="FLOPs cap, absolute or relative to the baseline like 1.2x (default: the baseline's FLOPs; none: "
            "no cap)",
        )
        g.add_argument(
            "--jobs",
            type=positive(int),
            default=1,
            help="processes training candidates: this one and N-1 helpers; their store is a journal file unless "
            "--storage says otherwise, never SQLite (default 1)",
        )

    def validate(self, space) -> None:
        if self.args.budget is None:
            raise RksError("--method local needs --budget N (candidates to visit)")
        if space.baseline is None:
            raise RksError(f"--method local starts from the production model: space `{space.name}` names no baseline")
        if not space.has_encoding(space.baseline):
            raise RksError(f"--method local: the baseline of space `{space.name}` has no flat encoding to move in")
        if self.args.seeds == 1:
            raise RksError("--seeds 1 cannot tell a paired gain from noise: give at least 2")
        if self.args.flops_target is not None:
            raise RksError("--method local moves under the FLOPs cap (--flops-max), it has no --flops-target")
        if self.args.val_fraction <= 0:
            raise RksError("--method local chooses its moves on the validation slice: --val-fraction must be above 0")

    def default_storage(self, study: str) -> str:
        from ..base import default_storage

        return f"journal:runs/{study}.journal" if self.args.jobs > 1 else default_storage(study)

    def seeds(self) -> list[int]:
        a = self.args
        return list(range(a.seed, a.seed + (a.seeds or max(2, a.retrain_seeds))))

    def search(self, ctx: SearchContext) -> Found:
        import torch

        from ...runtime import distributed
        from ..constraints import check_flops_rule, default_flops_cap
        from ..sampling.local import LocalSearch
        from ..sampling.loop import space_fingerprint
        from ..store.workers import check_storage, is_worker, start_workers, threads_per_job, wait_for_workers

        args, space = self.args, ctx.space
        check_storage(ctx.url, args.jobs)
        if distributed.current().distributed:
            raise RksError("--method local trains one candidate per process: use --jobs N, not torchrun")
        cap = default_flops_cap(args.flops_max, space)
        check_flops_rule(space, cap, None, args.seed)
        data, _ = ctx.load_data(args.examples or EXAMPLES)
        meta = {
            "space": space.name,
            "space_sha": space_fingerprint(space),
            "method": self.name,
            "data": args.data,
            "examples": data.validation_view(args.val_fraction).n_train,
            "seed": args.seed,
            "seeds": len(self.seeds()),
            "val_fraction": args.val_fraction,
            "flops_cap": cap,
            "accept_z": args.accept_z,
        }
        store = StudyStore(ctx.url, ctx.study, meta)
        if args.jobs > 1:
            torch.set_num_threads(threads_per_job(args.jobs))
        fits = FitStore(ctx, store, data, args.jobs)
        if is_worker():
            _help(fits)
            return None
        store.recover_interrupted()
        store.study.set_user_attr(DONE, None)
        helpers = start_workers(ctx.command_line, ctx.url, ctx.study, args.jobs) if args.jobs > 1 else []
        search = LocalSearch(space, fits, self.seeds(), args.budget, cap, args.accept_z, args.seed, args.jobs, ctx.say)
        ctx.say(
            f"local search from the baseline of {space.name}: {args.budget} candidates at most, raced on seeds "
            f"{', '.join(map(str, search.seeds))}, " + (f"FLOPs cap {cap:,.0f}" if cap else "no FLOPs cap")
        )
        try:
            search.run()
        except BaseException:
            for proc, _ in helpers:
                proc.kill()
            raise
        finally:
            store.study.set_user_attr(DONE, os.getpid())
        wait_for_workers(helpers)
        return self._found(space, search, data, store, fits)

    def _found(self, space, search, data, store, fits) -> Found:
        from ..final import Finalist

        inc = search.incumbent
        finalists = [] if inc.move == "baseline" else [Finalist(inc.arch, f"incumbent {len(search.path) - 1}")]
        for k, visit in enumerate(search.runners_up()[: self.args.finalists - len(finalists)], 1):
            finalists.append(Finalist(space.decode(visit.move.vector), f"runner-up {k}", {"move": visit.move.text}))
        summary = search.summary()
        base = summary["path"][0]
        summary["baseline"] = {"arch": base["arch"], "flops": base["flops"], "val_ne": base["val_ne"]}
        summary["best"] = {"arch": inc.arch.to_dict(), "flops": inc.flops, "origin": "incumbent"}
        summary["trained"] = fits.trained
        found = Found(summary, finalists, space.baseline, data, store)
        found.final_seed = search.seeds[-1] + 1  # fresh seeds: the finalists were chosen on the search's own
        return found

    def render(self, summary: dict) -> list[str]:
        from ..store.view import path_lines

        lines = [
            f"local search: {summary['evaluated']} candidates visited ({summary['stopped']}); paired noise "
            f"{summary['noise']:.4f} NE per seed: a move's mean gain must beat {summary['bar']:.4f} "
            f"({summary['z']:g} standard errors, as Student's t)",
            *path_lines(summary["path"]),
        ]
        if len(summary["path"]) == 1:
            lines.append("  no move beat the baseline beyond the noise")
        return lines


def _help(fits: FitStore) -> None:
    """A helper of `--jobs`: train the enqueued fits until the search process says it is done or is gone."""
    parent = os.getppid()
    while fits.store.study.user_attrs.get(DONE) != parent and os.getppid() == parent:
        if not fits.take():
            time.sleep(0.2)
