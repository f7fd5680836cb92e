"""Check an AST and resolve it into a `SpaceSpec`, collecting every error of the file."""

from __future__ import annotations

import math
from typing import Optional

from ..core import limits as L
from ..core.blocks import (
    BLOCK_NAMES,
    DEFAULT_NORM,
    NORMS,
    PAPER_BLOCKS,
    REGISTRY,
    ModuleWidths,
    has_dim,
    is_multi_hot,
)
from ..core.decisions import choice_count
from ..core.errors import Diagnostic, Fix, RksError, Span, close_match
from ..core.names import identifier_problem
from ..core.spec import DEFAULT_BOTTLENECK, DEFAULT_KEEP, ChoiceSpec, InputSpec, SpaceSpec
from . import syntax as S
from .layers import LayerLowering


def _shown(text: str) -> str:
    """A literal as a message quotes it: a 320-digit number is cut, not pasted whole."""
    return text if len(text) <= 24 else f"{text[:12]}…({len(text)} characters)"


class _Checker:
    def __init__(self, module: S.Module, filename: str, source: str):
        self.module = module
        self.filename = filename
        self.source = source
        self.diags: list[Diagnostic] = []
        self.reported: set = set()
        self.invalid_names: set[str] = set()  # already reported; references to them stay quiet
        self.spans: dict[str, Span] = {}  # each input's and choice's name, for messages of later stages
        self.input_names: list[str] = []  # the declared inputs, in file order
        self.partial: set[str] = set()  # choices that lost a `from` name to an error: a baseline may name it

    def error(self, message: str, span: Optional[Span], hint: Optional[str] = None, fix: Optional[Fix] = None):
        """Record a diagnostic once: a range's shared body would otherwise repeat it for every choice."""
        if (message, span, hint) not in self.reported:
            self.reported.add((message, span, hint))
            self.diags.append(Diagnostic(message, span, hint, fix))

    def unknown(self, message: str, ref: S.Name, options, otherwise: Optional[str] = None):
        """An unknown name: with one close match, the hint names it and the fix writes it."""
        close = close_match(ref.text, options)
        if close is None:
            self.error(message, ref.span, otherwise)
        else:
            self.error(message, ref.span, f"did you mean `{close}`?", Fix(f"write `{close}`", ref.span, close))

    def insert_statement(self, close: Optional[Span], statement: str) -> Optional[Fix]:
        """A fix that adds `statement` to a braced body just before its `}`: on its own line, indented like
        a body, when the `}` opens its line; else inline."""
        if close is None:
            return None
        line = self.source.splitlines()[close.line - 1]
        before = line[: close.column - 1]
        if before.strip():
            return Fix(f"add `{statement}`", Span(close.line, close.column, 0), f"{statement} ")
        return Fix(f"add `{statement}`", Span(close.line, 1, 0), f"{before}  {statement}\n")

    # -- small validators -------------------------------------------------------------------

    def ident(self, name: S.Name, what: str) -> bool:
        problem = identifier_problem(name.text)
        if problem:
            self.error(f"{what} `{name.text}`: {problem}", name.span)
            return False
        return True

    def positive_int(self, num: S.Number, what: str, limit: int = L.MAX_SIZE) -> Optional[int]:
        if not num.is_int or num.int_value <= 0:
            self.error(f"{what} must be a positive integer, got `{_shown(num.text)}`", num.span)
            return None
        if num.int_value > limit:
            self.error(f"{what} must be at most {limit:,}, got `{_shown(num.text)}`", num.span, self.ceiling_hint)
            return None
        return num.int_value

    ceiling_hint = "the ceilings are in docs/language.md (Limits)"

    def finite(self, num: S.Number, what: str) -> bool:
        if not num.is_finite:
            self.error(f"{what} `{_shown(num.text)}` is not a finite number", num.span)
            return False
        return True

    def block_name(self, name: S.Name) -> bool:
        if name.text not in BLOCK_NAMES:
            self.unknown(f"unknown block `{name.text}`", name, BLOCK_NAMES, f"blocks are {', '.join(BLOCK_NAMES)}")
            return False
        return True

    def dims(self, stmt) -> Optional[tuple[int, ...]]:
        if isinstance(stmt, S.DimList):
            if len(stmt.options) > L.MAX_DIM_OPTIONS:
                self.error(
                    f"{len(stmt.options):,} dim options for `{stmt.block.text}`; a block may offer at most "
                    f"{L.MAX_DIM_OPTIONS}",
                    stmt.options[L.MAX_DIM_OPTIONS].span,
                    self.ceiling_hint,
                )
                return None
            values = [self.positive_int(n, "a dim option") for n in stmt.options]
            if any(v is None for v in values):
                return None
            spans = stmt.options
        else:
            base = self.positive_int(stmt.base, "the dim scale base")
            steps = self.positive_int(stmt.steps, "the number of dim steps", L.MAX_DIM_OPTIONS)
            if not (self.finite(stmt.low, "the dim scale start") and self.finite(stmt.high, "the dim scale end")):
                return None
            low, high = stmt.low.value, stmt.high.value
            if low <= 0:
                self.error(f"the dim scale must be positive, got `{stmt.low.text}`", stmt.low.span)
                return None
            if high < low:
                self.error(
                    f"the dim scale range ends below its start ({stmt.high.text} < {stmt.low.text})", stmt.high.span
                )
                return None
            if base is None or steps is None:
                return None
            if base * high > L.MAX_SIZE + 0.5:
                self.error(
                    f"dim scale {base} × {_shown(stmt.high.text)} exceeds the largest dim, {L.MAX_SIZE:,}",
                    stmt.high.span,
                    self.ceiling_hint,
                )
                return None
            factors = [low] if steps == 1 else [low + i * (high - low) / (steps - 1) for i in range(steps)]
            values = [int(round(base * f)) for f in factors]
            if any(v <= 0 for v in values):
                self.error(f"dim scale {base} × {stmt.low.text} rounds to 0", stmt.low.span)
                return None
            spans = [stmt.base] * len(values)
        seen = set()
        for v, num in zip(values, spans):
            if v in seen:
                self.error(f"dim option {v} is repeated", num.span, "each option must be distinct")
                return None
            seen.add(v)
        return tuple(sorted(values))

    # -- the file ---------------------------------------------------------------------------

    def run(self) -> SpaceSpec:
        items = self.module.items
        space_name = self.space_name(items)
        dense, embed = self.inputs(items)
        keep = self.keep(items)
        bottleneck = self.bottleneck(items)
        norm = self.norm(items)
        modules = self.module_widths(items, embed)
        items = LayerLowering(self).run(items)
        default_dims = self.default_dims(items)
        input_names = {i.name for i in (dense, embed) if i is not None}
        choices = self.choices(items, input_names, default_dims)
        outputs = self.outputs(items, input_names, choices)
        ordered = self.order(choices, input_names)
        self.size_limit(ordered)
        baseline_name, baseline = self.baseline(items, {c.name: c for c in choices})
        if self.diags:
            raise RksError(self.diags, self.filename, self.source)
        return SpaceSpec(
            space_name,
            dense,
            embed,
            ordered,
            outputs,
            keep,
            bottleneck,
            baseline_name,
            baseline,
            self.filename,
            spans=self.spans,
            norm=norm,
            modules=modules,
        )

    def size_limit(self, choices) -> None:
        """Refuse, at the choice that crosses it, a space whose exact size would not print. Only a space
        without other errors is counted: a choice lost to one may lack its dims."""
        if self.diags:
            return
        log10 = 0.0
        for c in sorted(choices, key=lambda c: c.index):
            log10 += math.log10(choice_count(c))
            if log10 > L.MAX_LOG10_SIZE:
                self.error(
                    f"the space holds more than 10^{L.MAX_LOG10_SIZE} architectures by choice `{c.name}`",
                    self.spans[c.name],
                    "search fewer dims, distances or blocks per choice; " + self.ceiling_hint,
                )
                return

    def singleton(self, items, kind, what):
        found = [i for i in items if isinstance(i, kind)]
        for extra in found[1:]:
            span = extra.name.span if hasattr(extra, "name") else extra.span
            self.error(f"duplicate {what}", span, "write it once")
        return found[0] if found else None

    def space_name(self, items) -> str:
        decl = self.singleton(items, S.SpaceDecl, "`space` declaration")
        if decl is None:
            self.error("missing `space NAME` declaration", Span(1, 1), "start the file with `space my_space`")
            return "space"
        self.ident(decl.name, "space name")
        return decl.name.text

    def inputs(self, items):
        found = {"dense": [], "embed": []}
        names = {}
        for decl in (i for i in items if isinstance(i, S.InputDecl)):
            if not self.ident(decl.name, "input name"):
                self.invalid_names.add(decl.name.text)
                continue
            if decl.name.text in names:
                self.error(f"duplicate name `{decl.name.text}`", decl.name.span)
                continue
            names[decl.name.text] = decl
            self.spans[decl.name.text] = decl.name.span
            sizes = [self.positive_int(n, "an input size") for n in decl.sizes]
            if any(s is None for s in sizes):
                self.invalid_names.add(decl.name.text)
                continue
            if decl.kind == "dense":
                found["dense"].append(InputSpec(decl.name.text, "dense", width=sizes[0]))
            else:
                found["embed"].append(InputSpec(decl.name.text, "embed", count=sizes[0], dim=sizes[1]))
            if len(found[decl.kind]) == 2:
                self.error(
                    f"a second {decl.kind} input `{decl.name.text}`",
                    decl.name.span,
                    "a space has one dense[S] input and one embed[N, D] input",
                )
        for kind, example in (("dense", "input dense : dense[13]"), ("embed", "input sparse : embed[26, 16]")):
            if not found[kind] and not any(isinstance(i, S.InputDecl) and i.kind == kind for i in items):
                self.error(f"missing the {kind} input", Span(1, 1), f"declare it, e.g. `{example}`")
        dense = found["dense"][0] if found["dense"] else None
        embed = found["embed"][0] if found["embed"] else None
        self.input_names = list(names)
        return dense, embed

    def keep(self, items) -> float:
        stmt = self.singleton(items, S.KeepStmt, "`keep` setting")
        if stmt is None:
            return DEFAULT_KEEP
        if not stmt.value.is_finite or not 0 < stmt.value.value <= 1:
            self.error(f"the keep-probability must be in (0, 1], got `{_shown(stmt.value.text)}`", stmt.span)
            return DEFAULT_KEEP
        return stmt.value.value

    def bottleneck(self, items) -> int:
        stmt = self.singleton(items, S.BottleneckStmt, "`bottleneck` setting")
        if stmt is None:
            return DEFAULT_BOTTLENECK
        return self.positive_int(stmt.value, "the pairwise bottleneck") or DEFAULT_BOTTLENECK

    def norm(self, items) -> str:
        stmt = self.singleton(items, S.NormStmt, "`norm` setting")
        if stmt is None:
            return DEFAULT_NORM
        if stmt.value.text not in NORMS:
            self.error(
                f"unknown norm `{_shown(stmt.value.text)}`",
                stmt.span,
                "write `norm layer` (LayerNorm after every block, paper 3.1) or `norm none`",
            )
            return DEFAULT_NORM
        return stmt.value.text

    def module_widths(self, items, embed) -> ModuleWidths:
        """The DHEN modules' fixed widths; the feed-forward width defaults to 4·D, the transformer's."""
        found = {}
        for setting in ("kernel", "rank", "ffn"):
            stmts = [i for i in items if isinstance(i, S.ModuleWidthStmt) and i.setting == setting]
            for extra in stmts[1:]:
                self.error(f"duplicate `{setting}` setting", extra.span, "write it once")
            if stmts:
                value = self.positive_int(stmts[0].value, f"the `{setting}` width", L.MAX_SIZE)
                if value is not None and setting == "kernel" and value % 2 == 0:
                    self.error(
                        f"the convolution kernel must be odd, got {value}",
                        stmts[0].span,
                        "an odd k pads k // 2 on each side and keeps the rows",
                    )
                elif value is not None:
                    found[setting] = value
        if "ffn" not in found and embed is not None:
            found["ffn"] = 4 * embed.dim
        return ModuleWidths(**found)

    def default_dims(self, items) -> dict:
        dims = {}
        for stmt in (i for i in items if isinstance(i, (S.DimList, S.DimScale))):
            if self.block_name(stmt.block) and self.dim_block(stmt.block):
                if stmt.block.text in dims:
                    self.error(f"duplicate default dims for `{stmt.block.text}`", stmt.block.span)
                values = self.dims(stmt)
                if values is not None:
                    dims[stmt.block.text] = values
        return dims

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
                f"the choice range `{_shown(decl.first.text)} .. {_shown(decl.last.text)}` holds {hi - lo + 1:,} "
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
                if len(names) == L.MAX_CHOICES:
                    self.error(f"a space may hold at most {L.MAX_CHOICES:,} choices", name.span, self.ceiling_hint)
                    break
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
        blocks, candidates, distances, dims = None, [], {}, {}
        fixed_inputs, pair, dropped, bad_refs = False, None, [], False
        refused = set()  # blocks refused where they are named: their dims say nothing more
        body = decl.body
        for stmt in body:
            if isinstance(stmt, S.BlocksStmt):
                if blocks is not None:
                    self.error("duplicate `blocks` statement", stmt.span)
                if stmt.names is None:
                    blocks = list(PAPER_BLOCKS)
                else:
                    blocks = []
                    for b in stmt.names:
                        if self.block_name(b):
                            if b.text in blocks:
                                self.error(f"block `{b.text}` is listed twice", b.span)
                            elif self.second_row_block(b, blocks):
                                refused.add(b.text)
                            else:
                                blocks.append(b.text)
            elif isinstance(stmt, S.FromDistance):
                for num in stmt.distances:
                    d = self.positive_int(num, "a connection distance", L.MAX_CHOICES)
                    if d is None:
                        bad_refs = True
                        continue
                    if index - d < 0:
                        dropped.append(d)
                        continue
                    target = order[index - d]
                    if target not in distances:
                        candidates.append(target)
                        distances[target] = d
            elif isinstance(stmt, S.FromNames):
                for ref in stmt.names:
                    if ref.text in self.invalid_names:
                        bad_refs = True
                    elif ref.text not in known:
                        bad_refs = True
                        self.unknown(f"unknown name `{ref.text}`", ref, known, "name an input or a choice")
                    elif ref.text == name.text:
                        self.error(f"choice `{name.text}` reads itself", ref.span, "that is a cycle")
                    elif ref.text not in distances:
                        candidates.append(ref.text)
                        distances[ref.text] = None if ref.text in input_names else index - order.index(ref.text)
            elif isinstance(stmt, (S.DimList, S.DimScale)):
                if self.block_name(stmt.block) and self.dim_block(stmt.block):
                    values = self.dims(stmt)
                    dims[stmt.block.text] = values
            elif isinstance(stmt, S.FixedInputs):
                fixed_inputs = True
            elif isinstance(stmt, S.PairStmt):
                pair = (stmt.left, stmt.right)
        if blocks is None:
            self.error(
                f"choice `{name.text}` has no `blocks` statement",
                decl.span,
                "add `blocks all` or `blocks linear, gating`",
            )
            return None
        if not blocks:
            return None
        if bad_refs:
            self.partial.add(name.text)
        if not candidates and bad_refs:
            return None
        if not candidates:
            why = f": distance {', '.join(map(str, dropped))} reaches before the first choice" if dropped else ""
            reads = "from distance 1" if index else "from " + ", ".join(self.input_names)
            self.error(
                f"choice `{name.text}` has no candidate input{why}",
                name.span,
                "add `from` with an input name, or a distance that reaches an earlier choice",
                None
                if any(isinstance(s, (S.FromNames, S.FromDistance)) for s in body)
                else self.insert_statement(decl.close, reads),
            )
            return None
        if len(candidates) > L.MAX_CANDIDATES:
            self.error(
                f"choice `{name.text}` reads {len(candidates)} candidate inputs; a choice may read at most "
                f"{L.MAX_CANDIDATES}",
                name.span,
                self.ceiling_hint,
            )
            return None
        for block in dims:
            if block not in blocks and block not in refused:
                stmt = next(s for s in body if isinstance(s, (S.DimList, S.DimScale)) and s.block.text == block)
                self.error(f"dims for `{block}`, which choice `{name.text}` does not use", stmt.block.span)
        block_dims = {}
        for b in blocks:
            if has_dim(b):
                options = dims[b] if b in dims else default_dims.get(b)
                if options is None and b in dims:
                    continue
                if options is None:
                    self.error(
                        f"choice `{name.text}` has no dim options for `{b}`",
                        name.span,
                        f"add `dim {b} 16, 32` to the choice or at the top level",
                    )
                else:
                    block_dims[b] = options
        fixed_pairs = None
        if pair is not None:
            ok = True
            for ref in pair:
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
                self.error(f"`pair` in choice `{name.text}`, which has no gating or sum block", pair[0].span)
                ok = False
            fixed_pairs = ((pair[0].text, pair[1].text),) if ok else None
        elif fixed_inputs and any(not is_multi_hot(b) for b in blocks):
            fixed_pairs = tuple((i, j) for i in candidates for j in candidates)  # Eq. 2 over all K² pairs
            chosen = [x for x in candidates if x not in input_names]
            if len(candidates) > 1 and chosen:
                self.error(
                    f"choice `{name.text}` reads every pair of its fixed inputs, so they must be the raw inputs; "
                    f"`{chosen[0]}` is a choice",
                    name.span,
                    "name the pair with `pair LEFT, RIGHT`, or read only inputs",
                )
        return ChoiceSpec(
            name.text, index, tuple(blocks), tuple(candidates), distances, block_dims, fixed_inputs, fixed_pairs
        )

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
        cycle = _find_cycle(reads)
        if cycle is None:
            ready = {name for name, srcs in reads.items() if not srcs}
            users = {name: [c for c, srcs in reads.items() if name in srcs] for name in reads}
            waiting = {name: len(srcs) for name, srcs in reads.items()}
            ordered = []
            while ready:
                name = min(ready, key=lambda n: by_name[n].index)
                ready.remove(name)
                ordered.append(by_name[name])
                for user in users[name]:
                    waiting[user] -= 1
                    if not waiting[user]:
                        ready.add(user)
            return ordered
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

    def baseline(self, items, choices: dict):
        decl = self.singleton(items, S.BaselineDecl, "`baseline`")
        if decl is None:
            return None, None
        self.ident(decl.name, "baseline name")
        arch = {}
        for a in decl.assignments:
            entry = self.assignment(a, choices)
            if entry is None:
                continue
            if a.choice.text in arch:
                self.error(f"choice `{a.choice.text}` is assigned twice in the baseline", a.choice.span)
            arch[a.choice.text] = entry
        missing = [c for c in choices if c not in arch]
        if missing and not self.diags:
            self.error(
                f"baseline `{decl.name.text}` leaves out choice(s) {', '.join(missing)}",
                decl.name.span,
                "a baseline arch assigns a block to every choice",
            )
        return decl.name.text, arch

    def assignment(self, a: S.Assignment, choices: dict) -> Optional[dict]:
        if a.choice.text in self.invalid_names:
            return None
        choice = choices.get(a.choice.text)
        if choice is None:
            self.unknown(f"baseline is not in the space: unknown choice `{a.choice.text}`", a.choice, choices)
            return None
        block = a.block.text
        if block not in choice.blocks:
            self.error(
                f"baseline is not in the space: choice `{choice.name}` offers no block `{block}`",
                a.block.span,
                f"it offers {', '.join(choice.blocks)}",
            )
            return None
        if any(ref.text in self.invalid_names for ref in a.inputs):  # reported where it was declared
            return None
        for ref in a.inputs:
            if ref.text not in choice.candidates:
                if choice.name not in self.partial:  # else its lost `from` name is the error, reported
                    self.unknown(
                        f"baseline is not in the space: `{ref.text}` is not a candidate input of `{choice.name}`",
                        ref,
                        choice.candidates,
                        f"candidates: {', '.join(choice.candidates)}",
                    )
                return None
        names = [r.text for r in a.inputs]
        entry = {"blocks": [block]}
        if not is_multi_hot(block) and choice.fixed_pairs is not None and len(choice.fixed_pairs) > 1:
            if set(names) != set(choice.candidates):
                self.error(
                    f"baseline is not in the space: `{choice.name}` reads every pair of {', '.join(choice.candidates)}",
                    a.block.span,
                )
                return None
            entry["pairs"] = [list(p) for p in choice.fixed_pairs]
        elif not is_multi_hot(block):
            if len(names) != 2:
                self.error(
                    f"baseline: a `{block}` block takes a (left, right) pair, got {len(names)} input(s)", a.block.span
                )
                return None
            if choice.fixed_pairs is not None and (tuple(names),) != choice.fixed_pairs:
                fixed = ", ".join(choice.fixed_pairs[0])
                self.error(f"baseline is not in the space: `{choice.name}` fixes its pair to {fixed}", a.inputs[0].span)
                return None
            entry["pair"] = names
        else:
            if not names or len(set(names)) != len(names):
                self.error(f"baseline: `{block}` needs one or more distinct inputs", a.block.span)
                return None
            if choice.fixed_inputs and set(names) != set(choice.candidates):
                self.error(
                    f"baseline is not in the space: `{choice.name}` fixes its inputs to {', '.join(choice.candidates)}",
                    a.block.span,
                )
                return None
            entry["inputs"] = [c for c in choice.candidates if c in names]
        if has_dim(block):
            if block not in choice.dims:  # its dim options were refused, and that error is reported
                return None
            if a.dim is None:
                self.error(
                    f"baseline: `{choice.name}` needs `dim N` for its `{block}` block",
                    a.block.span,
                    f"options: {', '.join(map(str, choice.dims.get(block, ())))}",
                )
                return None
            value = a.dim.int_value if a.dim.is_int else None
            if value not in choice.dims.get(block, ()):
                self.error(
                    f"baseline is not in the space: dim {_shown(a.dim.text)} is not offered for `{block}` "
                    f"in `{choice.name}`",
                    a.dim.span,
                    f"options: {', '.join(map(str, choice.dims.get(block, ())))}",
                )
                return None
            entry["dims"] = {block: value}
        elif a.dim is not None:
            self.error(f"baseline: a `{block}` block has no dim", a.dim.span)
            return None
        return entry


def _find_cycle(reads: dict) -> Optional[list[str]]:
    """A cycle `[a, b, …]` where b reads a, c reads b, …, and a reads the last; None when there is none."""
    users = {name: [c for c, srcs in reads.items() if name in srcs] for name in reads}
    state: dict = {}
    for root in reads:
        if root in state:
            continue
        stack, path = [(root, iter(users[root]))], [root]
        state[root] = "open"
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = "done"
                stack.pop()
                path.pop()
            elif state.get(nxt) == "open":
                return path[path.index(nxt) :]
            elif nxt not in state:
                state[nxt] = "open"
                stack.append((nxt, iter(users[nxt])))
                path.append(nxt)
    return None


def check(module: S.Module, filename: str, source: str) -> SpaceSpec:
    """Resolve a parsed file, raising RksError with every diagnostic found."""
    return _Checker(module, filename, source).run()
