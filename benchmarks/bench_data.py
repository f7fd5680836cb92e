"""Preprocessing on the columnar engine (pyarrow): rows/s and peak RSS of a fresh process each, on files
made on the fly and deleted afterwards — a Criteo-format file repeating the shared criteo-8k sample, and
an avazu-format table (`table:` with schemas/avazu-9k.json: a header, 21 categoricals, 5 running counts)
repeating avazu-9k's train.csv. docs/results/bench_data.txt holds the run made while the row-at-a-time
path was still in the tree, the two side by side; that path is gone (tests keep its arrays' digests).
`--delimiter-rows` then times the same avazu rows tab-separated and `::`-separated (MovieLens's layout, which
pyarrow reads through a one-byte stand-in), each twice in turn, and prints the ratio of the best times.

    python benchmarks/bench_data.py [--rows 200000 2000000 20000000] [--table-rows 200000 2000000]
                                    [--delimiter-rows 2000000]
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


AVAZU_SCHEMA = ROOT / "schemas/avazu-9k.json"


def probe(spec: str, schema: str) -> None:
    """One preprocessing in this fresh process: seconds and the peak RSS (VmHWM) as JSON."""
    from rankitect_dsl.data.preprocess import load_dataset
    from rankitect_dsl.data.sources import parse_data_spec

    source = parse_data_spec(spec, schema if spec.startswith("table:") else None)
    t0 = time.perf_counter()
    data = load_dataset(source)
    seconds = time.perf_counter() - t0
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "rows": data.n, "peak_mb": peak / 1024}))


def run(spec: str, schema: Path = AVAZU_SCHEMA) -> dict:
    cache = tempfile.mkdtemp(prefix="bench-data-")
    env = dict(os.environ, RKS_CACHE=cache)
    argv = [sys.executable, __file__, "--probe", spec, "--probe-schema", str(schema)]
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    shutil.rmtree(cache)
    if out.returncode != 0:
        sys.exit(out.stderr[-2000:])
    return json.loads(out.stdout)


def make(sample: Path, rows: int, path: Path, header: bool) -> Path:
    """`rows` rows repeating the sample's (its header first when `header`)."""
    lines = sample.read_text().splitlines(keepends=True)
    head, body = (lines[:1], lines[1:]) if header else ([], lines)
    with open(path, "w") as out:
        out.writelines(head)
        for at in range(0, rows, len(body)):
            out.writelines(body[: rows - at])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[200_000, 2_000_000, 20_000_000])
    ap.add_argument("--table-rows", type=int, nargs="*", default=[200_000, 2_000_000])
    ap.add_argument("--criteo", default=str(ROOT.parent / "shared/data/criteo-8k/train.txt"))
    ap.add_argument("--avazu", default=str(ROOT.parent / "shared/data/avazu-9k/train.csv"))
    ap.add_argument("--delimiter-rows", type=int, nargs="*", default=[2_000_000])
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    ap.add_argument("--probe-schema", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe(args.probe, args.probe_schema)
    print("{:<7} {:>11} {:>8} {:>10} {:>12}".format("format", "rows", "seconds", "rows/s", "peak RSS MB"))
    runs = [("criteo", n, Path(args.criteo), False) for n in args.rows]
    runs += [("avazu", n, Path(args.avazu), True) for n in args.table_rows]
    for missing in {str(sample) for _, _, sample, _ in runs if not sample.exists()}:
        sys.exit(f"no sample file {missing} (the shared data, or pass --criteo / --avazu)")
    with tempfile.TemporaryDirectory() as folder:
        for kind, rows, sample, header in runs:
            path = make(sample, rows, Path(folder) / f"{kind}-{rows}.{'csv' if header else 'txt'}", header)
            r = run(f"{'table' if header else 'criteo'}:{path}")
            path.unlink()
            print(f"{kind:<7} {rows:>11,} {r['seconds']:>8.1f} {rows / r['seconds']:>10,.0f} {r['peak_mb']:>12,.0f}")
        for rows in args.delimiter_rows:
            compare_delimiters(Path(args.avazu), rows, Path(folder))


def compare_delimiters(sample: Path, rows: int, folder: Path) -> None:
    """The same avazu rows tab- and `::`-separated, each preprocessed twice in turn in fresh processes."""
    csv_path = make(sample, rows, folder / "avazu.csv", True)
    runs = {}
    for name, sep in (("tab", "\t"), ("::", "::")):
        path = folder / f"avazu-{len(sep)}.txt"
        with open(csv_path) as src, open(path, "w") as out:
            for line in src:
                out.write(line.replace(",", sep))
        schema = folder / f"schema-{len(sep)}.json"
        schema.write_text(json.dumps(json.loads(AVAZU_SCHEMA.read_text()) | {"delimiter": sep}))
        runs[name] = (f"table:{path}", schema)
    csv_path.unlink()
    seconds = {name: [] for name in runs}
    for _ in range(2):
        for name in runs:
            seconds[name].append(run(*runs[name])["seconds"])
    best = {name: min(times) for name, times in seconds.items()}
    for name in runs:
        print(f"{name:<7} {rows:>11,} {best[name]:>8.1f} {rows / best[name]:>10,.0f}  (best of 2)")
    print(f"'::' / tab: {best['::'] / best['tab']:.2f}x")


if __name__ == "__main__":
    main()
