"""The language server driven as an editor drives it: pygls's LanguageClient starts `rks lsp` over stdio,
opens a shipped space, edits it, hovers, jumps, formats and closes."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import sys
from pathlib import Path

import pytest

from conftest import fuzzed, space_path

pytest.importorskip("pygls")
from lsprotocol import types as T  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402
from test_cost import measured_parts  # noqa: E402

from rankitect_dsl import load_space  # noqa: E402
from rankitect_dsl.core.names import choice_part  # noqa: E402
from rankitect_dsl.lsp.document import analyse  # noqa: E402

SHIPPED = sorted(Path(space_path("tiny")).parent.glob("*.rks"))


class Editor:
    """One `rks lsp` process and the notifications it sent, as an editor keeps them."""

    def __init__(self):
        self.client = LanguageClient("rks-test", "1")
        self.diagnostics: dict[str, list] = {}
        self.messages: list = []
        self.published = asyncio.Event()

        @self.client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params):
            self.diagnostics[params.uri] = list(params.diagnostics)
            self.published.set()

        @self.client.feature(T.WINDOW_SHOW_MESSAGE)
        def on_message(params):
            self.messages.append(params)

        @self.client.feature(T.WINDOW_LOG_MESSAGE)
        def on_log(params):
            self.messages.append(params)

    async def start(self):
        await self.client.start_io(sys.executable, "-m", "rankitect_dsl.cli", "lsp")
        result = await self.client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
        self.client.initialized(T.InitializedParams())
        return result

    async def stop(self):
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()

    async def settle(self, send) -> list:
        """Send a notification and wait for the diagnostics it causes."""
        self.published.clear()
        send()
        await asyncio.wait_for(self.published.wait(), 30)
        return self.diagnostics_now

    def open(self, uri: str, text: str):
        return self.settle(
            lambda: self.client.text_document_did_open(
                T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "rks", 1, text))
            )
        )

    def change(self, uri: str, text: str, version: int):
        self.uri_now = uri
        return self.settle(
            lambda: self.client.text_document_did_change(
                T.DidChangeTextDocumentParams(
                    T.VersionedTextDocumentIdentifier(version, uri),
                    [T.TextDocumentContentChangeWholeDocument(text)],
                )
            )
        )

    @property
    def diagnostics_now(self):
        return next(reversed(self.diagnostics.values()))


def run(scenario, timeout: float = 60):
    """Run a scenario against a fresh server; a hung request fails the test instead of hanging it."""

    async def main():
        editor = Editor()
        await editor.start()
        try:
            return await asyncio.wait_for(scenario(editor), timeout)
        finally:
            await asyncio.wait_for(editor.stop(), 10)

    return asyncio.run(main())


def position_of(text: str, needle: str, offset: int = 0) -> T.Position:
    k = text.index(needle) + offset
    line = text.count("\n", 0, k)
    return T.Position(line, k - (text.rfind("\n", 0, k) + 1))


DLRM = Path(space_path("dlrm"))
MISTAKES = [  # (what is broken, the edit, the text the diagnostic must cover)
    ("an unknown input", ("from bottom2, dot_comp, dot_raw", "from bottom2, dot_comp, dot_rwa"), "dot_rwa"),
    ("an unknown block", ("blocks linear", "blocks lienar"), "lienar"),
    ("a syntax error", ("output from", "output frm"), "frm"),
    ("a dim of 0", ("from dense fixed inputs dim linear 128", "from dense fixed inputs dim linear 0"), "0"),
    (
        "a baseline dim the space does not offer",
        (
            "top1     = linear(bottom2, dot_comp, dot_raw) dim 128",
            "top1     = linear(bottom2, dot_comp, dot_raw) dim 96",
        ),
        "96",
    ),
]


def test_open_mistakes_hover_definition_format_close():
    text = DLRM.read_text()
    space = load_space(DLRM)
    uri = DLRM.resolve().as_uri()

    async def scenario(ed: Editor):
        assert await ed.open(uri, text) == []
        version = 1
        for what, (old, new), covered in MISTAKES:
            assert old in text, what
            bad = text.replace(old, new, 1)
            version += 1
            diags = await ed.change(uri, bad, version)
            assert diags, what
            lines = bad.splitlines()
            hit = [
                d
                for d in diags
                if lines[d.range.start.line][d.range.start.character : d.range.end.character] == covered
            ]
            assert hit, (what, [(d.range, d.message) for d in diags])
            assert all(d.severity == T.DiagnosticSeverity.Error and d.source == "rks" for d in diags)
        version += 1
        assert await ed.change(uri, text, version) == []

        at = position_of(text, "choice top1", len("choice "))
        hover = await ed.client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), at))
        shown = hover.contents.value
        flops = measured_parts(space, space.baseline)[choice_part("top1")]  # FlopCounterMode on the subnet
        assert f"baseline {flops:,}" in shown, shown
        assert "B×128" in shown  # top1's linear block, dim 128, per the space's baseline

        use = position_of(text, "from bottom2, dot_comp, dot_raw", len("from "))
        found = await ed.client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(uri), use))
        decl = position_of(text, "choice bottom2", len("choice "))
        assert (found.range.start.line, found.range.start.character) == (decl.line, decl.character)

        messy = text.replace("choice top1     {", "choice   top1{", 1)
        version += 1
        await ed.change(uri, messy, version)
        edits = await ed.client.text_document_formatting_async(
            T.DocumentFormattingParams(T.TextDocumentIdentifier(uri), T.FormattingOptions(2, True))
        )
        assert len(edits) == 1 and apply(messy, edits[0]) == text  # the shipped file is the canonical layout

        version += 1
        await ed.change(uri, text.replace("output from", "output frm"), version)
        refused = await ed.client.text_document_formatting_async(
            T.DocumentFormattingParams(T.TextDocumentIdentifier(uri), T.FormattingOptions(2, True))
        )
        assert not refused

        closed = await ed.settle(
            lambda: ed.client.text_document_did_close(T.DidCloseTextDocumentParams(T.TextDocumentIdentifier(uri)))
        )
        assert closed == []

    run(scenario)


def apply(text: str, edit: T.TextEdit) -> str:
    lines = text.split("\n")

    def offset(p):
        return sum(len(x) + 1 for x in lines[: p.line]) + p.character

    return text[: offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end) :]


def test_quick_fixes_repair_an_unknown_name_and_a_missing_from():
    text = DLRM.read_text()
    uri = DLRM.resolve().as_uri()
    cases = [
        text.replace("from bottom2, dot_comp, dot_raw", "from bottom2, dot_cmp, dot_raw", 1),
        text.replace("choice top2     { blocks linear from gate1 fixed inputs", "choice top2     { blocks linear", 1),
    ]

    async def scenario(ed: Editor):
        await ed.open(uri, text)
        for version, bad in enumerate(cases, start=2):
            (diag,) = await ed.change(uri, bad, version)
            assert diag.related_information and diag.related_information[0].message.startswith("hint: ")
            actions = await ed.client.text_document_code_action_async(
                T.CodeActionParams(T.TextDocumentIdentifier(uri), diag.range, T.CodeActionContext(diagnostics=[diag]))
            )
            (action,) = actions
            assert action.kind == T.CodeActionKind.QuickFix
            (edit,) = action.edit.changes[uri]
            fixed = apply(bad, edit)
            assert await ed.change(uri, fixed, version + 10) == [], fixed

    run(scenario)


def _dim_product(text: str) -> int:
    """The size of a dims-only space read off its text: each `steps N` is N options, a layer's once per layer."""
    layer = text[text.index("layer ") : text.index("choice ")]
    per_layer = math.prod(int(n) for n in re.findall(r"steps (\d+)", layer))
    rest = math.prod(int(n) for n in re.findall(r"steps (\d+)", text[text.index("choice ") :]))
    return per_layer ** int(re.search(r"layers (\d+)", layer).group(1)) * rest


