"""`rks lsp`: the language server, over stdio, on pygls. Each handler turns protocol types into calls on
`document`, `hover` and `completion` and back; none of them knows the language."""

from __future__ import annotations

import sys
from typing import Optional
from urllib.parse import unquote, urlparse

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from ..core.errors import Diagnostic, RksError, Span
from ..lang.formatter import format_source
from ..space import Space
from .completion import complete
from .document import Analysis, NameIndex, analyse
from .hover import hover
from .stream import IGNORED, GuardedInput, log

_KINDS = {
    "space": T.SymbolKind.Namespace,
    "input": T.SymbolKind.Variable,
    "choice": T.SymbolKind.Class,
    "layer": T.SymbolKind.Module,
    "baseline": T.SymbolKind.Object,
}
_ITEM_KINDS = {
    "keyword": T.CompletionItemKind.Keyword,
    "block": T.CompletionItemKind.Function,
    "input": T.CompletionItemKind.Variable,
    "choice": T.CompletionItemKind.Class,
    "layer": T.CompletionItemKind.Module,
    "value": T.CompletionItemKind.Value,
}


class RksServer(LanguageServer):
    """Keeps each open document's latest analysis, and its last space and names that checked or parsed:
    hovers and completion stay useful while the text being typed is broken."""

    def __init__(self, version: str):
        super().__init__("rks", version)
        self.analyses: dict[str, Analysis] = {}
        self.good_space: dict[str, Space] = {}
        self.good_index: dict[str, NameIndex] = {}

    def open_document(self, uri: str, what: str):
        """The open document at `uri`; None, logged in one line, for one the client never opened (pygls would
        read it from disk)."""
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            log.warning("rks lsp: %s %s, which is not open: ignored", what, uri)
        return doc

    def refresh(self, uri: str) -> None:
        doc = self.open_document(uri, "checking")
        if doc is None:
            return
        analysis = analyse(doc.source, _filename(uri))
        self.analyses[uri] = analysis
        if analysis.space is not None:
            self.good_space[uri] = analysis.space
        if analysis.index is not None:
            self.good_index[uri] = analysis.index
        lines = doc.source.splitlines() or [""]
        diagnostics = [_diagnostic(uri, d, lines) for d in analysis.diagnostics]
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, version=doc.version, diagnostics=diagnostics)
        )

    def forget(self, uri: str) -> None:
        for store in (self.analyses, self.good_space, self.good_index):
            store.pop(uri, None)
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _filename(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _utf16(line: str, column: int) -> int:
    """A 0-based code-point column as the protocol counts it, in UTF-16 code units."""
    return len(line[:column].encode("utf-16-le")) // 2


def _codepoint(line: str, character: int) -> int:
    units = 0
    for k, ch in enumerate(line):
        if units >= character:
            return k
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def _range(span: Optional[Span], lines: list[str]) -> T.Range:
    """A span as a protocol range, clamped into the document."""
    if span is None:
        return T.Range(T.Position(0, 0), T.Position(0, 0))
    row = min(max(span.line, 1), len(lines)) - 1
    text = lines[row]
    start = min(max(span.column - 1, 0), len(text))
    end = min(start + max(span.length, 0), len(text))
    return T.Range(T.Position(row, _utf16(text, start)), T.Position(row, _utf16(text, end)))


def _diagnostic(uri: str, d: Diagnostic, lines: list[str]) -> T.Diagnostic:
    where = _range(d.span, lines)
    related = [T.DiagnosticRelatedInformation(T.Location(uri, where), f"hint: {d.hint}")] if d.hint else None
    data = None
    if d.fix is not None:
        fix_range = _range(d.fix.span, lines)
        data = {"title": d.fix.title, "text": d.fix.text, "range": _range_json(fix_range)}
    return T.Diagnostic(
        range=where,
        message=d.message + (f"\nhint: {d.hint}" if d.hint else ""),
        severity=T.DiagnosticSeverity.Error,
        source="rks",
        related_information=related,
        data=data,
    )


def _range_json(r: T.Range) -> dict:
    return {
        "start": {"line": r.start.line, "character": r.start.character},
        "end": {"line": r.end.line, "character": r.end.character},
    }


def _position(lines: list[str], pos: T.Position) -> tuple[int, int]:
    """A protocol position as the compiler's 1-based line and column."""
    line = lines[pos.line] if pos.line < len(lines) else ""
    return pos.line + 1, _codepoint(line, pos.character) + 1


def did_open(ls: RksServer, params: T.DidOpenTextDocumentParams):
    ls.refresh(params.text_document.uri)


def did_change(ls: RksServer, params: T.DidChangeTextDocumentParams):
    ls.refresh(params.text_document.uri)


def did_close(ls: RksServer, params: T.DidCloseTextDocumentParams):
    ls.forget(params.text_document.uri)


def on_hover(ls: RksServer, params: T.HoverParams) -> Optional[T.Hover]:
    uri = params.text_document.uri
    analysis = ls.analyses.get(uri)
    if analysis is None:
        return None
    lines = analysis.source.splitlines() or [""]
    found = hover(analysis, ls.good_space.get(uri), *_position(lines, params.position))
    if found is None:
        return None
    return T.Hover(T.MarkupContent(T.MarkupKind.Markdown, found.markdown), _range(found.span, lines))


def target(ls: RksServer, uri: str, position: T.Position):
    analysis = ls.analyses.get(uri)
    index = ls.good_index.get(uri)
    if analysis is None or index is None:
        return None, None, []
    lines = analysis.source.splitlines() or [""]
    ref = index.at(*_position(lines, position))
    if ref is None or ref.kind not in ("name", "input", "choice", "layer") or ref.name not in index.defs:
        return None, index, lines
    return ref, index, lines


def definition(ls: RksServer, params: T.DefinitionParams) -> Optional[T.Location]:
    uri = params.text_document.uri
    ref, index, lines = target(ls, uri, params.position)
    if ref is None:
        return None
    return T.Location(uri, _range(index.defs[ref.name].span, lines))


def references(ls: RksServer, params: T.ReferenceParams) -> Optional[list[T.Location]]:
    uri = params.text_document.uri
    ref, index, lines = target(ls, uri, params.position)
    if ref is None:
        return None
    spans = index.references(ref.name)
    if params.context.include_declaration:
        spans = [index.defs[ref.name].span] + spans
    return [T.Location(uri, _range(s, lines)) for s in dict.fromkeys(spans)]


def symbols(ls: RksServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    uri = params.text_document.uri
    index, analysis = ls.good_index.get(uri), ls.analyses.get(uri)
    if index is None or analysis is None:
        return []
    lines = analysis.source.splitlines() or [""]
    out = []
    for s in index.symbols:
        start, end = _range(s.start, lines).start, _range(s.end, lines).end
        whole = T.Range(start, end) if (end.line, end.character) >= (start.line, start.character) else None
        name = _range(s.span, lines)
        out.append(T.DocumentSymbol(s.name, _KINDS[s.kind], whole or name, name, detail=s.kind))
    return out


def completion(ls: RksServer, params: T.CompletionParams) -> T.CompletionList:
    uri = params.text_document.uri
    doc = ls.open_document(uri, "completing in")
    if doc is None:
        return T.CompletionList(is_incomplete=False, items=[])
    lines = doc.source.split("\n")
    row = min(params.position.line, len(lines) - 1)
    before = "\n".join(lines[:row] + [lines[row][: _codepoint(lines[row], params.position.character)]])
    items = complete(before, ls.good_index.get(uri))
    return T.CompletionList(
        is_incomplete=False,
        items=[T.CompletionItem(i.label, kind=_ITEM_KINDS[i.kind], detail=i.detail or None) for i in items],
    )


def formatting(ls: RksServer, params: T.DocumentFormattingParams) -> Optional[list[T.TextEdit]]:
    uri = params.text_document.uri
    doc = ls.open_document(uri, "formatting")
    if doc is None:
        return None
    try:
        formatted = format_source(doc.source, _filename(uri))
    except RksError as err:
        ls.window_show_message(
            T.ShowMessageParams(T.MessageType.Warning, "rks fmt: not formatted: " + err.diagnostics[0].message)
        )
        return None
    if formatted == doc.source:
        return []
    lines = doc.source.split("\n")
    end = T.Position(len(lines) - 1, _utf16(lines[-1], len(lines[-1])))
    return [T.TextEdit(T.Range(T.Position(0, 0), end), formatted)]


def code_actions(ls: RksServer, params: T.CodeActionParams) -> list[T.CodeAction]:
    uri = params.text_document.uri
    actions = []
    for d in params.context.diagnostics:
        fix = d.data if isinstance(d.data, dict) else None
        if not fix or not {"title", "text", "range"} <= fix.keys():
            continue
        r = fix["range"]
        edit = T.TextEdit(
            T.Range(
                T.Position(r["start"]["line"], r["start"]["character"]),
                T.Position(r["end"]["line"], r["end"]["character"]),
            ),
            fix["text"],
        )
        actions.append(
            T.CodeAction(
                fix["title"],
                kind=T.CodeActionKind.QuickFix,
                diagnostics=[d],
                is_preferred=True,
                edit=T.WorkspaceEdit(changes={uri: [edit]}),
            )
        )
    return actions


FEATURES = [
    (T.TEXT_DOCUMENT_DID_OPEN, None, did_open),
    (T.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (T.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (T.TEXT_DOCUMENT_HOVER, None, on_hover),
    (T.TEXT_DOCUMENT_DEFINITION, None, definition),
    (T.TEXT_DOCUMENT_REFERENCES, None, references),
    (T.TEXT_DOCUMENT_DOCUMENT_SYMBOL, None, symbols),
    (
        T.TEXT_DOCUMENT_COMPLETION,
        T.CompletionOptions(trigger_characters=[" ", ","], resolve_provider=False),
        completion,
    ),
    (T.TEXT_DOCUMENT_FORMATTING, None, formatting),
    (T.TEXT_DOCUMENT_CODE_ACTION, T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix]), code_actions),
]


def build_server(version: str = "0") -> RksServer:
    server = RksServer(version)
    for feature, options, handler in FEATURES:
        server.feature(feature, options)(handler)
    server.feature(IGNORED)(lambda ls, params: None)  # what a refused message becomes (`stream.py`)
    return server


def serve(version: str) -> None:
    build_server(version).start_io(GuardedInput(sys.stdin.buffer))
