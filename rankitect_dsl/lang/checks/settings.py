"""The space's settings: its name, its two inputs, `keep`, `bottleneck`, `norm`, the DHEN modules' widths,
and the default dim options every choice may fall back on."""

from __future__ import annotations

from ...core import limits as L
from ...core.blocks import DEFAULT_NORM, NORMS, ModuleWidths
from ...core.errors import Span
from ...core.spec import DEFAULT_BOTTLENECK, DEFAULT_KEEP, InputSpec
from .. import syntax as S
from .base import CheckBase, shown


class SettingsChecks(CheckBase):
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
            self.error(f"the keep-probability must be in (0, 1], got `{shown(stmt.value.text)}`", stmt.span)
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
                f"unknown norm `{shown(stmt.value.text)}`",
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
