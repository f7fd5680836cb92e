"""One searcher interface, one training engine: the registry and its flags, devices, progress off a terminal,
the evolution searcher written against the interface, and one-shot and DNAS in the study store and report."""

import argparse
import io
import json
import re
import shlex
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import ROOT, run_rks, space_path
from rankitect_dsl import Arch, RksError, load_space
from rankitect_dsl.arguments import build_parser
from rankitect_dsl.cli import main
from rankitect_dsl.runtime import progress as progress_module
from rankitect_dsl.runtime.engine import Engine, resolve_device
from rankitect_dsl.runtime.optim import _dense_step, _sparse_rows_step
from rankitect_dsl.search.registry import SEARCHERS
from rankitect_dsl.search.sampling.evolution import EvolutionProposer
from rankitect_dsl.search.sampling.loop import Search, SearchConfig
from rankitect_dsl.search.store.study import GAMMA, StudyStore, open_study


# -- the registry ----------------------------------------------------------------------------------------
def test_cli_names_no_method_and_dispatches_through_the_registry():
    cli = (ROOT / "rankitect_dsl" / "cli.py").read_text()
    assert not re.search(r'"(random|predictor|evolution|oneshot|dnas)"', cli)


@pytest.mark.parametrize("name", sorted(SEARCHERS))
def test_rks_search_runs_the_searcher_the_registry_names(name, monkeypatch):
    """`--method NAME` builds the class `SEARCHERS` names, and a name added to the registry alone is accepted:
    the command line holds no list of its own."""
    from rankitect_dsl.search import base

    built = []

    def capture(searcher, space, command_line):
        built.append(searcher)

    monkeypatch.setattr(base, "run_search", capture)
    monkeypatch.setitem(SEARCHERS, "registered-later", SEARCHERS[name])
    for method in (name, "registered-later"):
        assert main(["search", space_path("tiny"), "--method", method]) == 0
    module, cls = SEARCHERS[name].split(":")
    assert [(type(s).__module__, type(s).__name__) for s in built] == [(module, cls)] * 2
    assert type(built[0]).name == name


def _search_actions(method):
    parser = build_parser(method)
    search = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["search"]
    return {flag: a for a in search._actions for flag in a.option_strings}


def test_each_method_lists_only_its_own_flags_beside_the_common_ones():
    flags = {m: set(_search_actions(m)) for m in SEARCHERS}
    assert "--lambda" in flags["dnas"] and "--alpha" not in flags["dnas"]
    assert "--alpha" in flags["oneshot"] and "--lambda" not in flags["oneshot"]
    assert "--budget" in flags["predictor"] and "--examples" not in flags["predictor"]
    assert "--population" in flags["evolution"] and "--population" not in flags["random"]
    common = set.intersection(*flags.values())
    assert {"--device", "--storage", "--finalists", "--retrain-seeds", "--seed", "--lr", "--json"} <= common


def _all_flags(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_flags(sub, (*path, name))
        elif action.option_strings and action.option_strings[0] not in ("-h", "--help", "--version"):
            yield " ".join(path), action


@pytest.mark.parametrize("method", list(SEARCHERS))
def test_every_flag_of_every_command_says_what_it_does_and_its_default(method):
    for command, action in _all_flags(build_parser(method)):
        flag = f"{command} {action.option_strings[-1]}"
        assert action.help, f"{flag} has no help"
        has_default = action.default not in (None, False) and not action.required
        if has_default and not isinstance(action, argparse._StoreTrueAction):
            shown = "default" in action.help or re.search(r"\(\S+\)$", action.help)
            assert shown, f"{flag} hides its default"


def test_search_help_for_one_method_runs_through_the_command():
    proc = run_rks("search", space_path("tiny"), "--method", "dnas", "--help")
    assert proc.returncode == 0 and "--lambda" in proc.stdout and "--alpha" not in proc.stdout


# -- the engine --------------------------------------------------------------------------------------------
def test_auto_is_the_cpu_here_and_a_missing_cuda_is_one_clean_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RksError, match="no CUDA device is available here"):
        resolve_device("cuda")
    proc = run_rks("train", space_path("tiny"), "--baseline", "--examples", "500", "--device", "cuda")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--device cuda" in proc.stderr


def test_the_dense_rowwise_adagrad_step_equals_the_sparse_one_bit_for_bit():
    """The accelerator's update (no `nonzero`, a host sync) must move exactly the rows the CPU's moves."""
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(50, 8, generator=gen)
    total = torch.rand(50, generator=gen)
    grad = torch.randn(50, 8, generator=gen)
    grad[torch.rand(50, generator=gen) < 0.7] = 0.0  # most rows are not in the batch
    sparse_p, sparse_t, dense_p, dense_t = table.clone(), total.clone(), table.clone(), total.clone()
    _sparse_rows_step(sparse_p, grad, sparse_t, 0.1, 1e-10)
    _dense_step(dense_p, grad, dense_t, 0.1, 1e-10)
    assert torch.equal(sparse_p, dense_p) and torch.equal(sparse_t, dense_t)
    untouched = ~grad.any(1)
    assert torch.equal(dense_p[untouched], table[untouched]) and not torch.equal(dense_p, table)


