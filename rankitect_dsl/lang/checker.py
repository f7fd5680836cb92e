"""Check an AST and resolve it into a `SpaceSpec`, collecting every error of the file. The checks are in
parts (`checks/`): the settings, the choices, the baseline; this runs them in the order each needs."""

from __future__ import annotations

import math

from ..core import limits as L
from ..core.decisions import choice_count
from ..core.errors import RksError
from ..core.spec import SpaceSpec
from . import syntax as S
from .checks.baseline import BaselineChecks
from .checks.choices import ChoicesChecks
from .checks.settings import SettingsChecks
from .layers import LayerLowering


class _Checker(SettingsChecks, ChoicesChecks, BaselineChecks):
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


def check(module: S.Module, filename: str, source: str) -> SpaceSpec:
    """Resolve a parsed file, raising RksError with every diagnostic found."""
    return _Checker(module, filename, source).run()
