"""One self-contained HTML page (and a Markdown summary) for a finished search of any method.

Everything comes from the study store: the space's source, the commands that ran, the trials, the
search's summary, its wall time and examples. The page inlines its figures as SVG and runs no script,
so it opens anywhere and can be mailed as one file.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timezone

import jinja2

from .compiler.codegen import PackageLoader
from .compiler.dot import arch_dot, render
from .core.arch import Arch
from .core.errors import RksError
from .core.files import figure, figure_svg
from .core.scale import recipe_factors, scale_arch
from .search.study_store import BASELINE, CANDIDATE, HALVING, open_study
from .space import load_source

RECIPES = (  # paper 4.2.3: (label, dim factor per block, bottleneck factor, the `rks scale` flags)
    ("scaled: EmbedFC dims ×3", recipe_factors(embed_fc=3.0), 1.0, "--embed-fc 3"),
    ("scaled: dims ×1.5, bottleneck ×2", recipe_factors(dims=1.5), 2.0, "--dims 1.5 --bottleneck 2"),
)


@dataclass
class Model:
    """A model the report places on the NE–FLOPs plane; `ne` is None when it was not trained."""

    label: str
    flops: int
    params: int
    ne: float | None = None
    command: str = ""
    eval_ne: float | None = None  # retrained after the search and scored on the held-out tail
    val_ne: float | None = None  # the same retrain scored on the validation slice, which chose the winner


def build_report(url: str, study: str | None = None) -> dict:
    store = open_study(url, study)
    meta = store.meta
    if "summary" not in meta or "space_source" not in meta:
        raise RksError(f"study `{store.name}` in {url} has no finished run to report (finish the search first)")
    space = load_source(meta["space_source"], meta["space_file"])
    summary = meta["summary"]
    winner = Arch.from_dict(summary["best"]["arch"])
    candidates = store.completed(CANDIDATE)
    spec_file = shlex.quote(meta["space_file"])
    final = summary.get("final", {})
    models = [
        Model(
            "winner",
            summary["best"]["flops"],
            space.params(winner),
            summary["best"].get("window_ne"),
            eval_ne=final.get("winner", {}).get("eval_ne"),
            val_ne=final.get("winner", {}).get("val_ne"),
        )
    ]
    base = summary.get("baseline")
    if base:
        models.insert(
            0,
            Model(
                "baseline",
                base["flops"],
                space.params(space.baseline),
                base["window_ne"],
                eval_ne=(final.get("baseline") or {}).get("eval_ne"),
                val_ne=(final.get("baseline") or {}).get("val_ne"),
            ),
        )
    top = _top_archs(summary, candidates)
    if len(top) > 1:
        merged = space.merge(top)
        files = " ".join(f"top{k + 1}.json" for k in range(len(top)))
        command = f"rks merge {spec_file} {files} -o merged.json"
        models.append(Model(f"merged top {len(top)}", space.flops(merged), space.params(merged), None, command))
    for label, factors, bottleneck, flags in RECIPES:
        scaled, outside, new_bn = scale_arch(space.spec, winner, factors, bottleneck)
        target = space.extended(outside, new_bn) if outside else space
        command = f"rks scale {spec_file} best_arch.json {flags} --extend scaled.rks -o scaled.json"
        models.append(Model(label, target.flops(scaled), target.params(scaled), None, command))
    evaluated = candidates + store.completed(HALVING) + store.completed(BASELINE)
    examples = sum(t.user_attrs.get("examples_processed", t.user_attrs.get("examples", 0)) for t in evaluated)
    examples += meta.get("pretrain_examples", 0)
    return {
        "study": store.name,
        "storage": url,
        "space": space,
        "meta": meta,
        "summary": summary,
        "winner": winner,
        "models": models,
        "points": [(t.user_attrs["flops"], t.user_attrs["window_ne"]) for t in candidates],
        "pareto": summary["pareto"],
        "examples": examples,
        "wall_seconds": meta.get("wall_seconds", 0.0),
        "commands": meta.get("commands", []),
        "follow_up": _follow_up(meta, spec_file),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _top_archs(summary: dict, candidates) -> list[Arch]:
    """The models the paper merges: the halving finalists, else the three best candidates (distinct archs)."""
    if summary.get("finalists"):
        return [Arch.from_dict(f["arch"]) for f in summary["finalists"][:3]]
    seen, out = set(), []
    for t in sorted(candidates, key=lambda t: t.value):
        if t.user_attrs["arch"] not in seen:
            seen.add(t.user_attrs["arch"])
            out.append(Arch.from_json(t.user_attrs["arch"]))
    return out[:3]


def _follow_up(meta: dict, spec_file: str) -> list[str]:
    data = shlex.quote(str(meta.get("data", "synthetic")))
    return [
        f"rks export {spec_file} best_arch.json -o best.py",
        f"rks train {spec_file} best_arch.json --data {data} --examples N --seed S",
        f"rks train {spec_file} --baseline --data {data} --examples N --seed S",
    ]


def plot_svg(report: dict) -> str:
    """NE against FLOPs: every candidate, the Pareto front, the baseline and the winner; models that were not
    trained (merged, scaled) stand as vertical lines at their FLOPs."""
    fig, ax = figure(figsize=(8.0, 4.8))
    if report["points"]:
        xs, ys = zip(*report["points"])
        ax.scatter(xs, ys, s=14, color="#8da0cb", label="candidates")
    front = report["pareto"]
    ax.plot([p["flops"] for p in front], [p["window_ne"] for p in front], "-", color="#4c72b0", label="Pareto front")
    styles = {"baseline": ("#c44e52", "*"), "winner": ("#2ca02c", "*")}
    untrained = ["#937860", "#da8bc3", "#8c8c8c"]
    for m in report["models"]:
        if m.ne is not None:
            color, marker = styles.get(m.label, ("#333333", "o"))
            ax.scatter([m.flops], [m.ne], s=160, marker=marker, color=color, edgecolor="black", zorder=3, label=m.label)
        else:
            ax.axvline(
                m.flops, linestyle=":", color=untrained.pop(0) if untrained else "#555555", label=f"{m.label} (FLOPs)"
            )
    ax.set_xlabel("FLOPs per example")
    ax.set_ylabel("window NE (proxy, lower is better)")
    ax.legend(fontsize=8, loc="best")
    return _bare_svg(figure_svg(fig))


def drawn(dot_text: str) -> str | None:
    """DOT drawn by Graphviz as inline SVG, or None when Graphviz is not installed."""
    try:
        return _bare_svg(render(dot_text, "svg").decode())
    except RksError:
        return None


def _bare_svg(text: str) -> str:
    """An SVG document without its XML prolog and DOCTYPE, ready to sit inside HTML."""
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.S)


def arch_text(arch: Arch) -> str:
    """Arch JSON with one line per choice: short enough to read, still valid JSON."""
    rows = [f"  {json.dumps(name)}: {json.dumps(ca.to_dict())}" for name, ca in arch.choices.items()]
    return f'{{"space": {json.dumps(arch.space)}, "choices": {{\n' + ",\n".join(rows) + "\n}}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=PackageLoader(),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["thousands"] = lambda v: f"{int(v):,}"
    env.filters["md"] = markdown_text
    env.filters["md_code"] = markdown_code
    env.globals["fence"] = markdown_fence
    env.filters["ne"] = lambda v: "—" if v is None else f"{v:.4f}"
    return env


# -- Markdown: report.md escapes what it did not write itself (recorded commands, names, URLs) ---------
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()<>#+!|~&-])")


def markdown_text(value) -> str:
    """Text shown as itself: every punctuation mark that Markdown or inline HTML could read is escaped."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))