def test_hovers_references_outline_and_completion():
    path = Path(space_path("dhen"))
    text = path.read_text()
    uri = path.resolve().as_uri()

    async def scenario(ed: Editor):
        await ed.open(uri, text)
        doc = T.TextDocumentIdentifier(uri)

        async def hover_at(needle, offset=0):
            h = await ed.client.text_document_hover_async(T.HoverParams(doc, position_of(text, needle, offset)))
            return h.contents.value if h else None

        assert "B×26×16" in await hover_at("input sparse", len("input "))
        assert "transformer encoder" in await hover_at("attention")
        shown = await hover_at("space dhen", 1)
        assert f"{_dim_product(text):,} architectures" in shown
        assert "dhen1_attention" in await hover_at("layer dhen", len("layer "))

        refs = await ed.client.text_document_references_async(
            T.ReferenceParams(
                context=T.ReferenceContext(include_declaration=True),
                text_document=doc,
                position=position_of(text, "input sparse", len("input ")),
            )
        )
        lines = text.splitlines()
        assert {lines[r.range.start.line][r.range.start.character : r.range.end.character] for r in refs} == {"sparse"}
        assert len(refs) == 1 + sum(
            line.split("#")[0].count("sparse") for line in lines if not line.startswith("input")
        )

        symbols = await ed.client.text_document_document_symbol_async(T.DocumentSymbolParams(doc))
        assert [s.name for s in symbols][:2] == ["dhen", "dense"]
        assert {s.kind for s in symbols} >= {T.SymbolKind.Class, T.SymbolKind.Module, T.SymbolKind.Variable}

        async def labels(before):
            edited = before + "\n"
            await ed.change(uri, edited, 50 + len(before))
            row = edited.count("\n") - 1
            items = await ed.client.text_document_completion_async(
                T.CompletionParams(doc, T.Position(row, len(before.split("\n")[-1])))
            )
            return {i.label for i in items.items}

        head = text[: text.index("output from")]
        assert {"attention", "conv", "embed_fc"} <= await labels(head + "choice z { blocks ")
        assert {"sparse", "dense", "dhen"} <= await labels(head + "choice z { blocks linear from ")
        assert {"blocks", "from", "dim", "pair"} <= await labels(head + "choice z { blocks linear from dense ")
        assert {"choice", "layer", "output", "baseline"} <= await labels(head)

    run(scenario)


