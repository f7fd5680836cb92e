"""`rks report`: one self-contained page for a finished search, checked in headless Chromium when it is here."""

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import run_argv, run_rks, search_cmd, space_path
from rankitect_dsl import Arch, load_space

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BUDGET, EXAMPLES = 4, 800


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    db = folder / "s.db"
    proc = run_argv(search_cmd(db, BUDGET, "--retrain-seeds", "1", examples=EXAMPLES))
    assert proc.returncode == 0, proc.stderr
    out = folder / "report.html"
    rep = run_rks("report", f"sqlite:///{db}", "-o", out)
    assert rep.returncode == 0, rep.stderr
    return {
        "db": db,
        "html": out.read_text(),
        "md": out.with_suffix(".md").read_text(),
        "summary": json.loads(proc.stdout),
        "out": out,
    }


def test_page_holds_the_plot_the_winner_its_source_cost_and_commands(finished):
    page, summary = finished["html"], finished["summary"]
    space = load_space(space_path("tiny"))
    winner = Arch.from_dict(summary["best"]["arch"])
    assert page.lstrip().startswith("<!DOCTYPE html>") and "<script" not in page
    assert page.count("<svg") >= 1 + (shutil.which("dot") is not None)  # the plot, and the drawing with Graphviz
    assert f"<td>{space.flops(winner):,}</td>" in page and f"<td>{space.params(winner):,}</td>" in page
    assert "def forward(self, dense, sparse)" in page  # the exported subnet
    assert f"<td>{summary['final']['winner']['eval_ne']:.4f}</td>" in page  # retrained, scored on the tail
    assert f"<td>{summary['final']['baseline']['eval_ne']:.4f}</td>" in page
    # every candidate and the baseline ran the proxy on EXAMPLES examples
    assert f"<td>{(BUDGET + 1) * EXAMPLES:,}</td>" in page
    assert "rks search " in page and "--budget 4" in page
    assert not re.search(r"""(?:src|href)=["'](?!#)""", page)  # nothing loaded from elsewhere


def test_page_shows_the_space_highlighted(finished):
    pytest.importorskip("pygments")
    page = finished["html"]
    section = page[page.index('<pre class="rks">') : page.index("</pre>", page.index('<pre class="rks">'))]
    assert '<span class="k">choice</span>' in section and '<span class="nb">dot_compressed</span>' in section
    text = html.unescape(re.sub(r"<[^>]+>", "", section[len('<pre class="rks">') :]))
    assert text == Path(space_path("tiny")).read_text()


def test_markdown_summary_beside_it(finished):
    md = finished["md"]
    assert md.startswith("# tiny: random search") and "| winner |" in md and "| baseline |" in md
    arch = md[md.index("```json") + 7 :]
    assert Arch.from_dict(json.loads(arch[: arch.index("```")])).to_dict() == finished["summary"]["best"]["arch"]


def test_merged_and_scaled_models_cost_at_least_the_winner(finished):
    cells = r"<tr><td>([^<]+)</td>" + r"<td>[^<]*</td>" * 3 + r"<td>([\d,]+)</td>"  # model, 3 NEs, FLOPs
    rows = dict(re.findall(cells, finished["html"]))
    winner = int(rows["winner"].replace(",", ""))
    scaled = [int(v.replace(",", "")) for k, v in rows.items() if k.startswith("scaled")]
    assert len(scaled) == 2 and all(f >= winner for f in scaled)
    merged = [int(v.replace(",", "")) for k, v in rows.items() if k.startswith("merged")]
    assert all(f >= winner for f in merged)


def test_report_errors_are_clean_and_write_nothing(tmp_path):
    out = tmp_path / "r.html"
    missing = tmp_path / "missing.db"
    proc = run_rks("report", f"sqlite:///{missing}", "-o", out)
    assert proc.returncode == 1 and "no study store" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not missing.exists()
    import optuna

    optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'e.db'}")
    proc = run_rks("report", f"sqlite:///{tmp_path / 'e.db'}", "-o", out)
    assert proc.returncode == 1 and "no finished run" in proc.stderr and not out.exists()


def chromium(url, png, tmp_path):
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        f"--screenshot={png}",
        url,
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return proc, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt install chromium)")
def test_report_opens_in_headless_chromium_without_console_errors(finished, tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<html><body><script>console.error("seen"); missing_function();</script></body></html>')
    _, seen = chromium(control.as_uri(), tmp_path / "control.png", tmp_path)
    assert seen, "the console check must see a page's console errors"
    shot = finished["out"].with_suffix(".png")
    proc, console = chromium(finished["out"].as_uri(), shot, tmp_path)
    assert proc.returncode == 0 and not console, console
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_md_escapes_what_it_did_not_write(finished, tmp_path):
    """A recorded command holding three backticks closed its code block, and what followed rendered as HTML."""
    import optuna

    copy = tmp_path / "s.db"
    shutil.copy(finished["db"], copy)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{copy}")
    hostile = "rks search x.rks ```\n<img src=x onerror=alert(1)> | *bold* [link](http://x)"
    study.set_user_attr("commands", [*study.user_attrs["commands"], hostile])
    study.set_user_attr("data", "synthetic:1 <b>`x`</b>")
    out = tmp_path / "r.html"
    assert run_rks("report", f"sqlite:///{copy}", "-o", out).returncode == 0
    md = out.with_suffix(".md").read_text()
    run = md[md.index("The search ran as:") : md.index("Follow-up:")].strip().splitlines()
    fence, body = run[2], run[3:-1]
    assert fence == "````" and run[-1] == fence  # longer than the recorded ```
    assert not any(line.startswith("````") for line in body) and hostile.splitlines()[1] in body
    study_line = next(line for line in md.splitlines() if line.startswith("Study "))
    assert "data `` synthetic:1 <b>`x`</b> ``," in study_line  # a code span its own backtick cannot close
    assert md.count("````") == 2  # only the block holding the backticks needed the longer fence


@pytest.mark.slow
def test_every_command_the_report_suggests_runs_as_printed(finished):
    """The follow-up lines had no `--schema`, `--examples N --seed S` placeholders and a merge of files never
    written; now each runs from the report's folder, and `rks train --baseline` retrains the final baseline."""
    import shlex

    md = finished["md"]
    block = [line for line in md[md.index("Follow-up:") :].split("```")[1].strip().splitlines()]
    assert any(line.startswith("rks merge") for line in block) and any(line.startswith("rks scale") for line in block)
    for line in block:
        json_flag = ["--json"] if line.startswith("rks train") else []
        proc = run_rks(*shlex.split(line)[1:], *json_flag, cwd=finished["out"].parent)
        assert proc.returncode == 0, (line, proc.stderr)
        if "--baseline" in line:
            retrained = finished["summary"]["final"]["baseline"]["eval_ne_seeds"][0]
            assert json.loads(proc.stdout)["eval_ne"] == retrained
