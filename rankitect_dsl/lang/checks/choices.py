"""The choices: names (ranges expanded), blocks, candidate inputs by name or distance, dims, fixed inputs
and pairs; the output; and their order, each after what it reads (`core/graph.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ...core import limits as L
from ...core.blocks import PAPER_BLOCKS, REGISTRY, has_dim, is_multi_hot
from ...core.errors import RksError, Span
from ...core.graph import find_cycle, topological_order
from ...core.spec import ChoiceSpec
from .. import syntax as S
from .base import CheckBase, shown


@dataclass
class ChoiceBody:
    """What a choice's statements name, before the checks that need all of them."""

    blocks: Optional[list] = None  # None: no `blocks` statement
    candidates: list = field(default_factory=list)
    distances: dict = field(default_factory=dict)
    dims: dict = field(default_factory=dict)  # block → options (None where they were refused)
    fixed_inputs: bool = False
    pair: Optional[tuple] = None
    dropped: list = field(default_factory=list)  # distances that reach before the first choice
    bad_refs: bool = False  # a `from` name lost to an error
    refused: set = field(default_factory=set)  # blocks refused where they are named: their dims say nothing more


class ChoicesChecks(CheckBase):
    def second_row_block(self, name: S.Name, blocks: list[str]) -> bool:
        """A choice emits one row tensor: a second block that emits rows is refused where it is named."""
        if REGISTRY[name.text].output != "3d":
            return False
        first = next((b for b in blocks if REGISTRY[b].output == "3d"), None)
        if first is None:
            return False
        self.error(
            f"`{name.text}` and `{first}` both emit rows; a choice holds at most one block that does",
            name.span,
            "put each in its own choice (a `layer` runs several modules side by side)",
        )
        return True

    def dim_block(self, name: S.Name) -> bool:
        if not has_dim(name.text):
            self.error(
                f"block `{name.text}` has no searched dim",
                name.span,
                "its output width is the width of its right input",
            )
            return False
        return True

    def expand_range(self, decl: S.ChoiceDecl) -> list[S.Name]:
        if decl.last is None:
            return [decl.first]
        bounds = S.range_bounds(decl.first.text, decl.last.text)
        if bounds is None:
            self.error(
                "a choice range needs two names with one prefix and a number, "
                f"got `{decl.first.text} .. {decl.last.text}`",
                decl.last.span,
                "e.g. `choice c2 .. c9`",
            )
            return [decl.first]
        prefix, lo, hi = bounds
        if hi < lo:
            self.error(f"the choice range `{decl.first.text} .. {decl.last.text}` is empty", decl.last.span)
            return [decl.first]
        if hi - lo + 1 > L.MAX_CHOICES:
            self.error(
                f"the choice range `{shown(decl.first.text)} .. {shown(decl.last.text)}` holds {hi - lo + 1:,} "
                f"choices; a space may hold at most {L.MAX_CHOICES:,}",
                decl.last.span,
                self.ceiling_hint,
            )
            return [decl.first]
        return [S.Name(f"{prefix}{k}", decl.first.span) for k in range(lo, hi + 1)]

    def choices(self, items, input_names, default_dims) -> list[ChoiceSpec]:
        decls = [i for i in items if isinstance(i, S.ChoiceDecl)]
        names: list[tuple[S.Name, S.ChoiceDecl]] = []
        seen = set(input_names)
        for decl in decls:
            for name in self.expand_range(decl):
                if not self.ident(name, "choice name"):
                    self.invalid_names.add(name.text)
                    continue
                if name.text in seen:
                    self.error(f"duplicate name `{name.text}`", name.span, "every input and choice needs its own name")
                    continue
                if len(names) == L.MAX_CHOICES:  # the check ends at the first choice too many
                    self.error(f"a space may hold at most {L.MAX_CHOICES:,} choices", name.span, self.ceiling_hint)
                    raise RksError(self.diags, self.filename, self.source)
                seen.add(name.text)
                self.spans[name.text] = name.span
                names.append((name, decl))
        if not decls:
            self.error("the space has no choice", Span(1, 1), "add `choice c1 { … }`")
        order = [n.text for n, _ in names]
        known = set(order) | input_names
        out = []
        for i, (n, d) in enumerate(names):
            c = self.choice(i, n, d, order, known, input_names, default_dims)
            if c is None:
                self.invalid_names.add(n.text)  # reported; the baseline's use of it stays quiet
            else:
                out.append(c)
        return out

    def choice(self, index, name, decl, order, known, input_names, default_dims) -> Optional[ChoiceSpec]:
        body = self.choice_body(index, name, decl, order, known, input_names)
        if body.blocks is None:
            self.error(
                f"choice `{name.text}` has no `blocks` statement",
                decl.span,
                "add `blocks all` or `blocks linear, gating`",
            )
            return None
        if not body.blocks:
            return None
        if body.bad_refs:
            self.partial.add(name.text)
        if not self.candidates_ok(index, name, decl, body):
            return None
        for block in body.dims:
            if block not in body.blocks and block not in body.refused:
                stmt = next(s for s in decl.body if isinstance(s, (S.DimList, S.DimScale)) and s.block.text == block)
                self.error(f"dims for `{block}`, which choice `{name.text}` does not use", stmt.block.span)
        return ChoiceSpec(
            name.text,
            index,
            tuple(body.blocks),
            tuple(body.candidates),
            body.distances,
            self.block_dims(name, body, default_dims),
            body.fixed_inputs,
            self.fixed_pairs(name, body, input_names),
        )

    def choice_body(self, index, name, decl, order, known, input_names) -> "ChoiceBody":
        """What a choice's statements say, each checked where it is written."""
        body = ChoiceBody()
        for stmt in decl.body:
            if isinstance(stmt, S.BlocksStmt):
                self.blocks_stmt(stmt, body)
            elif isinstance(stmt, S.FromDistance):
                for num in stmt.distances:
                    d = self.positive_int(num, "a connection distance", L.MAX_CHOICES)
                    if d is None:
                        body.bad_refs = True
                    elif index - d < 0:
                        body.dropped.append(d)
                    elif order[index - d] not in body.distances:
                        body.candidates.append(order[index - d])
                        body.distances[order[index - d]] = d
            elif isinstance(stmt, S.FromNames):
                for ref in stmt.names:
                    self.from_name(ref, name, index, order, known, input_names, body)
            elif isinstance(stmt, (S.DimList, S.DimScale)):
                if self.block_name(stmt.block) and self.dim_block(stmt.block):
                    body.dims[stmt.block.text] = self.dims(stmt)
            elif isinstance(stmt, S.FixedInputs):
                body.fixed_inputs = True
            elif isinstance(stmt, S.PairStmt):
                body.pair = (stmt.left, stmt.right)
        return body

    def blocks_stmt(self, stmt: S.BlocksStmt, body: "ChoiceBody") -> None:
        if body.blocks is not None:
            self.error("duplicate `blocks` statement", stmt.span)
        if stmt.names is None:
            body.blocks = list(PAPER_BLOCKS)
            return
        body.blocks = []
        for b in stmt.names:
            if self.block_name(b):
                if b.text in body.blocks:
                    self.error(f"block `{b.text}` is listed twice", b.span)
                elif self.second_row_block(b, body.blocks):
                    body.refused.add(b.text)
                else:
                    body.blocks.append(b.text)

    def from_name(self, ref: S.Name, name: S.Name, index, order, known, input_names, body: "ChoiceBody") -> None:
        if ref.text in self.invalid_names:
            body.bad_refs = True
        elif ref.text not in known:
            body.bad_refs = True
            self.unknown(f"unknown name `{ref.text}`", ref, known, "name an input or a choice")
        elif ref.text == name.text:
            self.error(f"choice `{name.text}` reads itself", ref.span, "that is a cycle")
        elif ref.text not in body.distances:
            body.candidates.append(ref.text)
            body.distances[ref.text] = None if ref.text in input_names else index - order.index(ref.text)

    def candidates_ok(self, index, name: S.Name, decl, body: "ChoiceBody") -> bool:
        """At least one candidate input (the error's fix adds a `from`), at most the ceiling."""
        if not body.candidates and body.bad_refs:
            return False
        if not body.candidates:
            dropped = body.dropped
            why = f": distance {', '.join(map(str, dropped))} reaches before the first choice" if dropped else ""
            reads = "from distance 1" if index else "from " + ", ".join(self.input_names)
            self.error(
                f"choice `{name.text}` has no candidate input{why}",
                name.span,
                "add `from` with an input name, or a distance that reaches an earlier choice",
                None
                if any(isinstance(s, (S.FromNames, S.FromDistance)) for s in decl.body)
                else self.insert_statement(decl.close, reads),
            )
            return False
        if len(body.candidates) > L.MAX_CANDIDATES:
            self.error(
                f"choice `{name.text}` reads {len(body.candidates)} candidate inputs; a choice may read at most "
                f"{L.MAX_CANDIDATES}",
                name.span,
                self.ceiling_hint,
            )
            return False
        return True

    def block_dims(self, name: S.Name, body: "ChoiceBody", default_dims: dict) -> dict:
        """Each dim block's options: the choice's own, else the top level's."""
        block_dims = {}
        for b in body.blocks:
            if has_dim(b):
                options = body.dims[b] if b in body.dims else default_dims.get(b)
                if options is None and b in body.dims:
                    continue
                if options is None:
                    self.error(
                        f"choice `{name.text}` has no dim options for `{b}`",
                        name.span,
                        f"add `dim {b} 16, 32` to the choice or at the top level",
                    )
                else:
                    block_dims[b] = options
        return block_dims

    def fixed_pairs(self, name: S.Name, body: "ChoiceBody", input_names) -> Optional[tuple]:
        """The pair(s) a gating or sum block reads when the choice fixes them: the `pair` named, or with
        `fixed inputs` every pair of its inputs (Eq. 2 over all K² pairs)."""
        blocks, candidates = body.blocks, body.candidates
        if body.pair is not None:
            ok = True
            for ref in body.pair:
                if ref.text in self.invalid_names:
                    ok = False
                elif ref.text not in candidates:
                    self.unknown(
                        f"pair input `{ref.text}` is not a candidate input of `{name.text}`",
                        ref,
                        candidates,
                        f"candidates: {', '.join(candidates)}",
                    )
                    ok = False
            if not any(not is_multi_hot(b) for b in blocks):
                self.error(f"`pair` in choice `{name.text}`, which has no gating or sum block", body.pair[0].span)
                ok = False
            return ((body.pair[0].text, body.pair[1].text),) if ok else None
        if not (body.fixed_inputs and any(not is_multi_hot(b) for b in blocks)):
            return None
        chosen = [x for x in candidates if x not in input_names]
        if len(candidates) > 1 and chosen:
            self.error(
                f"choice `{name.text}` reads every pair of its fixed inputs, so they must be the raw inputs; "
                f"`{chosen[0]}` is a choice",
                name.span,
                "name the pair with `pair LEFT, RIGHT`, or read only inputs",
            )
        return tuple((i, j) for i in candidates for j in candidates)

    def outputs(self, items, input_names, choices) -> tuple[str, ...]:
        decl = self.singleton(items, S.OutputDecl, "`output` declaration")
        if decl is None:
            lines = self.source.splitlines() or [""]
            self.error(
                "missing `output from NAME`", Span(len(lines), 1), "name the choice(s) the final classifier reads"
            )
            return ()
        known = {c.name for c in choices} | input_names
        names = []
        for ref in decl.sources:
            if ref.text in self.invalid_names:
                continue
            if ref.text not in known:
                self.unknown(f"output names nothing: unknown name `{ref.text}`", ref, known, "name a choice")
            elif ref.text not in names:
                names.append(ref.text)
        return tuple(names)

    def order(self, choices, input_names) -> list[ChoiceSpec]:
        """Topological order, declaration order among equals. A reference to a choice that was lost to an
        earlier error is skipped here: that error is already reported, and nothing reaches lowering."""
        by_name = {c.name: c for c in choices}
        reads = {c.name: [src for src in c.candidates if src in by_name] for c in choices}
        cycle = find_cycle(reads)
        if cycle is None:
            return [by_name[name] for name in topological_order(reads, lambda name: by_name[name].index)]
        path = " -> ".join(cycle + [cycle[0]])
        span = self.reference_span(cycle[1 % len(cycle)], cycle[0])
        self.error(f"connections form a cycle: {path}", span, "a choice may only read choices that do not read it")
        return choices

    def reference_span(self, choice: str, ref: str) -> Optional[Span]:
        for decl in (i for i in self.module.items if isinstance(i, S.ChoiceDecl)):
            for stmt in decl.body:
                if isinstance(stmt, S.FromNames) and decl.first.text == choice:
                    for name in stmt.names:
                        if name.text == ref:
                            return name.span
        return None
