"""Progress of a long run: a tqdm bar on a terminal; elsewhere (a log file, CI, `2>run.log`) one plain line
to stderr every `LINE_SECONDS`, so a twelve-minute search is not silent for twelve minutes."""

from __future__ import annotations

import sys
import time

LINE_SECONDS = 30.0


class Progress:
    """`with Progress(total, desc, unit, enabled) as bar: bar.update(n)`. Disabled (`--json`, a proxy run
    inside a search) it does nothing."""

    def __init__(self, total: int, desc: str, unit: str, enabled: bool = True, stream=None):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.bar = None
        self.n = 0
        self.started = self.last = time.perf_counter()
        if enabled and _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, leave=False, mininterval=0.5, file=self.stream)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.perf_counter() - self.last >= LINE_SECONDS:
            self.last = time.perf_counter()
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = self.n / self.total if self.total else 1.0
        left = f", about {_duration(elapsed * (1 - done) / done)} left" if 0 < done < 1 else ""
        return f"{self.desc}: {self.n:,}/{self.total:,} {self.unit} ({100 * done:.0f}%) in {_duration(elapsed)}{left}"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
