"""Sampling-based search (paper 3.2.1): rounds of candidates, the first at random and the later ones from a
`Proposer` (the neural predictor with its RL sampler, regularised evolution; none: random throughout),
scored by a proxy, kept in a resumable Optuna study; then successive halving over the finalists and the
Pareto front of window NE against FLOPs."""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...core.arch import Arch
from ...core.errors import RksError
from ..constraints import FlopsObjective
from ..store.study import BASELINE, CANDIDATE, HALVING, StudyStore
from .pareto import pareto


@dataclass
class SearchConfig:
    method: str
    budget: int
    proxy: str = "early-stop"
    proxy_examples: int = 20000
    round_size: Optional[int] = None
    halving: int = 0  # number of finalists (0: no successive halving)
    flops_cap: Optional[float] = None
    flops_target: Optional[float] = None
    seed: int = 0
    progress: bool = True
    first_round: str = "random"  # or "incumbent": the baseline's neighbours under the cap (`neighbours.py`)

    @property
    def rounds(self) -> int:
        return self.round_size or max(2, math.ceil(self.budget / 5))


class Proposer:
    """How a sampling search proposes the candidates of a round after its first: `propose(search, n, done,
    exclude, rng)` returns up to n new archs, none of whose subnet keys is in `exclude` (add each one taken);
    `done` holds the finished candidate trials. The loop fills a short round at random."""

    def propose(self, search: "Search", n: int, done: list, exclude: set, rng: np.random.Generator) -> list:
        raise NotImplementedError


def space_fingerprint(space) -> str:
    return hashlib.sha256(space.source.encode()).hexdigest()[:16]


def score(value: float, flops: float, objective: FlopsObjective) -> float:
    return value + float(objective.penalty(np.array([flops]))[0])


