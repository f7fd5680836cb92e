"""How long the checker takes to refuse inputs built to be expensive: numbers and ranges past the limits, a
supernet past the parameter ceiling, a file past the size ceiling. Each is refused before any work grows
with the number it names; the tests check what is refused, this measures how fast (median of repeats,
after a warm-up), beside checking tiny.rks itself.

    python benchmarks/bench_refusals.py [--repeats 5] [--out docs/results/bench_refusals.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rankitect_dsl import RksError, load_source, load_space

ROOT = Path(__file__).resolve().parent.parent
TINY = (ROOT / "spaces" / "tiny.rks").read_text()
HUGE_INT = "9" * 320
CASES = {
    "tiny.rks (accepted)": TINY,
    "a 320-digit dim": TINY.replace("dim linear 4, 8", f"dim linear 4, {HUGE_INT}"),
    "a scale of 10^9 steps": TINY.replace("dim linear 4, 8", "dim linear scale 8 by 0.5 .. 1.5 steps 1000000000"),
    "a range of 10^320 choices": TINY.replace("choice c3 {", f"choice c3 .. c{HUGE_INT} {{"),
    "a 4e9-parameter supernet": TINY.replace("dense[4]", "dense[1000000]")
    .replace("dim linear 4, 8", "dim linear 4, 4096")
    .replace("dim 8\n", "dim 4096\n"),
}


def seconds(run, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _load(source: str):
    def run():
        try:
            load_source(source, "bench.rks")
        except RksError:
            pass

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = {name: seconds(_load(source), args.repeats) for name, source in CASES.items()}
    with tempfile.TemporaryDirectory() as folder:
        huge = Path(folder) / "huge.rks"
        huge.write_text(TINY.replace("dim linear 4, 8", "dim linear " + ", ".join(["4"] * 600_000)))

        def oversized():
            try:
                load_space(huge)
            except RksError:
                pass

        results["a 3.6 MB file"] = seconds(oversized, args.repeats)
    for name, value in results.items():
        print(f"{name:<28} {1000 * value:9.2f} ms")
    if args.out:
        args.out.write_text(json.dumps({"repeats": args.repeats, "median_seconds": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