def test_the_engine_batches_live_on_its_device_and_resumable_steps_read_fixed_rows(spaces):
    from rankitect_dsl.data.loading import load_data

    space = spaces["tiny"]
    data = load_data("synthetic", space, 300)
    engine = Engine("cpu")
    dense, cats, labels = engine.row_batch(data, 4, 64)
    rows = np.arange(4 * 64, 5 * 64) % data.n_train
    assert dense.device.type == "cpu" and torch.equal(labels, torch.from_numpy(data.labels[rows]))
    firsts = [b[2] for b in engine.batches(data, 0, 200, 64)]
    assert [len(b) for b in firsts] == [64, 64, 64, 8]


def test_progress_prints_plain_lines_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(progress_module, "LINE_SECONDS", 0.0)
    stream = io.StringIO()
    with progress_module.Progress(100, "DNAS", "step", True, stream) as bar:
        bar.update(25)
        bar.update(75)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("DNAS: 25/100 step (25%)") and "left" in lines[0]
    assert lines[-1].startswith("DNAS: 100/100 step (100%)")
    quiet = io.StringIO()
    with progress_module.Progress(100, "x", "ex", False, quiet) as bar:
        bar.update(100)
    assert quiet.getvalue() == ""


# -- a searcher written against the interface: regularised evolution ----------------------------------------
class NamedProxy:
    """Scores an arch by a fixed function of its JSON, so the test knows every score."""

    def __init__(self, space):
        self.space = space

    def __call__(self, arch, examples):
        return SimpleNamespace(
            window_ne=(sum(map(ord, arch.to_json())) % 997) / 997,
            examples=examples,
            seconds=0.0,
            extra={"flops": self.space.flops(arch), "params": self.space.params(arch)},
        )


def test_evolution_children_mutate_one_choice_of_the_best_young_candidate(spaces, tmp_path):
    """With the tournament as large as the population, every parent is the best of the last round."""
    space = spaces["tiny"]
    store = StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
    cfg = SearchConfig("evolution", 14, proxy_examples=500, round_size=4, progress=False)
    Search(space, NamedProxy(space), store, cfg, EvolutionProposer(population=4, tournament=4)).run()
    done = sorted(store.completed(), key=lambda t: t.number)
    archs = [json.loads(t.user_attrs["arch"])["choices"] for t in done]
    assert len(done) == 14 and len({space.subnet_key(Arch.from_json(t.user_attrs["arch"])) for t in done}) == 14
    mutants = 0
    for k in range(4, 14):  # round r (from 1) proposes from the 4 candidates of round r - 1
        r = k // 4
        parent = min(range(4 * r - 4, 4 * r), key=lambda i: (done[i].value, done[i].number))
        mutants += sum(archs[k][c] != archs[parent][c] for c in archs[k]) == 1
    assert mutants >= 9  # a child the mutations cannot find (50 draws) is left to the random fill


