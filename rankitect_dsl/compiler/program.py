"""The straight-line program of one subnet: module declarations and forward lines with their shapes.

Built from the subnet plan (which already names every module and holds every weight slice) and the block
registry; codegen renders it as Python. FLOPs come from the cost model, attached per part afterwards.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..core.blocks import PAIR_FC, REGISTRY
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
    spec, d, bn = plan.spec, plan.d, plan.spec.bottleneck
    local_ns = Namespace()
    dense, sparse = spec.dense.name, spec.embed.name
    for n in (dense, sparse):
        local_ns.reserve(n)
    for c in spec.choices:
        local_ns.reserve(c.name)
    var2d = {dense: dense}
    var3d = {sparse: sparse}
    modules, lines, helpers = [], [], set()
    flattened, fc_vars = {}, {}
    stacked = {}  # the 3D parts of a stack -> the variable holding their concatenation

    def cat(parts) -> str:
        return parts[0] if len(parts) == 1 else f"torch.cat([{', '.join(parts)}], dim=1)"

    flat_reads = Counter(spec.outputs)
    for cp in plan.choices:
        if any(REGISTRY[bp.block].adaptor == "flatten" for bp in cp.blocks):
            flat_reads.update(cp.inputs)
        for pair in cp.pairs:
            flat_reads.update(pair)

    def flat(x: str, part: Part) -> str:
        """The flatten adaptor's view of `x`: its 2D part, then its 3D part flattened. One read flat in
        several places is built once, into a variable of its own."""
        if x in var2d and x not in var3d:
            return var2d[x]
        if x not in flattened:
            f3 = f"{var3d[x]}.flatten(1)"
            flattened[x] = f"torch.cat([{var2d[x]}, {f3}], dim=1)" if x in var2d else f3
            if flat_reads[x] > 1:
                name = local_ns.create(f"{x}_flat")
                note = "2D and 3D outputs, concatenated" if x in var2d else "flattened once"
                lines.append(Line(name, flattened[x], f"B×{plan.ports[x].flat(d)}", note, part))
                flattened[x] = name
        return flattened[x]

    def aligned(expr: str, width: int, out: int, at) -> str:
        """`expr` (B×width) as features of a B×out tensor: itself, zero-padded, or placed at ranges."""
        if at is not None:
            helpers.add("place_at")
            return f"place_at({expr}, {out}, {tuple(at)})"
        return expr if width == out else f"F.pad({expr}, (0, {out - width}))"

    for cp in plan.choices:
        stack_expr = None
        if any(REGISTRY[bp.block].adaptor == "stack" for bp in cp.blocks):
            twod = list(cp.stack)
            if twod:
                widths = [f"nn.Linear({plan.ports[x].width2d}, {d})" for x in twod]
                cls, args = (
                    ("nn.Linear", widths[0][len("nn.Linear(") : -1])
                    if len(twod) == 1
                    else ("nn.ModuleList", f"[{', '.join(widths)}]")
                )
                modules.append(
                    ModuleDecl(
                        cp.stack_attr,
                        cls,
                        args,
                        f"stack adaptor of {cp.name}: " + ", ".join(twod) + f" to one {d}-wide row each",
                    )
                )
            parts = []
            for x in cp.inputs:
                if plan.ports[x].width2d:
                    proj = f"self.{cp.stack_attr}" if len(twod) == 1 else f"self.{cp.stack_attr}[{twod.index(x)}]"
                    parts.append(f"{proj}({var2d[x]}).unsqueeze(1)")
                if plan.ports[x].rows3d:
                    parts.append(var3d[x])
            stack_blocks = sum(REGISTRY[bp.block].adaptor == "stack" for bp in cp.blocks)
            if len(parts) == 1 and (stack_blocks == 1 or parts[0] in var3d.values()):
                stack_expr = parts[0]
            elif not twod and tuple(parts) in stacked:  # the modules of one DHEN layer read one stack
                stack_expr = stacked[tuple(parts)]
            else:
                stack_var = local_ns.create(f"{cp.name}_rows")
                shape = f"B×{cp.stack_rows}×{d}"
                lines.append(Line(stack_var, cat(parts), shape, "stacked inputs", choice_part(cp.name)))
                stack_expr = stack_var
                if not twod:
                    stacked[tuple(parts)] = stack_var
        outs2d = []
        merged = len(cp.blocks) > 1
        for bp in cp.blocks:
            block = REGISTRY[bp.block]
            target = local_ns.create(f"{cp.name}_{bp.block}") if merged else cp.name
            if block.adaptor == "flatten":
                over = f"over {', '.join(cp.inputs)}"
                arg = cat([flat(x, choice_part(cp.name)) for x in cp.inputs])
            elif block.adaptor == "stack":
                over = f"over {', '.join(cp.inputs)}"
                arg = stack_expr
            else:
                args = []
                for i, j in cp.pairs:
                    pp = plan.pairs[(i, j)]
                    if (i, j) not in fc_vars:
                        fc_vars[(i, j)] = local_ns.create(pair_stem(i, j))
                        modules.append(
                            ModuleDecl(
                                pp.attr,
                                PAIR_FC.template_class,
                                f"{pp.left}, {bn}, {pp.right}",
                                f"FC_ij from {i} to {j}, shared by every choice using this pair",
                            )
                        )
                        lines.append(
                            Line(
                                fc_vars[(i, j)],
                                f"self.{pp.attr}({flat(i, pair_part(i, j))})",
                                f"B×{pp.right}",
                                f"FC_ij({i} → {j})",
                                pair_part(i, j),
                            )
                        )
                        helpers.add(PAIR_FC.template_class)
                    at = cp.pair_at[(i, j)]
                    fc, xj = fc_vars[(i, j)], flat(j, choice_part(cp.name))
                    args.append(f"({aligned(fc, pp.right, bp.out, at)}, {aligned(xj, pp.right, bp.out, at)})")
                over = "of " + ", ".join(f"({i}, {j})" for i, j in cp.pairs)
                arg = ", ".join(args)
            modules.append(
                ModuleDecl(
                    bp.attr,
                    block.template_class,
                    block.module_args(bp.sizes, plan.spec.norm),
                    f"{cp.name}: {block.summary} {over}",
                )
            )
            helpers.add(block.template_class)
            shape = f"B×{bp.out}×{d}" if block.output == "3d" else f"B×{bp.out}"
            lines.append(Line(target, f"self.{bp.attr}({arg})", shape, part=choice_part(cp.name)))
            if block.output == "3d":
                var3d[cp.name] = target
            else:
                outs2d.append((target, bp.out, bp))
        if outs2d:
            if len(outs2d) == 1:
                var2d[cp.name] = outs2d[0][0]
            else:
                width = cp.port.width2d
                if all(bp.at is None for _, _, bp in outs2d):
                    helpers.add("pad_sum")
                    expr, note = f"pad_sum([{', '.join(t for t, _, _ in outs2d)}])", "zero-padded sum"
                else:
                    expr = " + ".join(aligned(t, w, width, bp.at) for t, w, bp in outs2d)
                    note = "summed at their supernet positions"
                lines.append(Line(cp.name, expr, f"B×{width}", note, choice_part(cp.name)))
                var2d[cp.name] = cp.name
    modules.append(
        ModuleDecl(plan.head_attr, "nn.Linear", f"{plan.head_in}, 1", "final classifier: one logit per example")
    )
    result = f"self.{plan.head_attr}({cat([flat(x, HEAD_PART) for x in spec.outputs])}).squeeze(-1)"
    logit = local_ns.create("logit")
    lines.append(Line(logit, result, "B", part=HEAD_PART))
    return Program(spec.name, modules, lines, logit, (dense, sparse), helpers)
