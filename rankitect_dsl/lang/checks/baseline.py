"""The baseline arch (the production model): every assignment a block, inputs, pair and dim the space
offers its choice, every choice assigned."""

from __future__ import annotations

from typing import Optional

from ...core.blocks import has_dim, is_multi_hot
from .. import syntax as S
from .base import CheckBase, shown


class BaselineChecks(CheckBase):
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
        reads = self.assignment_reads(a, choice, block)
        dims = None if reads is None else self.assignment_dims(a, choice, block)
        return None if dims is None else {"blocks": [block], **reads, **dims}

    def assignment_reads(self, a: S.Assignment, choice, block: str) -> Optional[dict]:
        """What the assigned block reads: every fixed pair, its one (left, right) pair, or its inputs."""
        names = [r.text for r in a.inputs]
        entry = {}
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
        return entry

    def assignment_dims(self, a: S.Assignment, choice, block: str) -> Optional[dict]:
        """The assigned block's dim, one of the options its choice offers (none for a block without one)."""
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
                    f"baseline is not in the space: dim {shown(a.dim.text)} is not offered for `{block}` "
                    f"in `{choice.name}`",
                    a.dim.span,
                    f"options: {', '.join(map(str, choice.dims.get(block, ())))}",
                )
                return None
            return {"dims": {block: value}}
        if a.dim is not None:
            self.error(f"baseline: a `{block}` block has no dim", a.dim.span)
            return None
        return {}