def mutations(text: str, rng: random.Random, n: int):
    """Seeded edits a person makes while typing: deletions, insertions, swaps, truncations, duplicates."""
    alphabet = "abcz_0189{}(),:=.#- \n"
    for _ in range(n):
        k = rng.randrange(len(text) + 1)
        op = rng.randrange(5)
        if op == 0:
            yield text[:k] + text[k + rng.randrange(1, 12) :]
        elif op == 1:
            yield text[:k] + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6))) + text[k:]
        elif op == 2:
            j = rng.randrange(len(text) + 1)
            a, b = sorted((k, j))
            yield text[:a] + text[b:] + text[a:b]
        elif op == 3:
            yield text[:k]
        else:
            lines = text.split("\n")
            r = rng.randrange(len(lines))
            yield "\n".join(lines[: r + 1] + lines[r:])


@pytest.mark.parametrize("path", fuzzed(SHIPPED))
def test_the_server_survives_seeded_edits(path):
    text = path.read_text()
    uri = path.resolve().as_uri()
    rng = random.Random(path.stem)

    async def scenario(ed: Editor):
        await ed.open(uri, text)
        version = 1
        for version, edited in enumerate(mutations(text, rng, 12), start=2):
            diags = await ed.change(uri, edited, version)
            lines = edited.split("\n")
            for d in diags:
                for p in (d.range.start, d.range.end):
                    assert 0 <= p.line < len(lines) and 0 <= p.character <= len(lines[p.line]), (d, edited)
            # the server published this version's findings, as `rks check` makes them, none dropped
            assert [d.message.split("\nhint: ")[0] for d in diags] == [
                d.message for d in analyse(edited, path.name).diagnostics
            ], edited
            spot = T.Position(rng.randrange(len(lines)), 0)
            spot.character = rng.randrange(len(lines[spot.line]) + 1)
            doc = T.TextDocumentIdentifier(uri)
            shown = await ed.client.text_document_hover_async(T.HoverParams(doc, spot))
            assert shown is None or shown.contents.value.strip(), spot
            items = await ed.client.text_document_completion_async(T.CompletionParams(doc, spot))
            assert items is None or all(i.label.strip() for i in items.items), spot
            found = await ed.client.text_document_definition_async(T.DefinitionParams(doc, spot))
            if found is not None:
                assert found.uri == uri and 0 <= found.range.start.line < len(lines), (spot, found)
        assert [m for m in ed.messages if m.type == T.MessageType.Error] == []
        assert await ed.change(uri, text, version + 1) == []  # the last good text checks clean again

    run(scenario)


def _framed(obj) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def test_bad_input_is_one_logged_line_and_the_server_keeps_serving():
    """A declared length no document could have (pygls would allocate it: a MemoryError), a body that is not
    JSON, and formatting a document never opened: each refused in one line on stderr, no traceback, and the
    requests after each still answered."""
    import subprocess

    hover = {"textDocument": {"uri": "file:///nowhere/x.rks"}, "position": {"line": 0, "character": 0}}
    fmt = {"textDocument": {"uri": "file:///nowhere/x.rks"}, "options": {"tabSize": 2, "insertSpaces": True}}
    stream = b"".join(
        [
            _framed({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}),
            _framed({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
            b"Content-Length: 99999999999\r\n\r\n" + json.dumps({"jsonrpc": "2.0", "method": "x"}).encode(),
            _framed({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": hover}),
            b"Content-Length: 7\r\n\r\n{nope!}",
            _framed({"jsonrpc": "2.0", "id": 3, "method": "textDocument/formatting", "params": fmt}),
            _framed({"jsonrpc": "2.0", "id": 4, "method": "shutdown"}),
            _framed({"jsonrpc": "2.0", "method": "exit"}),
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "rankitect_dsl.cli", "lsp"], input=stream, capture_output=True, timeout=120
    )
    answered = [int(i) for i in re.findall(rb'"id": ?(\d+)', proc.stdout)]
    assert answered == [1, 2, 3, 4], proc.stdout[-500:]
    err = proc.stderr.decode()
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 3, lines
    assert "99,999,999,999 bytes" in lines[0] and "not JSON" in lines[1] and "not open" in lines[2]
