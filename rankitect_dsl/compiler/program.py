"""The straight-line program of one subnet: module declarations and forward lines with their shapes.

Built from the subnet plan (which already names every module and holds every weight slice) and the block
registry; codegen renders it as Python. FLOPs come from the cost model, attached per part afterwards.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..core.adaptors import FLATTEN, HEAD, PAIR_FC, STACK
from ..core.blocks import REGISTRY
from ..core.names import HEAD_PART, Namespace, Part, choice_part, pair_part, pair_stem
from .layout import SubnetPlan


@dataclass
class ModuleDecl:
    attr: str
    cls: str
    args: str
    comment: str


@dataclass
class Line:
    target: str
    expr: str
    shape: str
    note: str = ""
    part: Part = HEAD_PART  # the cost-model part the line belongs to: a choice, a pair's FC, or the head
    flops: int = 0


@dataclass
class Program:
    space: str
    modules: list[ModuleDecl]
    lines: list[Line]
    result: str
    inputs: tuple[str, str]
    helpers: set = field(default_factory=set)

    def show_part_flops(self, flops: dict) -> None:
        """Put each part's FLOPs (from the cost model) on the part's last line, none on the others."""
        last = {line.part: line for line in self.lines}
        for line in self.lines:
            line.flops = flops.get(line.part, 0) if last[line.part] is line else 0


def build_program(plan: SubnetPlan) -> Program:
    builder = _ProgramBuilder(plan)
    for cp in plan.choices:
        builder.choice(cp)
    return builder.finish()


class _ProgramBuilder:
    """Writes the program choice by choice, keeping each node's variables (its 2D and 3D parts), the
    flattened views and pair FCs already computed, and the identifiers handed out."""

    def __init__(self, plan: SubnetPlan):
        self.plan, self.d = plan, plan.d
        spec = plan.spec
        self.ns = Namespace()
        dense, sparse = spec.dense.name, spec.embed.name
        for n in (dense, sparse, *(c.name for c in spec.choices)):
            self.ns.reserve(n)
        self.var2d, self.var3d = {dense: dense}, {sparse: sparse}
        self.modules, self.lines, self.helpers = [], [], set()
        self.flattened, self.fc_vars = {}, {}
        self.stacked = {}  # the 3D parts of a stack -> the variable holding their concatenation
        self.flat_reads = Counter(spec.outputs)
        for cp in plan.choices:
            if any(REGISTRY[bp.block].adaptor == FLATTEN.name for bp in cp.blocks):
                self.flat_reads.update(cp.inputs)
            for pair in cp.pairs:
                self.flat_reads.update(pair)

    @staticmethod
    def cat(parts) -> str:
        return parts[0] if len(parts) == 1 else f"torch.cat([{', '.join(parts)}], dim=1)"

    def flat(self, x: str, part: Part) -> str:
        """The flatten adaptor's view of `x`. One read flat in several places is built once, into a variable
        of its own."""
        if x in self.var2d and x not in self.var3d:
            return self.var2d[x]
        if x not in self.flattened:
            self.flattened[x] = FLATTEN.source(self.var2d.get(x), self.var3d[x])
            if self.flat_reads[x] > 1:
                name = self.ns.create(f"{x}_flat")
                note = "2D and 3D outputs, concatenated" if x in self.var2d else "flattened once"
                self.lines.append(Line(name, self.flattened[x], f"B×{self.plan.ports[x].flat(self.d)}", note, part))
                self.flattened[x] = name
        return self.flattened[x]

    def aligned(self, expr: str, width: int, out: int, at) -> str:
        """`expr` (B×width) as features of a B×out tensor: itself, zero-padded, or placed at ranges."""
        if at is not None:
            self.helpers.add("place_at")
            return f"place_at({expr}, {out}, {tuple(at)})"
        return expr if width == out else f"F.pad({expr}, (0, {out - width}))"

    def stack(self, cp) -> str:
        """The stack adaptor's rows of a choice: its 2D inputs projected (one module for them all), its 3D
        inputs' rows; a stack the modules of one DHEN layer share is built once."""
        plan, d = self.plan, self.d
        twod = list(cp.stack)
        if twod:
            cls, args = STACK.module([plan.ports[x].width2d for x in twod], d)
            comment = f"stack adaptor of {cp.name}: " + ", ".join(twod) + f" to one {d}-wide row each"
            self.modules.append(ModuleDecl(cp.stack_attr, cls, args, comment))
        parts = []
        for x in cp.inputs:
            if plan.ports[x].width2d:
                proj = STACK.module_call(cp.stack_attr, twod.index(x), len(twod))
                parts.append(f"{proj}({self.var2d[x]}).unsqueeze(1)")
            if plan.ports[x].rows3d:
                parts.append(self.var3d[x])
        stack_blocks = sum(REGISTRY[bp.block].adaptor == STACK.name for bp in cp.blocks)
        if len(parts) == 1 and (stack_blocks == 1 or parts[0] in self.var3d.values()):
            return parts[0]
        if not twod and tuple(parts) in self.stacked:  # the modules of one DHEN layer read one stack
            return self.stacked[tuple(parts)]
        stack_var = self.ns.create(f"{cp.name}_rows")
        shape = f"B×{cp.stack_rows}×{d}"
        self.lines.append(Line(stack_var, self.cat(parts), shape, "stacked inputs", choice_part(cp.name)))
        if not twod:
            self.stacked[tuple(parts)] = stack_var
        return stack_var

    def pair_fc(self, i: str, j: str) -> str:
        """The variable holding FC_ij(x_i), computed (and its module declared) at its first reader."""
        if (i, j) not in self.fc_vars:
            pp = self.plan.pairs[(i, j)]
            self.fc_vars[(i, j)] = self.ns.create(pair_stem(i, j))
            args = PAIR_FC.module_args(pp.left, pp.right, self.plan.spec.bottleneck)
            comment = f"FC_ij from {i} to {j}, shared by every choice using this pair"
            self.modules.append(ModuleDecl(pp.attr, PAIR_FC.template_class, args, comment))
            expr = f"self.{pp.attr}({self.flat(i, pair_part(i, j))})"
            self.lines.append(Line(self.fc_vars[(i, j)], expr, f"B×{pp.right}", f"FC_ij({i} → {j})", pair_part(i, j)))
            self.helpers.add(PAIR_FC.template_class)
        return self.fc_vars[(i, j)]

    def pair_args(self, cp, bp) -> str:
        args = []
        for i, j in cp.pairs:
            pp, at = self.plan.pairs[(i, j)], cp.pair_at[(i, j)]
            fc, xj = self.pair_fc(i, j), self.flat(j, choice_part(cp.name))
            args.append(f"({self.aligned(fc, pp.right, bp.out, at)}, {self.aligned(xj, pp.right, bp.out, at)})")
        return ", ".join(args)

    def choice(self, cp) -> None:
        stack_expr = self.stack(cp) if any(REGISTRY[bp.block].adaptor == STACK.name for bp in cp.blocks) else None
        outs2d, merged = [], len(cp.blocks) > 1
        for bp in cp.blocks:
            block = REGISTRY[bp.block]
            target = self.ns.create(f"{cp.name}_{bp.block}") if merged else cp.name
            if block.adaptor == FLATTEN.name:
                over, arg = (
                    f"over {', '.join(cp.inputs)}",
                    self.cat([self.flat(x, choice_part(cp.name)) for x in cp.inputs]),
                )
            elif block.adaptor == STACK.name:
                over, arg = f"over {', '.join(cp.inputs)}", stack_expr
            else:
                over, arg = "of " + ", ".join(f"({i}, {j})" for i, j in cp.pairs), self.pair_args(cp, bp)
            args = block.module_args(bp.sizes, self.plan.spec.norm)
            self.modules.append(ModuleDecl(bp.attr, block.template_class, args, f"{cp.name}: {block.summary} {over}"))
            self.helpers.add(block.template_class)
            shape = f"B×{bp.out}×{self.d}" if block.output == "3d" else f"B×{bp.out}"
            self.lines.append(Line(target, f"self.{bp.attr}({arg})", shape, part=choice_part(cp.name)))
            if block.output == "3d":
                self.var3d[cp.name] = target
            else:
                outs2d.append((target, bp.out, bp))
        if outs2d:
            self.merge_2d(cp, outs2d)

    def merge_2d(self, cp, outs2d: list) -> None:
        """A choice's 2D output: its one 2D block's, or its blocks' summed where the supernet puts them."""
        if len(outs2d) == 1:
            self.var2d[cp.name] = outs2d[0][0]
            return
        width = cp.port.width2d
        if all(bp.at is None for _, _, bp in outs2d):
            self.helpers.add("pad_sum")
            expr, note = f"pad_sum([{', '.join(t for t, _, _ in outs2d)}])", "zero-padded sum"
        else:
            expr = " + ".join(self.aligned(t, w, width, bp.at) for t, w, bp in outs2d)
            note = "summed at their supernet positions"
        self.lines.append(Line(cp.name, expr, f"B×{width}", note, choice_part(cp.name)))
        self.var2d[cp.name] = cp.name

    def finish(self) -> Program:
        plan, spec = self.plan, self.plan.spec
        comment = "final classifier: one logit per example"
        self.modules.append(ModuleDecl(plan.head_attr, HEAD.template_class, HEAD.module_args(plan.head_in), comment))
        result = f"self.{plan.head_attr}({self.cat([self.flat(x, HEAD_PART) for x in spec.outputs])}).squeeze(-1)"
        logit = self.ns.create("logit")
        self.lines.append(Line(logit, result, "B", part=HEAD_PART))
        return Program(spec.name, self.modules, self.lines, logit, (spec.dense.name, spec.embed.name), self.helpers)
