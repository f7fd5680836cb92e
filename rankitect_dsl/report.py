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
from pathlib import Path

import jinja2

from .compiler.codegen import PackageLoader
from .compiler.dot import arch_dot, render
from .core.arch import Arch
from .core.errors import RksError
from .core.files import atomic_write, figure, figure_svg
from .core.scale import recipe_factors, scale_arch
from .search.store.study import BASELINE, CANDIDATE, FIT, GAMMA, HALVING, open_study
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


def _search_cost(store, meta: dict, summary: dict, candidates: list, gammas: list) -> tuple:
    """(examples trained, the cost lines, the FLOPs–NE points) of the search, by its kind."""
    if "gamma" in summary:  # one-shot or DNAS
        cost = [("supernet steps", f"{summary['steps']:,}"), ("γ(θ) checkpoints recorded", f"{len(gammas):,}")]
        return summary["examples_processed"], cost, [(t.user_attrs["flops"], t.user_attrs["ne_batch"]) for t in gammas]
    if "path" in summary:  # a local search: one trial per (arch, seed), each a fit by the final trainer
        fits = store.completed(FIT)
        cost = [("candidates visited", f"{summary['evaluated']:,}"), ("fits by the final trainer", f"{len(fits):,}")]
        points = [(t.user_attrs["flops"], t.value) for t in fits if t.user_attrs["seed"] == meta["seed"]]
        return sum(t.user_attrs["examples"] for t in fits), cost, points
    evaluated = candidates + store.completed(HALVING) + store.completed(BASELINE)
    examples = sum(t.user_attrs.get("examples_processed", t.user_attrs.get("examples", 0)) for t in evaluated)
    examples += meta.get("pretrain_examples", 0)
    cost = [("candidates evaluated", f"{summary['evaluated']:,}")]
    return examples, cost, [(t.user_attrs["flops"], t.user_attrs["window_ne"]) for t in candidates]


