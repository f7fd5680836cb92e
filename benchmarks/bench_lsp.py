"""How long `rks lsp` takes to check a space after an edit: in process (`analyse`, what every change runs)
and end to end (a didChange sent by pygls's LanguageClient until its diagnostics arrive), after warm-up.

    python benchmarks/bench_lsp.py [--repeats 30] [--out docs/results/bench_lsp.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient

from rankitect_dsl.lsp.document import analyse

ROOT = Path(__file__).resolve().parent.parent
SPACES = ["rankitect_hand", "rankitect", "dhen4"]


def in_process(text: str, repeats: int) -> list[float]:
    analyse(text, "warm.rks")
    out = []
    for k in range(repeats):
        edited = text + f"\n# edit {k}\n"
        t = time.perf_counter()
        analysis = analyse(edited, "bench.rks")
        out.append(time.perf_counter() - t)
        assert not analysis.diagnostics
    return out


async def round_trips(path: Path, repeats: int) -> list[float]:
    client = LanguageClient("bench", "1")
    arrived = asyncio.Event()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params):
        arrived.set()

    await client.start_io(sys.executable, "-m", "rankitect_dsl.cli", "lsp")
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri, text = path.resolve().as_uri(), path.read_text()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "rks", 1, text)))
    await arrived.wait()
    out = []
    for k in range(repeats + 3):  # the first three warm the server up
        arrived.clear()
        t = time.perf_counter()
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(k + 2, uri),
                [T.TextDocumentContentChangeWholeDocument(text + f"\n# edit {k}\n")],
            )
        )
        await arrived.wait()
        if k >= 3:
            out.append(time.perf_counter() - t)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "bench_lsp.json"))
    args = ap.parse_args()
    rows = []
    for name in SPACES:
        path = ROOT / "spaces" / f"{name}.rks"
        local = in_process(path.read_text(), args.repeats)
        trips = asyncio.run(round_trips(path, args.repeats))
        row = {
            "space": name,
            "check_ms_median": 1000 * statistics.median(local),
            "check_ms_p90": 1000 * sorted(local)[int(0.9 * len(local))],
            "round_trip_ms_median": 1000 * statistics.median(trips),
            "round_trip_ms_p90": 1000 * sorted(trips)[int(0.9 * len(trips))],
        }
        rows.append(row)
        print(
            f"{name:<16} check {row['check_ms_median']:6.1f} ms (p90 {row['check_ms_p90']:6.1f})   "
            f"edit → diagnostics {row['round_trip_ms_median']:6.1f} ms (p90 {row['round_trip_ms_p90']:6.1f})"
        )
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