def _longest_backtick_run(text: str) -> int:
    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def markdown_code(value) -> str:
    """An inline code span that its own backticks cannot close (CommonMark: a longer run of backticks)."""
    text = " ".join(str(value).split())
    ticks = "`" * (_longest_backtick_run(text) + 1)
    return f"{ticks} {text} {ticks}" if "`" in text else f"`{text}`"


def markdown_fence(*blocks) -> str:
    """A code fence longer than any backtick run in the blocks it will hold, so none of them closes it."""
    longest = max((_longest_backtick_run(str(line)) for block in blocks for line in block), default=0)
    return "`" * max(3, longest + 1)


def render_report(report: dict) -> tuple[str, str]:
    """(HTML page, Markdown summary)."""
    from .search.final import verdict

    context = dict(
        report,
        plot=jinja2.utils.markupsafe.Markup(plot_svg(report)),
        source=report["space"].subnet_source(report["winner"]),
        arch_json=arch_text(report["winner"]),
        dot_text=arch_dot(report["space"], report["winner"]),
        wall=duration(report["wall_seconds"]),
        retrain_seeds=len(report["summary"].get("final", {}).get("winner", {}).get("seeds", [])),
        verdict=verdict(report["summary"]["final"]) if report["summary"].get("final") else None,
    )
    drawing = drawn(context["dot_text"])
    context["drawing"] = jinja2.utils.markupsafe.Markup(drawing) if drawing is not None else None
    env = _env()
    page = env.get_template("report.html.j2").render(**context)
    summary = env.get_template("report.md.j2").render(**context)
    return page, summary
