"""Draws docs/editor.png: what an editor shows from `rks lsp` on a space with a mistake. A pygls
LanguageClient opens the file, collects the server's diagnostics and a hover, and this page lays them out
over the Pygments-highlighted source (the squiggle at the diagnostic's range, the hover box under the
hovered name); headless Chromium takes the picture.

    python editors/screenshot.py [--out docs/editor.png]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient
from pygments import highlight
from pygments.formatters import HtmlFormatter

from rankitect_dsl.lsp.lexer import RksLexer

ROOT = Path(__file__).resolve().parent.parent
MISTAKE = ("from bottom2, dot_comp, dot_raw", "from bottom2, dot_comp, dot_rwa")


async def ask_server(path: Path, text: str):
    client = LanguageClient("screenshot", "1")
    published: asyncio.Queue = asyncio.Queue()
    client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)(lambda params: published.put_nowait(params.diagnostics))
    await client.start_io(sys.executable, "-m", "rankitect_dsl.cli", "lsp")
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    uri = path.resolve().as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "rks", 1, path.read_text())))
    await published.get()  # the shipped space checks; then the mistake is typed, as in an editor
    client.text_document_did_change(
        T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(2, uri), [T.TextDocumentContentChangeWholeDocument(text)]
        )
    )
    diagnostics = await published.get()
    line = next(k for k, s in enumerate(text.splitlines()) if s.startswith("choice top3"))
    hovered = T.Position(line, len("choice "))
    answer = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), hovered))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return diagnostics, hovered, answer.contents.value


def page(text: str, diagnostics, hovered: T.Position, hover_md: str) -> str:
    lines = text.splitlines()
    rows = []
    for k, line in enumerate(lines):
        code = highlight(line, RksLexer(), HtmlFormatter(nowrap=True)).rstrip("\n")
        marks = "".join(
            f'<div class="squiggle" style="left:{d.range.start.character}ch;'
            f'width:{max(1, d.range.end.character - d.range.start.character)}ch"></div>'
            for d in diagnostics
            if d.range.start.line == k
        )
        rows.append(f'<div class="row"><span class="no">{k + 1}</span><span class="code">{code}{marks}</span></div>')
        for d in diagnostics:
            if d.range.start.line == k:
                rows.append(f'<div class="diag">✖ {html.escape(d.message)}</div>')
        if k == hovered.line:
            body = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(hover_md))
            body = re.sub(r"`(.+?)`", r"<code>\1</code>", body).replace("\n", "<br>")
            rows.append(f'<div class="hover" style="margin-left:{hovered.character + 5}ch">{body}</div>')
    style = HtmlFormatter(style="default").get_style_defs(".code")
    return f"""<!doctype html><meta charset="utf-8"><style>
body {{ font: 13px/1.45 'DejaVu Sans Mono', monospace; background: #fff; margin: 12px; width: 1250px; }}
.row {{ white-space: pre; position: relative; }} .no {{ color: #999; display: inline-block; width: 4ch; }}
.code {{ position: relative; }}
.squiggle {{ position: absolute; bottom: -2px; height: 3px;
  background: repeating-linear-gradient(135deg, #e51400 0 2px, transparent 2px 4px); }}
.diag {{ color: #b00; margin-left: 4ch; font-style: italic; white-space: pre-wrap; }}
.hover {{ border: 1px solid #c8c8c8; background: #f3f3f3; padding: 6px 10px; width: 95ch; white-space: normal;
  box-shadow: 0 2px 8px rgba(0,0,0,.2); margin-top: 2px; margin-bottom: 4px; }}
{style}
</style>{"".join(rows)}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "editor.png"))
    args = ap.parse_args()
    path = ROOT / "spaces" / "dlrm.rks"
    text = path.read_text().replace(*MISTAKE)
    diagnostics, hovered, hover_md = asyncio.run(ask_server(path, text))
    with tempfile.TemporaryDirectory() as tmp:
        html_path = Path(tmp) / "editor.html"
        html_path.write_text(page(text, diagnostics, hovered, hover_md))
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp}/profile",
                "--hide-scrollbars",
                "--window-size=1290,900",
                f"--screenshot={args.out}",
                html_path.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {args.out}: {len(diagnostics)} diagnostic(s) and the hover of `top3`")


if __name__ == "__main__":
    main()
