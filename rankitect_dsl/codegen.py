"""Render the supernet module and standalone subnet source from jinja2 templates; load them back."""
from __future__ import annotations

import json
import pprint
import types
from functools import lru_cache
from pathlib import Path

import jinja2

from .arch import Arch
from .files import atomic_write
from .ir import spec_to_dict
from .layout import SupernetLayout, build_plan
from .program import Program, build_program

_TEMPLATES = Path(__file__).resolve().parent.parent / "codegen_templates"
_PACKAGED = Path(__file__).resolve().parent / "codegen_templates"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    folder = _TEMPLATES if _TEMPLATES.exists() else _PACKAGED
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)), trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True, undefined=jinja2.StrictUndefined, autoescape=False)


def class_name(space_name: str, suffix: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in space_name.split("_") if part) + suffix


def subnet_source(space, arch: Arch) -> tuple[str, Program]:
    space.validate(arch)
    program = build_program(build_plan(space.spec, arch, space.layout))
    if space._is_merged(arch):  # no flat encoding: the program's own counts
        flops, params = program.part_flops(), program.params
    else:
        parts = space.cost_breakdown(arch)
        flops, params = {part: v["flops"] for part, v in parts.items()}, sum(v["params"] for v in parts.values())
    program.show_part_flops(flops)
    text = _env().get_template("subnet.py.j2").render(
        space=space.name, class_name=class_name(space.name, "Subnet"), modules=program.modules, lines=program.lines,
        result=program.result, inputs=program.inputs, helpers=program.helpers, flops=sum(flops.values()),
        params=params, dense_width=space.spec.dense.width, embed_count=space.spec.embed.count,
        embed_dim=space.spec.embed.dim)
    return text, program


def supernet_source(space) -> str:
    layout: SupernetLayout = space.layout
    return _env().get_template("supernet.py.j2").render(
        name=space.name, class_name=class_name(space.name, "Supernet"), spec=pprint.pformat(spec_to_dict(space.spec), sort_dicts=False, width=110),
        params=list(layout.params.items()), n_params=sum(_numel(s) for s in layout.params.values()),
        n_choices=len(space.spec.choices), n_decisions=len(space.decisions), size=f"{space.size:.4e}" if space.size > 10**9 else space.size)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def load_module(source: str, name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec"), module.__dict__)
    return module


def compile_space(space, out_dir: str | Path) -> list[Path]:
    """Write `<space>_supernet.py` and `<space>_space.json` (the description searchers load)."""
    out_dir = Path(out_dir)
    written = [atomic_write(out_dir / f"{space.name}_supernet.py", supernet_source(space)),
               atomic_write(out_dir / f"{space.name}_space.json", json.dumps(spec_to_dict(space.spec), indent=1) + "\n")]
    return written