def test_evolution_runs_from_the_command_line_and_refuses_a_tournament_beyond_its_population(tmp_path, capsys):
    base = ["search", space_path("tiny"), "--method", "evolution", "--budget", "6", "--round-size", "3"]
    base += ["--proxy-examples", "1000", "--data", "synthetic:1", "--storage", f"sqlite:///{tmp_path}/e.db"]
    assert main([*base, "--population", "2", "--tournament", "3"]) == 1
    assert "--tournament 3 draws more candidates than --population 2" in capsys.readouterr().err
    assert main([*base, "--retrain-seeds", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["method"] == "evolution" and summary["evaluated"] == 6 and summary["final"]["baseline"]


# -- one-shot and DNAS in the study store and the report ----------------------------------------------------
@pytest.fixture(scope="module")
def inplace_stores(tmp_path_factory):
    """A finished one-shot and DNAS search, each in its own store: method → (storage, folder, summary)."""
    out = {}
    for method in ("oneshot", "dnas"):
        folder = tmp_path_factory.mktemp(method)
        db = f"sqlite:///{folder}/s.db"
        args = ["search", space_path("tiny"), "--method", method, "--flops-target", "1x", "--examples", "6000"]
        args += ["--checkpoint-every", "20", "--retrain-seeds", "1", "--data", "synthetic:1", "--storage", db]
        proc = run_rks(*args, "--json", cwd=folder)
        assert proc.returncode == 0, proc.stderr
        out[method] = db, folder, json.loads(proc.stdout)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("method", ["oneshot", "dnas"])
def test_an_inplace_search_records_its_run_and_gamma_at_every_checkpoint(inplace_stores, method):
    db, _, summary = inplace_stores[method]
    store = open_study(db)
    gammas = sorted(store.completed(GAMMA), key=lambda t: t.user_attrs["step"])
    steps = summary["steps"]
    assert [t.user_attrs["step"] for t in gammas] == [*range(20, steps, 20), steps]
    last = gammas[-1].user_attrs
    assert json.loads(last["arch"]) == summary["gamma"]["arch"]
    assert last["flops"] == summary["gamma"]["flops"] and gammas[-1].value == last["ne_batch"]
    assert store.meta["method"] == method and store.meta["summary"]["best"] == summary["best"]
    space = load_space(space_path("tiny"))
    assert (summary["study"], summary["storage"], summary["method"], summary["space"]) == (
        f"tiny-{method}",
        db,
        method,
        "tiny",
    )
    assert summary["baseline"]["flops"] == space.flops(space.baseline)
    assert summary["baseline"]["params"] == space.params(space.baseline)
    final = summary["final"]
    assert summary["best"]["arch"] == final["winner"]["arch"]
    assert summary["best"]["flops"] == space.flops(Arch.from_dict(summary["best"]["arch"]))
    assert (
        summary["beats_baseline"]
        is final["beats_baseline"]
        is (final["winner"]["val_ne"] < final["baseline"]["val_ne"])
    )
    relative = (final["winner"]["val_ne"] - final["baseline"]["val_ne"]) / final["baseline"]["val_ne"]
    assert final["margin"] == pytest.approx(relative)
    assert 0 < summary["seconds"] < 600
    show = run_rks("study", "show", db)
    assert show.returncode == 0 and method in show.stdout and f"γ(θ) at {len(gammas)} checkpoints" in show.stdout
    assert all(len(line) < 400 for line in show.stdout.splitlines())  # no space source or summary on one line


@pytest.mark.slow
@pytest.mark.parametrize("method", ["oneshot", "dnas"])
def test_the_report_of_an_inplace_search_draws_its_curves(inplace_stores, method):
    db, folder, _ = inplace_stores[method]
    out = folder / "report.html"
    rep = run_rks("report", db, "-o", out)
    assert rep.returncode == 0, rep.stderr
    page = out.read_text()
    assert "<script" not in page
    curves = inplace_stores[method][2]["curves"]
    gammas = open_study(db).completed(GAMMA)
    objective, flops, last = (
        ("loss", "sample_flops_ratio", "temperature") if method == "dnas" else ("reward", "flops_ratio", None)
    )
    expected = [sum(key in c for c in curves) for key in (objective, flops, "entropy")]
    expected.append(sum(last in c for c in curves) if last else len(gammas))
    drawn = _curve_lengths(page)
    assert len(drawn) == 4 and all(n > 3 for n in expected), (drawn, expected)
    for axes, n in zip(drawn, expected):  # each panel draws one point per record of its series
        assert n in axes, (drawn, expected)
    assert ("temperature" in page) == (method == "dnas") and ("reward" in page) == (method == "oneshot")


def _curve_lengths(page: str) -> list:
    """The vertex counts of the lines in each panel of the page's training-curve figure (matplotlib's SVG)."""
    section = page[page.index("Training curves") :]
    svg = section[section.index("<svg") : section.index("</svg>")]
    panels = svg.split('<g id="axes_')[1:]
    return [[d.count("L") + 1 for d in re.findall(r'<g id="line2d_\d+">\s*<path d="([^"]*)"', p)] for p in panels]


@pytest.mark.slow
def test_the_commands_an_inplace_report_suggests_run_as_printed(inplace_stores):
    """The sampling report's commands are run in test_report.py; an in-place report has no merge but its own
    data flags (`--examples` of the supernet's data), and its baseline retrains to the final baseline."""
    db, folder, summary = inplace_stores["dnas"]
    out = folder / "commands.html"
    assert run_rks("report", db, "-o", out).returncode == 0
    md = out.with_suffix(".md").read_text()
    block = md[md.index("Follow-up:") :].split("```")[1].strip().splitlines()
    assert any("--examples 6667" in line for line in block)  # the data's training rows: 6000 + the 10% slice
    for line in block:
        json_flag = ["--json"] if line.startswith("rks train") else []
        proc = run_rks(*shlex.split(line)[1:], *json_flag, cwd=folder)
        assert proc.returncode == 0, (line, proc.stderr)
        if line.startswith("rks train") and "--baseline" in line:
            assert json.loads(proc.stdout)["eval_ne"] == summary["final"]["baseline"]["eval_ne_seeds"][0]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed (Debian: apt install chromium)")
def test_the_report_of_an_inplace_search_opens_in_headless_chromium_without_console_errors(inplace_stores, tmp_path):
    from test_report import chromium

    db, folder, _ = inplace_stores["dnas"]
    out = folder / "shown.html"
    assert run_rks("report", db, "-o", out).returncode == 0
    proc, console = chromium(out.as_uri(), tmp_path / "shot.png", tmp_path)
    assert proc.returncode == 0 and not console, console
    assert (tmp_path / "shot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
