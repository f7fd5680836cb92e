"""Local search from the production model (`--method local`): simple local search is a strong NAS baseline
(White, Nolen and Savani, 2021, "Exploring the loss landscape in neural architecture search"), and a tuned
model's improvements live among its neighbours (`neighbours.py`).

Start at the baseline, trained on every paired seed. Visit its neighbours within the FLOPs cap in the order
of a cheap prior — the predictor ensemble fitted to what has been trained so far, a seeded shuffle before
there is enough of it — and train each by the final trainer with the incumbent's seeds, one at a time
(racing): a candidate that is not ahead of the incumbent on the mean of the seeds seen so far gets no more,
and one that stays ahead on every seed is taken when its mean paired gain on the validation slice beats
`z` standard errors of the paired noise (Student's t while the noise is estimated from few seeds). First
improvement: the next incumbent's neighbourhood is visited from the start. Stops at the budget (candidates
visited) or at a local optimum (no neighbour left).

The algorithm only asks `fits(requests)` for (arch, seed) results: the command line's `fits` trains them,
in parallel under `--jobs`, and keeps every one in the study store, so a resumed search replays the same
decisions from what is stored and goes on where it stopped; a test's `fits` is scripted."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ...core.arch import Arch
from .neighbours import Move, neighbours

PRIOR_MIN = 4  # archs trained before the predictor orders the neighbours
RERANK = 4  # visits between two fits of the predictor
NOISE_FLOOR = 1e-4  # the smallest paired noise assumed (NE), so an exactly repeatable trainer still needs a gain


@dataclass
class Visit:
    """One candidate tried against the incumbent of its step: its paired differences, seed by seed."""

    step: int
    move: Move
    diffs: list
    accepted: bool = False

    @property
    def mean(self) -> float:
        return statistics.mean(self.diffs)


@dataclass
class Step:
    """An incumbent on the path: the move that reached it and its validation NE on each paired seed."""

    arch: Arch
    key: str
    flops: int
    move: str
    val_ne: list
    gain: Optional[float] = None  # mean paired gain over the previous incumbent (negative is better)


@dataclass
class LocalSearch:
    space: object
    fits: Callable  # [(arch, seed), …] → [{"val_ne": …}, …] in the same order
    seeds: list
    budget: int
    cap: Optional[float] = None
    z: float = 2.0
    seed: int = 0
    batch: int = 1  # candidates whose first seed is asked for at once (`--jobs`)
    say: Callable = lambda text: None
    path: list = field(default_factory=list)
    visits: list = field(default_factory=list)
    stopped: str = ""

    def run(self) -> "LocalSearch":
        space = self.space
        base = space.baseline
        self.path = [Step(base, space.subnet_key(base), space.flops(base), "baseline", self._ne(base, self.seeds))]
        self._points = {self.path[0].key: (space.encode(base), self.path[0].val_ne[0])}
        while True:
            inc = self.path[-1]
            tried = {v.move.key for v in self.visits} | {s.key for s in self.path}
            moves = [m for m in neighbours(space, space.encode(inc.arch), self.cap) if m.key not in tried]
            if not moves:
                self.stopped = "local optimum: no neighbour of the incumbent is left to try"
                return self
            if self._step(moves):
                continue
            if len(self.visits) >= self.budget:
                self.stopped = f"budget: {self.budget} candidates visited"
                return self
            self.stopped = "local optimum: no neighbour of the incumbent beats it"
            return self

    def _step(self, moves: list[Move]) -> bool:
        """Visit `moves` in the prior's order until one is taken (True) or they or the budget run out."""
        left, since_rank = list(moves), RERANK
        while left and len(self.visits) < self.budget:
            if since_rank >= RERANK:
                left, since_rank = self._order(left), 0
            batch = left[: min(self.batch, self.budget - len(self.visits))]
            left = left[len(batch) :]
            self.fits([(self.space.decode(m.vector), self.seeds[0]) for m in batch])  # asked together
            for move in batch:
                since_rank += 1
                if self._race(move):
                    return True
        return False

    def _race(self, move: Move) -> bool:
        inc = self.path[-1]
        arch = self.space.decode(move.vector)
        visit = Visit(len(self.path) - 1, move, [])
        self.visits.append(visit)
        runs = []
        for k, seed in enumerate(self.seeds):
            runs.append(self._ne(arch, [seed])[0])
            visit.diffs.append(runs[-1] - inc.val_ne[k])
            if k == 0:
                self._points[move.key] = (list(move.vector), runs[0])
            if visit.mean >= 0:
                self.say(f"  {move.text}: {visit.mean:+.4f} after {k + 1} seed(s), not ahead")
                return False
        bar = self.bar()
        if visit.mean + bar >= 0:
            self.say(f"  {move.text}: {visit.mean:+.4f}, within the noise (a gain must beat {bar:.4f})")
            return False
        visit.accepted = True
        self.path.append(Step(arch, move.key, move.flops, move.text, runs, visit.mean))
        self.say(f"moved: {move.text}: {visit.mean:+.4f} on the validation slice (bar {bar:.4f}), FLOPs {move.flops:,}")
        return True

    def noise(self) -> tuple[float, int]:
        """(σ, dof): the standard deviation of one paired difference, pooled over every candidate raced on
        several seeds (the one being judged included), never below `NOISE_FLOOR`, and its degrees of freedom."""
        raced = [v.diffs for v in self.visits if len(v.diffs) > 1]
        dof = sum(len(d) - 1 for d in raced)
        var = sum(statistics.variance(d) * (len(d) - 1) for d in raced) / dof if dof else 0.0
        return max(math.sqrt(var), NOISE_FLOOR), dof

    def bar(self) -> float:
        """The gain a candidate raced on every seed must beat: `z` standard errors of its mean paired
        difference, `z` widened to Student's t at the pooled degrees of freedom, so the first candidates,
        judged on a noise estimate of few seeds, need more."""
        sigma, dof = self.noise()
        return t_quantile(self.z, dof) * sigma / math.sqrt(len(self.seeds))

    def _ne(self, arch: Arch, seeds) -> list:
        return [r["val_ne"] for r in self.fits([(arch, s) for s in seeds])]

    def _order(self, moves: list[Move]) -> list[Move]:
        """The prior: the predictor's optimistic NE once `PRIOR_MIN` archs are trained, else the single
        moves before the compound ones, each in a seeded shuffle."""
        from .predictor import Predictor

        rng = np.random.default_rng([self.seed, len(self.visits), len(self.path)])
        if len(self._points) < PRIOR_MIN:
            singles = [m for m in moves if not m.compound]
            compounds = [m for m in moves if m.compound]
            return [group[k] for group in (singles, compounds) for k in rng.permutation(len(group))]
        vectors, values = zip(*self._points.values())
        predictor = Predictor(self.space, seed=int(rng.integers(1 << 30))).fit(np.array(vectors), np.array(values))
        predicted = predictor.predict(np.array([m.vector for m in moves]))
        return [moves[k] for k in np.argsort(predicted, kind="stable")]

    # -- what the search found ----------------------------------------------------------------
    @property
    def incumbent(self) -> Step:
        return self.path[-1]

    def runners_up(self) -> list[Visit]:
        """Candidates raced on every seed that were not taken, best mean paired difference first."""
        full = [v for v in self.visits if len(v.diffs) == len(self.seeds) and not v.accepted]
        return sorted(full, key=lambda v: v.mean)

    def summary(self) -> dict:
        return {
            "evaluated": len(self.visits),
            "stopped": self.stopped,
            "seeds": list(self.seeds),
            "z": self.z,
            "noise": self.noise()[0],
            "bar": self.bar(),
            "path": [
                {
                    "arch": s.arch.to_dict(),
                    "flops": s.flops,
                    "move": s.move,
                    "val_ne": statistics.mean(s.val_ne),
                    "val_ne_seeds": s.val_ne,
                    "gain": s.gain,
                }
                for s in self.path
            ],
            "visits": [
                {"step": v.step, "move": v.move.text, "flops": v.move.flops, "diffs": v.diffs, "accepted": v.accepted}
                for v in self.visits
            ],
        }


def t_quantile(z: float, dof: int) -> float:
    """Student's t quantile at the one-sided level of the normal's `z` (Cornish-Fisher, three terms: within 4%
    of the exact value at 2 degrees of freedom, closer beyond); `z` itself without an estimate (dof 0)."""
    if dof <= 0:
        return z
    return (
        z
        + (z**3 + z) / (4 * dof)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * dof**3)
    )
