"""The straight-line program of one subnet: modules, forward lines, shapes, FLOPs and weight sources.

Codegen renders it as Python, `transfer_weights` reads its weight sources; both see the same names.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .layout import SubnetPlan
from .namespace import Namespace

GENERATED = ("self", "torch", "nn", "F", "flatten_ports", "pad_sum")


@dataclass
class ModuleDecl:
    attr: str
    cls: str
    args: str
    comment: str
    params: dict  # parameter path inside the module -> layout Slice
    n_params: int = 0


@dataclass
class Line:
    target: str
    expr: str
    shape: str
    flops: int
    note: str = ""
    part: str = ""  # the cost-model part the line belongs to: a choice, `fc_I_J`, or `head`


@dataclass
class Program:
    space: str
    modules: list[ModuleDecl]
    lines: list[Line]
    result: str
    inputs: tuple[str, str]
    helpers: set = field(default_factory=set)

    def weight_sources(self) -> dict:
        return {f"{m.attr}.{path}": s for m in self.modules for path, s in m.params.items()}

    @property
    def flops(self) -> int:
        return sum(line.flops for line in self.lines)

    @property
    def params(self) -> int:
        return sum(m.n_params for m in self.modules)

    def part_flops(self) -> dict:
        out = {}
        for line in self.lines:
            out[line.part] = out.get(line.part, 0) + line.flops
        return out

    def show_part_flops(self, flops: dict) -> None:
        """Put each part's FLOPs (from the cost model) on the part's last line, none on the others."""
        last = {line.part: line for line in self.lines}
        for line in self.lines:
            line.flops = flops.get(line.part, 0) if last[line.part] is line else 0


def _fmt(n: int) -> str:
    return f"{n:,}"


def build_program(plan: SubnetPlan) -> Program:
    import torch.nn as nn

    spec, d, bn = plan.spec, plan.d, plan.spec.bottleneck
    module_ns = Namespace(set(dir(nn.Module)) | set(GENERATED))
    local_ns = Namespace(GENERATED)
    dense, sparse = spec.dense.name, spec.embed.name
    for n in (dense, sparse):
        local_ns.reserve(n)
    for c in spec.choices:
        local_ns.reserve(c.name)
    var2d = {dense: dense}
    var3d = {sparse: sparse}
    modules, lines, helpers = [], [], set()

    def flat(x: str) -> str:
        if x in var2d and x in var3d:
            helpers.add("flatten_ports")
            return f"flatten_ports({var2d[x]}, {var3d[x]})"
        return var2d[x] if x in var2d else f"{var3d[x]}.flatten(1)"

    def cat(parts) -> str:
        return parts[0] if len(parts) == 1 else f"torch.cat([{', '.join(parts)}], dim=1)"

    fc_vars = {}
    for cp in plan.choices:
        merged = len(cp.blocks) > 1
        stack_expr, pending_flops = None, 0
        if any(bp.block in ("embed_fc", "dot_compressed") for bp in cp.blocks):
            twod = [x for x in cp.inputs if plan.ports[x].width2d]
            parts = []
            if twod:
                attr = module_ns.create(f"{cp.name}_stack")
                params = {}
                for k, x in enumerate(twod):
                    params[f"{k}.weight"] = cp.stack[x]["w"]
                    params[f"{k}.bias"] = cp.stack[x]["b"]
                widths = ", ".join(f"nn.Linear({plan.ports[x].width2d}, {d})" for x in twod)
                modules.append(ModuleDecl(attr, "nn.ModuleList", f"[{widths}]",
                                          f"stack adaptor of {cp.name}: " + ", ".join(twod) + f" to one {d}-wide row each", params,
                                          sum(plan.ports[x].width2d * d + d for x in twod)))
            for x in cp.inputs:
                if plan.ports[x].width2d:
                    parts.append(f"self.{attr}[{twod.index(x)}]({var2d[x]}).unsqueeze(1)")
                if plan.ports[x].rows3d:
                    parts.append(var3d[x])
            stack_flops = sum(2 * plan.ports[x].width2d * d for x in twod)
            if len(parts) == 1:
                stack_expr = parts[0]
                pending_flops = stack_flops
            else:
                stack_var = local_ns.create(f"{cp.name}_rows")
                lines.append(Line(stack_var, cat(parts), f"B×{cp.stack_rows}×{d}", stack_flops, "stacked inputs", cp.name))
                stack_expr = stack_var
        outs2d = []
        for bp in cp.blocks:
            attr = module_ns.create(f"{cp.name}_{bp.block}" if merged else cp.name)
            target = local_ns.create(f"{cp.name}_{bp.block}") if merged else cp.name
            p = bp.params
            if bp.block == "linear":
                in_w = cp.linear_in
                modules.append(ModuleDecl(attr, "LinearBlock", f"{in_w}, {bp.out}", f"{cp.name}: linear over {', '.join(cp.inputs)}",
                                          {"linear.weight": p["w"], "linear.bias": p["b"], "norm.weight": p["ln_w"], "norm.bias": p["ln_b"]},
                                          in_w * bp.out + 3 * bp.out))
                expr = f"self.{attr}({cat([flat(x) for x in cp.inputs])})"
                lines.append(Line(target, expr, f"B×{bp.out}", 2 * in_w * bp.out, part=cp.name))
                outs2d.append((target, bp.out))
                helpers.add("LinearBlock")
            elif bp.block == "embed_fc":
                modules.append(ModuleDecl(attr, "EmbedFC", f"{cp.stack_rows}, {bp.out}, {d}", f"{cp.name}: EmbedFC over {', '.join(cp.inputs)}",
                                          {"linear.weight": p["w"], "linear.bias": p["b"], "norm.weight": p["ln_w"], "norm.bias": p["ln_b"]},
                                          cp.stack_rows * bp.out + bp.out + 2 * d))
                lines.append(Line(target, f"self.{attr}({stack_expr})", f"B×{bp.out}×{d}", 2 * cp.stack_rows * bp.out * d + pending_flops,
                                  part=cp.name))
                pending_flops = 0
                var3d[cp.name] = target
                helpers.add("EmbedFC")
            elif bp.block == "dot_compressed":
                m = bp.out // cp.stack_rows
                modules.append(ModuleDecl(attr, "DotCompressed", f"{cp.stack_rows}, {m}, {d}",
                                          f"{cp.name}: compressed dot product over {', '.join(cp.inputs)}",
                                          {"compress.weight": p["w"], "compress.bias": p["b"], "norm.weight": p["ln_w"], "norm.bias": p["ln_b"]},
                                          cp.stack_rows * m + m + 2 * cp.stack_rows * m))
                lines.append(Line(target, f"self.{attr}({stack_expr})", f"B×{bp.out}", 4 * cp.stack_rows * m * d + pending_flops,
                                  part=cp.name))
                pending_flops = 0
                outs2d.append((target, bp.out))
                helpers.add("DotCompressed")
            else:
                i, j = cp.pair
                if (i, j) not in fc_vars:
                    fc_attr = module_ns.create(f"fc_{i}_{j}")
                    fc_var = local_ns.create(f"fc_{i}_{j}")
                    wi, wj = plan.ports[i].flat(d), plan.ports[j].flat(d)
                    s = plan.pairs[(i, j)]
                    modules.append(ModuleDecl(fc_attr, "Bottleneck", f"{wi}, {bn}, {wj}", f"FC_ij from {i} to {j}, shared by every choice using this pair",
                                              {"down.weight": s["w1"], "down.bias": s["b1"], "up.weight": s["w2"], "up.bias": s["b2"]},
                                              wi * bn + bn + bn * wj + wj))
                    lines.append(Line(fc_var, f"self.{fc_attr}({flat(i)})", f"B×{wj}", 2 * wi * bn + 2 * bn * wj, f"FC_ij({i} → {j})",
                                      f"fc_{i}_{j}"))
                    fc_vars[(i, j)] = fc_var
                    helpers.add("Bottleneck")
                cls = "Gating" if bp.block == "gating" else "PairSum"
                modules.append(ModuleDecl(attr, cls, f"{bp.out}", f"{cp.name}: pairwise {bp.block} of ({i}, {j})",
                                          {"norm.weight": p["ln_w"], "norm.bias": p["ln_b"]}, 2 * bp.out))
                lines.append(Line(target, f"self.{attr}({fc_vars[(i, j)]}, {flat(j)})", f"B×{bp.out}", 0, part=cp.name))
                outs2d.append((target, bp.out))
                helpers.add(cls)
        if outs2d:
            if len(outs2d) == 1:
                var2d[cp.name] = outs2d[0][0]
            else:
                helpers.add("pad_sum")
                width = max(w for _, w in outs2d)
                lines.append(Line(cp.name, f"pad_sum([{', '.join(t for t, _ in outs2d)}])", f"B×{width}", 0, "zero-padded sum", cp.name))
                var2d[cp.name] = cp.name
    head_attr = module_ns.create("head")
    modules.append(ModuleDecl(head_attr, "nn.Linear", f"{plan.head_in}, 1", "final classifier: one logit per example",
                              {"weight": plan.head["w"], "bias": plan.head["b"]}, plan.head_in + 1))
    result = f"self.{head_attr}({cat([flat(x) for x in spec.outputs])}).squeeze(-1)"
    logit = local_ns.create("logit")
    lines.append(Line(logit, result, "B", 2 * plan.head_in, part="head"))
    return Program(spec.name, modules, lines, logit, (dense, sparse), helpers)