def build_report(url: str, study: str | None = None, archs_folder: str = "archs") -> dict:
    store = open_study(url, study)
    meta = store.meta
    if "summary" not in meta or "space_source" not in meta:
        raise RksError(f"study `{store.name}` in {url} has no finished run to report (finish the search first)")
    space = load_source(meta["space_source"], meta["space_file"])
    summary = meta["summary"]
    winner = Arch.from_dict(summary["best"]["arch"])
    candidates = store.completed(CANDIDATE)
    inplace = "gamma" in summary  # one-shot or DNAS: γ(θ) at each checkpoint instead of candidates
    gammas = sorted(
        (t for t in store.completed(GAMMA) if t.user_attrs.get("run") == summary.get("run")),
        key=lambda t: t.user_attrs["step"],
    )
    spec_file = shlex.quote(meta["space_file"])
    final = summary.get("final", {})

    def _in_archs(name: str) -> str:
        return shlex.quote(f"{archs_folder}/{name}")

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
                space.params(Arch.from_dict(base["arch"])) if "arch" in base else space.params(space.baseline),
                base.get("window_ne"),
                eval_ne=(final.get("baseline") or {}).get("eval_ne"),
                val_ne=(final.get("baseline") or {}).get("val_ne"),
            ),
        )
    top = _top_archs(summary, candidates)
    archs = {"best_arch.json": winner, **{f"top{k + 1}.json": arch for k, arch in enumerate(top)}}
    if len(top) > 1:
        merged = space.merge(top)
        files = " ".join(_in_archs(f"top{k + 1}.json") for k in range(len(top)))
        command = f"rks merge {spec_file} {files} -o {_in_archs('merged.json')}"
        models.append(Model(f"merged top {len(top)}", space.flops(merged), space.params(merged), None, command))
    for k, (label, factors, bottleneck, flags) in enumerate(RECIPES, 1):
        scaled, outside, new_bn = scale_arch(space.spec, winner, factors, bottleneck)
        target = space.extended(outside, new_bn) if outside else space
        outputs = f"--extend {_in_archs(f'scaled{k}.rks')} -o {_in_archs(f'scaled{k}.json')}"
        command = f"rks scale {spec_file} {_in_archs('best_arch.json')} {flags} {outputs}"
        models.append(Model(label, target.flops(scaled), target.params(scaled), None, command))
    examples, cost, points = _search_cost(store, meta, summary, candidates, gammas)
    return {
        "study": store.name,
        "storage": url,
        "space": space,
        "meta": meta,
        "summary": summary,
        "winner": winner,
        "models": models,
        "inplace": inplace,
        "path": summary.get("path"),
        "gammas": [t.user_attrs for t in gammas],
        "points": points,
        "pareto": summary.get("pareto", []),
        "cost": cost,
        "archs": archs,
        "examples": examples,
        "wall_seconds": meta.get("wall_seconds", 0.0),
        "commands": meta.get("commands", []),
        "follow_up": _follow_up(meta, spec_file, _in_archs),
        "archs_folder": archs_folder,
        "title": f"{space.name}: {meta['method']} search" + (f", {meta['proxy']} proxy" if meta.get("proxy") else ""),
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


def _follow_up(meta: dict, spec_file: str, _in_archs) -> list[str]:
    """Commands that run as printed from the report's folder: they read the archs `write_report` puts in the
    folder beside it, and `rks train` gets the data flags that rebuild the search's data (`--schema`, and on
    synthetic data its rows) with the final retrain's first seed."""
    flags = " ".join(shlex.quote(f) for f in meta.get("train_flags", ["--data", str(meta.get("data", "synthetic"))]))
    return [
        f"rks export {spec_file} {_in_archs('best_arch.json')} -o {_in_archs('best.py')}",
        f"rks train {spec_file} {_in_archs('best_arch.json')} {flags}",
        f"rks train {spec_file} --baseline {flags}",
    ]


def write_report(url: str, study: str | None, output: str) -> list[Path]:
    """The page, its Markdown summary beside it, and the archs its commands read in `STEM-archs/` beside both."""
    html = Path(output)
    report = build_report(url, study, f"{html.stem}-archs")
    page, summary = render_report(report)
    folder = html.parent / report["archs_folder"]
    for name, arch in report["archs"].items():
        atomic_write(folder / name, arch.to_json(indent=1) + "\n")
    atomic_write(html, page)
    atomic_write(html.with_suffix(".md"), summary)
    return [html, html.with_suffix(".md"), folder]


def curves_svg(report: dict) -> str | None:
    """An in-place search's curves: its reward (one-shot) or loss (DNAS); the FLOPs of its samples and of
    γ(θ) in baseline multiples, with the target; the entropy of the distribution; DNAS's temperature."""
    curves, gammas = report["summary"].get("curves", []), report["gammas"]
    if not curves:
        return None
    steps = [c["step"] for c in curves]
    fig, axes = figure(ncols=4, figsize=(14.0, 3.4))
    objective = "reward" if any("reward" in c for c in curves) else "loss"
    _curve(axes[0], curves, objective, f"{objective} (mean per window)")
    ax = axes[1]
    sampled = "sample_flops_ratio" if any("sample_flops_ratio" in c for c in curves) else "flops_ratio"
    _curve(ax, curves, sampled, "FLOPs / baseline", label="samples")
    if any("gamma_flops_ratio" in c for c in curves):
        _curve(ax, curves, "gamma_flops_ratio", "FLOPs / baseline", label="γ(θ)")
    elif gammas:
        ax.plot([g["step"] for g in gammas], [g["flops_ratio"] for g in gammas], "o-", label="γ(θ) at checkpoints")
    summary = report["summary"]
    ax.axhline(summary["flops_target"] / summary["baseline"]["flops"], color="#c44e52", linestyle=":", label="target")
    ax.legend(fontsize=7)
    _curve(axes[2], curves, "entropy", "entropy (nats)")
    if any("temperature" in c for c in curves):
        _curve(axes[3], curves, "temperature", "Gumbel-softmax temperature")
    elif gammas:
        axes[3].plot([g["step"] for g in gammas], [g["ne_batch"] for g in gammas], "o-")
        axes[3].set_ylabel("γ(θ) NE_batch at checkpoints", fontsize=8)
    for ax in axes:
        ax.set_xlabel("step")
        ax.set_xlim(0, max(steps))
    return _bare_svg(figure_svg(fig))


def _curve(ax, curves: list, key: str, ylabel: str, label: str | None = None) -> None:
    points = [(c["step"], c[key]) for c in curves if key in c]
    if points:
        ax.plot(*zip(*points), "-", label=label)
    ax.set_ylabel(ylabel, fontsize=8)


def plot_svg(report: dict) -> str:
    """NE against FLOPs: every candidate, the Pareto front, the baseline and the winner; models that were not
    trained (merged, scaled) stand as vertical lines at their FLOPs."""
    fig, ax = figure(figsize=(8.0, 4.8))
    if report["points"]:
        xs, ys = zip(*report["points"])
        label = "γ(θ) at checkpoints" if report["inplace"] else "candidates"
        ax.scatter(xs, ys, s=14, color="#8da0cb", label=label)
    if report["path"]:
        steps = report["path"]
        ax.plot([s["flops"] for s in steps], [s["val_ne"] for s in steps], "-o", color="#dd8452", label="incumbents")
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
    ax.set_ylabel(
        "NE_batch of γ(θ) (lower is better)"
        if report["inplace"]
        else "validation NE, first seed (lower is better)"
        if report["path"]
        else "window NE (proxy, lower is better)"
    )
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


def highlighted_space(source: str) -> tuple[str, str]:
    """The space's `.rks` source as HTML, and its CSS: coloured by the Pygments lexer where Pygments is
    installed (the `lsp` extra), else escaped plain text."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter

        from .lsp.lexer import RksLexer
    except ImportError:
        return str(jinja2.utils.markupsafe.escape(source)), ""
    formatter = HtmlFormatter(nowrap=True)
    return highlight(source, RksLexer(), formatter), formatter.get_style_defs(".rks")


def render_report(report: dict) -> tuple[str, str]:
    """(HTML page, Markdown summary)."""
    from .search.final import verdict

    curves = curves_svg(report)
    context = dict(
        report,
        plot=jinja2.utils.markupsafe.Markup(plot_svg(report)),
        curves=jinja2.utils.markupsafe.Markup(curves) if curves else None,
        source=report["space"].subnet_source(report["winner"]),
        arch_json=arch_text(report["winner"]),
        dot_text=arch_dot(report["space"], report["winner"]),
        wall=duration(report["wall_seconds"]),
        retrain_seeds=len(report["summary"].get("final", {}).get("winner", {}).get("seeds", [])),
        verdict=verdict(report["summary"]["final"]) if report["summary"].get("final") else None,
    )
    space_html, space_style = highlighted_space(report["space"].source)
    context["space_html"] = jinja2.utils.markupsafe.Markup(space_html)
    context["space_style"] = jinja2.utils.markupsafe.Markup(space_style)
    drawing = drawn(context["dot_text"])
    context["drawing"] = jinja2.utils.markupsafe.Markup(drawing) if drawing is not None else None
    env = _env()
    page = env.get_template("report.html.j2").render(**context)
    summary = env.get_template("report.md.j2").render(**context)
    return page, summary
