"""Render the supernet module and standalone subnet source from jinja2 templates; load them back."""

from __future__ import annotations

import json
import linecache
import math
import pprint
import types
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2

from ..core.files import atomic_write
from ..core.limits import scientific
from ..core.spec import SpaceSpec, spec_to_dict
from .layout import SubnetPlan, SupernetLayout
from .program import build_program

WRAP = 110  # generated lines are wrapped near this width


class PackageLoader(jinja2.BaseLoader):
    """Templates read through importlib.resources from the installed `rankitect_dsl.codegen_templates`."""

    def get_source(self, environment, template):
        resource = resources.files("rankitect_dsl.codegen_templates").joinpath(template)
        if not resource.is_file():
            raise jinja2.TemplateNotFound(template)
        return resource.read_text(), None, lambda: True


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=PackageLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    return env


def class_name(space_name: str, suffix: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in space_name.split("_") if part) + suffix


def wrap(code: str, indent: int, width: int = WRAP) -> list[str]:
    """Break a long statement after the commas of its argument lists, continuation lines indented by 4.
    Every comma in generated statements sits inside brackets, so the breaks are implicit continuations."""
    if indent + len(code) <= width:
        return [code]
    pieces = code.split(", ")
    lines, current = [], pieces[0]
    for piece in pieces[1:]:
        if indent + (4 if lines else 0) + len(current) + 2 + len(piece) > width:
            lines.append(current + ",")
            current = piece
        else:
            current += ", " + piece
    lines.append(current)
    return lines[:1] + ["    " + line for line in lines[1:]]


def _statement(code: str, comment: str, indent: int) -> list[str]:
    """`code  # comment` when it fits, else the comment on its own line above the wrapped code."""
    if indent + len(code) + 4 + len(comment) <= WRAP:
        return [f"{code}  # {comment}"]
    return [f"# {comment}"] + wrap(code, indent)


def _forward_lines(program) -> list[str]:
    out = []
    for line in program.lines:
        comment = (
            line.shape + (f", {line.flops:,} FLOPs" if line.flops else "") + (f" ({line.note})" if line.note else "")
        )
        out += _statement(f"{line.target} = {line.expr}", comment, 8)
    return out


def _module_lines(program) -> list[str]:
    out = []
    for m in program.modules:
        out.append(f"# {m.comment}")
        out += wrap(f"self.{m.attr} = {m.cls}({m.args})", 8)
    return out


def subnet_source(spec: SpaceSpec, plan: SubnetPlan, part_costs: dict) -> str:
    """Readable standalone PyTorch for one subnet plan; `part_costs` (part -> flops, params) come from the
    cost model and go into the comments and the class docstring."""
    program = build_program(plan)
    flops = {part: v["flops"] for part, v in part_costs.items()}
    program.show_part_flops(flops)
    return (
        _env()
        .get_template("subnet.py.j2")
        .render(
            space=spec.name,
            class_name=class_name(spec.name, "Subnet"),
            module_lines=_module_lines(program),
            forward_lines=_forward_lines(program),
            result=program.result,
            inputs=program.inputs,
            helpers=program.helpers,
            flops=sum(flops.values()),
            params=sum(v["params"] for v in part_costs.values()),
            dense_width=spec.dense.width,
            embed_count=spec.embed.count,
            embed_dim=spec.embed.dim,
            norm=spec.norm == "layer",
        )
    )


def supernet_source(spec: SpaceSpec, layout: SupernetLayout, n_decisions: int, size: int) -> str:
    return (
        _env()
        .get_template("supernet.py.j2")
        .render(
            name=spec.name,
            class_name=class_name(spec.name, "Supernet"),
            spec=pprint.pformat(spec_to_dict(spec), sort_dicts=False, width=WRAP),
            params=list(layout.params.items()),
            n_params=sum(math.prod(s) for s in layout.params.values()),
            n_choices=len(spec.choices),
            n_decisions=n_decisions,
            size=scientific(size, 4) if size > 10**9 else size,
        )
    )


def load_module(source: str, name: str) -> types.ModuleType:
    """Execute generated source as a module; its text is registered with linecache, so a traceback
    into it shows the generated lines."""
    filename = f"<{name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    module = types.ModuleType(name)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def compile_space(spec: SpaceSpec, supernet_text: str, out_dir: str | Path) -> list[Path]:
    """Write `<space>_supernet.py` and `<space>_space.json` (the description searchers load)."""
    out_dir = Path(out_dir)
    return [
        atomic_write(out_dir / f"{spec.name}_supernet.py", supernet_text),
        atomic_write(out_dir / f"{spec.name}_space.json", json.dumps(spec_to_dict(spec), indent=1) + "\n"),
    ]
