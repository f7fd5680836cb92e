"""Lowering of `layer` declarations (DHEN, paper 4.3) to the choices every later stage already reads.

A `layer NAME { layers K  modules m1, m2, …  from x, y  dim m1 … }` is K stacked DHEN layers. Layer k's
module m is the choice `NAME<k>_<m>`: block m alone, its inputs fixed to the layer's input (the `from`
names for k = 1, every module of layer k − 1 after), its dims those the layer gives for m (else the
top-level ones). The ensemble is the next reader's stack adaptor, which concatenates the modules' rows; each
module's row compression is its share of the layer's projection shortcut and its norm follows the sum (see
`RowInteraction`). So a layer is nothing but choices, and the supernet, cost model, layout and export need
no layer of their own.

Elsewhere in the file the layer's name stands for its last layer's modules: in `from`, in `output from`,
in a baseline assignment's inputs. In a baseline, `NAME = layer(m1 8, m2 4, …)` gives every layer of NAME
those dims. This pass rewrites the syntax tree; the checker then checks the choices it made, and their
errors point at the layer's name or at the statement that gave the value.
"""

from __future__ import annotations

from ..core import limits as L
from ..core.blocks import REGISTRY
from . import syntax as S

MODULE_BLOCKS = tuple(n for n, b in REGISTRY.items() if b.adaptor == "stack" and b.output == "3d")


def module_choice(layer: str, k: int, module: str) -> str:
    return f"{layer}{k}_{module}"


class LayerLowering:
    """Rewrites a module's items: layers to choices, layer names to their last layer's choice names."""

    def __init__(self, checker):
        self.checker = checker
        self.outputs: dict[str, list[str]] = {}  # layer name -> its last layer's choice names
        self.layers: dict[str, tuple] = {}  # layer name -> (modules, [(choice, module, its input names)])

    def run(self, items: list) -> list:
        decls = [i for i in items if isinstance(i, S.LayerDecl)]
        if not decls:
            return items
        lowered = {id(d): self.layer(d) for d in decls}
        out = []
        for item in items:
            if isinstance(item, S.LayerDecl):
                out += lowered[id(item)]
            elif isinstance(item, S.ChoiceDecl):
                out.append(
                    S.ChoiceDecl(item.first, item.last, [self.refs_in(s) for s in item.body], item.span, item.close)
                )
            elif isinstance(item, S.OutputDecl):
                out.append(S.OutputDecl(self.names(item.sources), item.span))
            elif isinstance(item, S.BaselineDecl):
                out.append(S.BaselineDecl(item.name, [a for x in item.assignments for a in self.assignment(x)]))
            else:
                out.append(item)
        return out

    # -- references ---------------------------------------------------------------------------
    def names(self, refs: list[S.Name]) -> list[S.Name]:
        """Each layer name among `refs` as its last layer's choice names, at the reference's position."""
        out = []
        for ref in refs:
            if ref.text in self.outputs:
                out += [S.Name(n, ref.span) for n in self.outputs[ref.text]]
            else:
                out.append(ref)
        return out

    def refs_in(self, stmt):
        return S.FromNames(self.names(stmt.names)) if isinstance(stmt, S.FromNames) else stmt

    # -- a layer --------------------------------------------------------------------------------
    def layer(self, decl: S.LayerDecl) -> list:
        c = self.checker
        name = decl.name
        if not c.ident(name, "layer name"):
            c.invalid_names.add(name.text)
            return []
        count_stmt = c.singleton(decl.body, S.LayersStmt, "`layers` statement")
        modules_stmt = c.singleton(decl.body, S.ModulesStmt, "`modules` statement")
        froms = [s for s in decl.body if isinstance(s, S.FromNames)]
        if any(isinstance(s, S.FromDistance) for s in decl.body):
            c.error("a layer reads named inputs, not distances", decl.name.span, "write `from dense, sparse`")
        dims = [s for s in decl.body if isinstance(s, (S.DimList, S.DimScale))]
        count = 1 if count_stmt is None else c.positive_int(count_stmt.count, "a layer count", L.MAX_CHOICES)
        if modules_stmt is None:
            c.error(f"layer `{name.text}` has no `modules` statement", name.span, "e.g. `modules embed_fc, attention`")
            return []
        modules = []
        for m in modules_stmt.names:
            if not c.block_name(m):
                continue
            if m.text not in MODULE_BLOCKS:
                c.error(
                    f"`{m.text}` cannot be a layer module: a module maps the layer's rows to rows",
                    m.span,
                    f"modules are {', '.join(MODULE_BLOCKS)}",
                )
            elif m.text in modules:
                c.error(f"module `{m.text}` is listed twice", m.span)
            else:
                modules.append(m.text)
        if not froms:
            inputs = ", ".join(c.input_names)
            c.error(
                f"layer `{name.text}` has no `from` statement",
                name.span,
                "name its inputs, e.g. `from dense, sparse`",
                c.insert_statement(decl.close, f"from {inputs}") if inputs else None,
            )
            return []
        for stmt in dims:
            if stmt.block.text not in modules and stmt.block.text in REGISTRY:
                c.error(f"dims for `{stmt.block.text}`, which layer `{name.text}` does not use", stmt.block.span)
        if count is None or not modules:
            return []
        inputs = self.names([ref for s in froms for ref in s.names])
        lowered, out = [], []
        for k in range(1, count + 1):
            for m in modules:
                choice = S.Name(module_choice(name.text, k, m), name.span)
                body = [S.BlocksStmt([S.Name(m, name.span)], name.span), S.FromNames(inputs), S.FixedInputs(name.span)]
                out.append(S.ChoiceDecl(choice, None, body + [s for s in dims if s.block.text == m], decl.span))
                lowered.append((choice.text, m, [r.text for r in inputs]))
            inputs = [made.first for made in out[-len(modules) :]]
        self.layers[name.text] = (modules, lowered)
        self.outputs[name.text] = [r.text for r in inputs]
        return out

    # -- baselines --------------------------------------------------------------------------------
    def assignment(self, a) -> list:
        if isinstance(a, S.Assignment):
            return [S.Assignment(a.choice, a.block, self.names(a.inputs), a.dim)]
        c = self.checker
        layer = self.layers.get(a.layer.text)
        if layer is None:
            if a.layer.text not in c.invalid_names:
                c.unknown(
                    f"baseline: unknown layer `{a.layer.text}`",
                    a.layer,
                    self.layers,
                    "`NAME = layer(…)` assigns a `layer` declaration",
                )
            return []
        modules, lowered = layer
        given = {}
        for module, dim in a.dims:
            if module.text not in modules:
                c.unknown(
                    f"baseline: layer `{a.layer.text}` has no module `{module.text}`",
                    module,
                    modules,
                    f"its modules: {', '.join(modules)}",
                )
            elif module.text in given:
                c.error(f"baseline: module `{module.text}` is given twice", module.span)
            else:
                given[module.text] = dim
        missing = [m for m in modules if m not in given]
        if missing:
            c.error(
                f"baseline: layer `{a.layer.text}` needs a dim for module(s) {', '.join(missing)}",
                a.layer.span,
                "e.g. `" + a.layer.text + " = layer(" + ", ".join(f"{m} 8" for m in modules) + ")`",
            )
            return []
        at = a.layer.span
        return [
            S.Assignment(S.Name(choice, at), S.Name(m, at), [S.Name(x, at) for x in reads], given[m])
            for choice, m, reads in lowered
        ]