class Search:
    def __init__(self, space, proxy, store: StudyStore, cfg: SearchConfig, proposer: Optional[Proposer] = None):
        self.space, self.proxy, self.store, self.cfg, self.proposer = space, proxy, store, cfg, proposer
        self.objective = FlopsObjective(target=cfg.flops_target, cap=cfg.flops_cap)
        self._subnet_keys: dict = {}

    # -- the worker loop --------------------------------------------------------------------
    def run(self, rounds_only: bool = False) -> Optional[dict]:
        """The rounds until the budget is spent, then (unless `rounds_only`: a helper worker of `--jobs`)
        successive halving and the summary."""
        from ...runtime.progress import Progress

        self.store.recover_interrupted()
        if self.space.baseline is not None and not self.store.trials(BASELINE):
            self._evaluate(
                {
                    "arch": self.space.baseline.to_json(),
                    "role": BASELINE,
                    "round": -1,
                    "examples": self.cfg.proxy_examples,
                }
            )
        while True:
            done = self.store.completed()
            pending = self.store.pending()
            left = self.cfg.budget - len(done) - len(pending)
            if left <= 0:
                break
            round_index = len(done) // self.cfg.rounds
            proposals = self.propose(min(left, self.cfg.rounds), round_index)
            if not proposals:
                break
            desc = f"round {round_index + 1} ({self._round_kind(done)})"
            with Progress(len(proposals), desc, "arch", self.cfg.progress) as bar:
                for arch in proposals:
                    bar.update(1)
                    trials = self.store.trials(CANDIDATE)  # one read per candidate: what is done, under way, taken
                    if self.cfg.budget - sum(t.state.name in _LIVE for t in trials) <= 0:
                        break
                    if self._subnet_key(arch.to_json()) in self._evaluated_keys(trials):
                        continue  # another worker took this subnet meanwhile
                    self._evaluate(
                        {
                            "arch": arch.to_json(),
                            "vector": self._vector(arch),
                            "role": CANDIDATE,
                            "round": round_index,
                            "examples": self.cfg.proxy_examples,
                        }
                    )
        self._wait_for_others()
        if rounds_only:
            return None
        if self.cfg.halving:
            self.successive_halving()
        return self.summary()

    def _vector(self, arch: Arch) -> list:
        return self.space.encode(arch)

    def _round_kind(self, done) -> str:
        if not self._is_random_round(done):
            return self.cfg.method
        return "the baseline's neighbours" if self.cfg.first_round == "incumbent" and not done else "random"

    def _is_random_round(self, done) -> bool:
        return self.proposer is None or len(done) < self.cfg.rounds

    def _evaluated_keys(self, trials: Optional[list] = None) -> set:
        """Subnet keys of candidates finished or under way: an arch that differs from one of them only in
        choices that do not reach the output is the same model, and is not evaluated twice."""
        return {
            self._subnet_key(t.user_attrs["arch"])
            for t in (self.store.trials(CANDIDATE) if trials is None else trials)
            if "arch" in t.user_attrs and t.state.name in _LIVE
        }

    def _subnet_key(self, arch_json: str) -> str:
        if arch_json not in self._subnet_keys:
            self._subnet_keys[arch_json] = self.space.subnet_key(Arch.from_json(arch_json))
        return self._subnet_keys[arch_json]

    def propose(self, n: int, round_index: int) -> list:
        rng = np.random.default_rng([self.cfg.seed, len(self.store.trials())])
        exclude = self._evaluated_keys()
        done = self.store.completed()
        if self._is_random_round(done):
            first = self._incumbent_neighbours(n, exclude, rng) if self.cfg.first_round == "incumbent" else []
            return first + self._random(n - len(first), exclude, rng)
        out = self.proposer.propose(self, n, done, exclude, rng)
        return out + self._random(n - len(out), exclude, rng) if len(out) < n else out

    def _incumbent_neighbours(self, n: int, exclude: set, rng) -> list:
        """Up to n of the baseline's neighbours within the cap, its single moves first, each group shuffled:
        where a production model's improvements live, so the first round starts there."""
        from .neighbours import neighbours

        base = self.space.baseline
        if base is None or not self.space.has_encoding(base):
            return []
        moves = neighbours(self.space, self.space.encode(base), self.cfg.flops_cap)
        groups = [[m for m in moves if not m.compound], [m for m in moves if m.compound]]
        out = []
        for group in groups:
            for k in rng.permutation(len(group)):
                if len(out) < n and group[k].key not in exclude:
                    exclude.add(group[k].key)
                    out.append(self.space.decode(list(group[k].vector)))
        return out

    def _random(self, n: int, exclude: set, rng) -> list:
        out, tries = [], 0
        while len(out) < n and tries < 200 * max(1, n):
            tries += 1
            arch = self.space.sample(int(rng.integers(1 << 62)))
            key = self.space.subnet_key(arch)
            if key in exclude or not self.objective.allowed(np.array([self.space.flops(arch)]))[0]:
                continue
            exclude.add(key)
            out.append(arch)
        return out

    def _evaluate(self, attrs: dict) -> None:
        trial, attrs = self.store.start(attrs)
        if "arch" not in attrs:  # the retry we meant to take went to another worker
            self.store.fail(trial, "nothing to evaluate")
            return
        if attrs["role"] == CANDIDATE:
            others = [t for t in self.store.trials(CANDIDATE) if t.number != trial.number and t.state.name in _LIVE]
            key = self._subnet_key(attrs["arch"])
            if any("arch" in t.user_attrs and self._subnet_key(t.user_attrs["arch"]) == key for t in others):
                self.store.fail(trial, "duplicate: another worker evaluates this subnet")
                return
            if sum(t.number < trial.number for t in others) >= self.cfg.budget:  # workers that asked at once
                self.store.fail(trial, "budget spent: other workers took the last candidates first")
                return
        try:
            arch = Arch.from_json(attrs["arch"])
            result = self.proxy(arch, int(attrs["examples"]))
        except BaseException as err:
            if not isinstance(err, (KeyboardInterrupt, SystemExit)):
                self.store.fail(trial, f"{type(err).__name__}: {err}")
            raise
        flops = result.extra["flops"]
        self.store.finish(
            trial,
            score(result.window_ne, flops, self.objective),
            {
                "window_ne": result.window_ne,
                "flops": flops,
                "params": result.extra["params"],
                "seconds": result.seconds,
                "examples_processed": result.examples,
                "window_ne_runs": result.extra.get("window_ne_runs", [result.window_ne]),
            },
        )

    def _wait_for_others(self, poll: float = 1.0) -> None:
        """Until no trial of any role is running elsewhere; retries enqueued meanwhile are taken here."""
        while True:
            self.store.recover_interrupted()
            if self.store.waiting():
                self._evaluate({"role": "retry"})
            elif self.store.pending(role=None):
                time.sleep(poll)
            else:
                return

    # -- successive halving -----------------------------------------------------------------
    def successive_halving(self) -> list:
        finalists = [
            t.user_attrs["arch"] for t in sorted(self.store.completed(), key=lambda t: t.value)[: self.cfg.halving]
        ]
        rung, examples = 1, self.cfg.proxy_examples
        while len(finalists) > 1:
            examples *= 2
            results = {}
            for key in finalists:
                done = [
                    t
                    for t in self.store.completed(HALVING)
                    if t.user_attrs.get("arch") == key and t.user_attrs.get("rung") == rung
                ]
                if not done:
                    self._evaluate({"arch": key, "role": HALVING, "rung": rung, "examples": examples})
                    done = [
                        t
                        for t in self.store.completed(HALVING)
                        if t.user_attrs.get("arch") == key and t.user_attrs.get("rung") == rung
                    ]
                results[key] = done[0].value
            finalists = sorted(finalists, key=results.get)[: max(1, len(finalists) // 2)]
            rung += 1
        return finalists

    def ranking(self) -> list:
        """Finalists ranked: by the last halving rung reached, then by score there; then every other candidate."""
        best = {}
        for t in self.store.completed(HALVING):
            key, rung = t.user_attrs["arch"], t.user_attrs["rung"]
            if key not in best or rung > best[key][0] or (rung == best[key][0] and t.value < best[key][1]):
                best[key] = (rung, t.value, t)
        cands = {t.user_attrs["arch"]: t for t in self.store.completed()}
        ranked = sorted(best, key=lambda k: (-best[k][0], best[k][1]))
        rest = sorted((k for k in cands if k not in best), key=lambda k: cands[k].value)
        return [
            (k, best[k][0] if k in best else 0, best[k][1] if k in best else cands[k].value, cands.get(k))
            for k in ranked + rest
        ]

    def finalists(self, k: int) -> list:
        """The top `k` distinct subnets of the ranking, for the final retrain beside the baseline."""
        from ..final import Finalist

        done, out, seen = self.store.completed(), [], set()
        for key, rung, value, _ in self.ranking():
            subnet = self._subnet_key(key)
            if subnet in seen:
                continue
            seen.add(subnet)
            origin = f"halving rung {rung}" if rung else f"proxy rank {len(out) + 1}"
            found = {"score": value, "rung": rung, "window_ne": cands_attr(done, key, "window_ne")}
            out.append(Finalist(Arch.from_json(key), origin, found))
            if len(out) == k:
                break
        return out

    # -- report -----------------------------------------------------------------------------
    def summary(self) -> dict:
        done = self.store.completed()
        if not done:
            raise RksError("the search finished no candidate")
        ranked = self.ranking()
        best_key = ranked[0][0]
        base = self.store.completed(BASELINE)
        return {
            "study": self.store.name,
            "storage": self.store.url,
            "evaluated": len(done),
            "best": {
                "arch": json.loads(best_key),
                "score": ranked[0][2],
                "rung": ranked[0][1],
                "window_ne": cands_attr(done, best_key, "window_ne"),
                "flops": cands_attr(done, best_key, "flops"),
            },
            "baseline": {"window_ne": base[0].user_attrs["window_ne"], "flops": base[0].user_attrs["flops"]}
            if base
            else None,
            "flops_max": self.cfg.flops_cap,
            "pareto": pareto(done),
            "finalists": [{"rung": r, "score": s, "arch": json.loads(k)} for k, r, s, _ in ranked[: self.cfg.halving]],
        }


_LIVE = ("COMPLETE", "RUNNING", "WAITING")  # trial states that hold a candidate: finished or under way


def cands_attr(done, key, attr):
    for t in done:
        if t.user_attrs["arch"] == key:
            return t.user_attrs[attr]
    return None
