"""Preprocessing a Criteo-format file, the row-at-a-time path beside the columnar one (pyarrow), in one run:
rows/s and peak RSS of a fresh process each, on files made on the fly by repeating the shared criteo-8k
sample (or `--sample FILE`), deleted afterwards.

    python benchmarks/bench_data.py [--rows 200000 2000000] [--sample ../shared/data/criteo-8k/train.txt]
        [--out docs/results/bench_data.txt]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def probe(path: str) -> None:
    """One preprocessing in this fresh process: seconds and the peak RSS (VmHWM) as JSON."""
    from rankitect_dsl.data.preprocess import load_dataset
    from rankitect_dsl.data.sources import CriteoSource

    t0 = time.perf_counter()
    data = load_dataset(CriteoSource(path))
    seconds = time.perf_counter() - t0
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "rows": data.n, "peak_mb": peak / 1024}))


def run(path: Path, row_path: bool) -> dict:
    cache = tempfile.mkdtemp(prefix="bench-data-")
    env = dict(os.environ, RKS_CACHE=cache, RKS_ROW_PREPROCESS="1" if row_path else "0")
    out = subprocess.run([sys.executable, __file__, "--probe", str(path)], capture_output=True, text=True, env=env)
    shutil.rmtree(cache)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    return json.loads(out.stdout)


def make(sample: Path, rows: int, folder: Path) -> Path:
    lines = sample.read_text().splitlines(keepends=True)
    path = folder / f"criteo-{rows}.txt"
    with open(path, "w") as out:
        for k in range(rows):
            out.write(lines[k % len(lines)])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    ap.add_argument("--sample", default=str(ROOT.parent / "shared/data/criteo-8k/train.txt"))
    ap.add_argument("--out")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.probe)
    lines = [f"{'rows':>10} {'path':<8} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'speed-up':>9}"]
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.rows:
            path = make(Path(args.sample), rows, Path(folder))
            old, new = run(path, True), run(path, False)
            for name, r in (("rows", old), ("columnar", new)):
                lines.append(
                    f"{rows:>10,} {name:<8} {r['seconds']:>8.1f} {rows / r['seconds']:>10,.0f} {r['peak_mb']:>12,.0f} "
                    f"{old['seconds'] / r['seconds']:>8.1f}x"
                )
            path.unlink()
            print("\n".join(lines[-2:]), flush=True)
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
