"""Refusals a security and reliability probe asked for (issue 26), one section per finding: checkpoints that
never run code, positioned limits, numbers that do not fit, data that does not parse, schema holes, the
shared study store, and what the commands print when their output goes away."""

import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, run_rks
from rankitect_dsl import RksError, load_source, load_space
from rankitect_dsl.data.loading import load_data
from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

BLOCKS = str(ROOT / "spaces" / "rankitect_blocks.rks")


@pytest.fixture(scope="module")
def blocks():
    return load_space(BLOCKS)


def _oneshot(space, folder, steps=6):
    data = load_data("synthetic", space, 256 * steps)
    cfg = OneShotConfig(256 * steps, float(space.flops(space.baseline)), batch_size=256, rl_batch=2, replay_k=2)
    cfg.warmup, cfg.checkpoint_every = 0.0, 3
    return OneShotSearch(space, data, space.baseline, cfg, folder / "s.oneshot.pt", folder / "s.jsonl")


class _WritesAFile:
    """Unpickling this calls `open(path, "w")`: what a crafted checkpoint would do with `os.system`."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


# -- 1. a checkpoint never runs code ------------------------------------------------------------
def test_a_crafted_checkpoint_does_not_run_its_code(blocks, tmp_path):
    search = _oneshot(blocks, tmp_path)
    victim = tmp_path / "written-by-the-pickle"
    torch.save({"step": _WritesAFile(victim)}, search.checkpoint)
    with pickle.loads(pickle.dumps(_WritesAFile(tmp_path / "control"))):  # the payload does work when trusted
        pass
    assert (tmp_path / "control").exists()
    with pytest.raises(RksError) as err:
        search.run()
    assert not victim.exists()
    message = err.value.render()
    assert str(search.checkpoint) in message and "delete" in message and len(message.splitlines()) == 1


def test_the_weight_sharing_supernet_refuses_a_crafted_file(tmp_path):
    from rankitect_dsl.search.sampling.proxies import WeightSharingProxy

    space = load_space(str(ROOT / "spaces" / "tiny.rks"))
    victim, checkpoint = tmp_path / "written", tmp_path / "w.supernet.pt"
    torch.save({"x": _WritesAFile(victim)}, checkpoint)
    with pytest.raises(RksError, match="delete .* to pretrain the supernet again"):
        WeightSharingProxy(space, load_data("synthetic", space, 1000), 500, checkpoint=checkpoint)
    assert not victim.exists()


def test_a_checkpoint_of_one_shot_holds_only_tensors_and_plain_values(blocks, tmp_path):
    """The replay buffer and the pending samples were NumPy arrays (the reason for weights_only=False)."""
    search = _oneshot(blocks, tmp_path)
    search.run()
    state = torch.load(search.checkpoint, weights_only=True)
    assert len(state["replay"]["rewards"]) > 0 and isinstance(state["replay"]["vectors"], torch.Tensor)
    resumed = _oneshot(blocks, tmp_path)
    resumed.resume()
    assert resumed.step == search.step and (resumed.replay.vectors == search.replay.vectors).all()
    assert resumed.np_rng.bit_generator.state == search.np_rng.bit_generator.state


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a state"])
def test_a_checkpoint_that_does_not_load_is_one_line_naming_it(blocks, tmp_path, damage):
    search = _oneshot(blocks, tmp_path)
    search.run()
    data = search.checkpoint.read_bytes()
    if damage == "empty":
        search.checkpoint.write_bytes(b"")
    elif damage == "truncated":
        search.checkpoint.write_bytes(data[: len(data) // 2])
    else:
        torch.save([1, 2, 3], search.checkpoint)
    with pytest.raises(RksError) as err:
        _oneshot(blocks, tmp_path).run()
    message = err.value.render()
    assert str(search.checkpoint) in message and "start the search over" in message
    assert len(message.splitlines()) == 1


def test_a_log_cut_mid_line_resumes_and_a_damaged_one_names_its_line(blocks, tmp_path):
    whole = _oneshot(blocks, tmp_path / "a")
    whole.run()
    folder = tmp_path / "b"
    first = _oneshot(blocks, folder, steps=6)
    first.steps = 3  # stop after the first checkpoint, as a killed run would
    first.run()
    with open(first.log, "a") as log:
        log.write('{"step": 3, "examples": 10')  # killed while writing a step the checkpoint does not hold
    resumed = _oneshot(blocks, folder).run()
    assert resumed["resumed_from"] == 3
    assert first.log.read_text().splitlines() == whole.log.read_text().splitlines()
    lines = first.log.read_text().splitlines()
    first.log.write_text("\n".join(lines[:1] + ["{not json"] + lines[1:]) + "\n")
    with pytest.raises(RksError, match=rf"{first.log}:2: not a step record"):
        _oneshot(blocks, folder).resume()


# -- 4 and 5. limits checked before work; numbers that do not fit are positioned errors -------------------
TINY = (ROOT / "spaces" / "tiny.rks").read_text()
HUGE_INT = "9" * 320


def _refusal(source):
    """Load `source`, which must be refused with positioned diagnostics (how fast: benchmarks/bench_refusals.py)."""
    with pytest.raises(RksError) as err:
        load_source(source, "bad.rks")
    assert all(d.span is not None for d in err.value.diagnostics), err.value.render()
    return err.value.render()


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("dim linear 4, 8", "dim linear 4, 1e309", "a dim option must be a positive integer, got `1e309`"),
        ("dim linear 4, 8", f"dim linear 4, {HUGE_INT}", "a dim option must be at most 1,048,576"),
        ("dim linear 4, 8", "dim linear 4, 9007199254740993", "a dim option must be at most 1,048,576"),
        ("dim linear 4, 8", "dim linear scale 8 by 0.5 .. 1.5 steps 100000000", "dim steps must be at most 256"),
        ("dim linear 4, 8", "dim linear scale 8 by 0.5 .. 1.5 steps 1000000000", "dim steps must be at most 256"),
        ("dim linear 4, 8", "dim linear scale 8 by 0.5 .. 1e309 steps 3", "the dim scale end `1e309` is not a finite"),
        ("dim linear 4, 8", "dim linear scale 8 by 0.5 .. 1e6 steps 3", "exceeds the largest dim"),
        ("dim linear 4, 8", "dim linear " + ", ".join(map(str, range(1, 400))), "a block may offer at most 256"),
        ("dense[4]", "dense[1000000000]", "an input size must be at most 1,048,576, got `1000000000`"),
        ("dense[4]", "dense[1e309]", "an input size must be a positive integer, got `1e309`"),
        ("embed[3, 4]", f"embed[3, {HUGE_INT}]", "(320 characters)"),
        ("from distance 1, 2", "from distance 1e999", "a connection distance must be a positive integer"),
        ("from distance 1, 2", f"from distance {HUGE_INT}", "a connection distance must be at most 1,024"),
        ("bottleneck 8", "bottleneck 1e309", "the pairwise bottleneck must be a positive integer"),
        ("keep 0.8", "keep 1e999", "the keep-probability must be in (0, 1]"),
        ("choice c3 {", "choice c3 .. c1000000 {", "holds 999,998 choices; a space may hold at most 1,024"),
        ("choice c3 {", f"choice c3 .. c{HUGE_INT} {{", "a space may hold at most 1,024"),
        ("c1 = linear(dense, sparse) dim 8", "c1 = linear(dense, sparse) dim 1e309", "dim 1e309 is not offered"),
    ],
)
def test_numbers_and_ranges_that_do_not_fit_are_positioned_errors(old, new, message):
    assert old in TINY
    rendered = _refusal(TINY.replace(old, new, 1))
    assert message in rendered and "bad.rks:" in rendered
    assert HUGE_INT not in rendered.splitlines()[0]  # a 320-digit literal is cut in the message


def _wide_tiny(width: int) -> str:
    """tiny.rks with `width` dense features and c1's linear block 4096 wide."""
    wide = TINY.replace("dense[4]", f"dense[{width}]").replace("dim linear 4, 8", "dim linear 4, 4096")
    return wide.replace("dim 8\n", "dim 4096\n")


def test_a_supernet_past_the_parameter_ceiling_is_refused_at_its_largest_choice():
    # The all-on supernet's size, counted by numel on built supernets: past every dim (4096) it grows linearly
    # with the dense width (a zero second difference), so three widths give it at a million.
    counts = [sum(p.numel() for p in load_source(_wide_tiny(n)).supernet().parameters()) for n in (5000, 6000, 7000)]
    assert counts[2] - 2 * counts[1] + counts[0] == 0
    million = counts[0] + (counts[1] - counts[0]) // 1000 * (1_000_000 - 5000)
    rendered = _refusal(_wide_tiny(1_000_000))
    assert f"the all-on supernet holds {million:.3e} parameters" in rendered and "choice `c1`" in rendered
    assert "bad.rks:10:8:" in rendered  # `choice c1 {`


def test_a_space_with_more_than_10_to_the_4000_archs_is_refused_and_one_past_1e308_prints():
    from rankitect_dsl.core.limits import scientific

    dims = ", ".join(str(8 * k) for k in range(1, 9))
    reads = "from distance 1, 2, 3, 4, 5, 6, 7, 8, 9\n from dense, sparse"
    body = f"{{ blocks linear, gating\n {reads}\n dim linear {dims} }}"
    head = "space big\ninput dense : dense[13]\ninput sparse : embed[4, 8]\n"
    rendered = _refusal(f"{head}choice c1 .. c1000 {body}\noutput from c1000\n")
    assert "more than 10^4000 architectures by choice" in rendered
    space = load_source(f"{head}choice c1 .. c120 {body}\noutput from c120\n", "big.rks")
    assert space.size > 10**308 and space.log10_size == pytest.approx(math.log10(space.size))
    assert scientific(space.size).endswith(f"e+{int(math.log10(space.size))}")
    assert f"architectures: {scientific(space.size, 4)}." in space.supernet_source()


def test_a_file_past_the_size_ceiling_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import rankitect_dsl.space as space_module

    path = tmp_path / "huge.rks"
    path.write_text(TINY.replace("dim linear 4, 8", "dim linear " + ", ".join(["4"] * 600_000)))

    def never(*args, **kwargs):
        raise AssertionError("the oversized file was read or parsed")

    monkeypatch.setattr(space_module, "parse", never)
    monkeypatch.setattr(Path, "read_text", never)
    monkeypatch.setattr(Path, "read_bytes", never)
    with pytest.raises(RksError, match="a space file may hold at most 1,048,576"):
        load_space(path)


def test_scientific_formats_any_integer():
    from rankitect_dsl.core.limits import scientific

    assert scientific(0) == "0.000e+00" and scientific(123456) == "1.235e+05"
    assert scientific(10**400) == "1.000e+400" and scientific(999_950 * 10**395) == "1.000e+401"
    assert scientific(7 * 10**5000, 2) == "7.00e+5000"


# -- 3, 5, 7, 8. data: non-finite values, unreadable rows, schema holes and laxness, missing columns -------
def _table(folder, rows, header="t,label,x,k"):
    (folder / "t.csv").write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return folder / "t.csv"


def _load(folder, schema: dict, rows=None, header="t,label,x,k"):
    import json

    from rankitect_dsl.data.preprocess import load_dataset
    from rankitect_dsl.data.sources import TableSource

    rows = rows if rows is not None else [f"{i},{i % 2},{i * 0.5},{'abc'[i % 3]}" for i in range(40)]
    path = _table(folder, rows, header)
    (folder / "s.json").write_text(json.dumps({"label": "label", "categorical": ["k"], **schema}))
    return load_dataset(TableSource(str(path), str(folder / "s.json")))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_a_non_finite_dense_value_is_refused_at_its_line_and_nothing_is_cached(tmp_path, value):
    from rankitect_dsl.data.preprocess import cache_root

    rows = [f"{i},{i % 2},{value if i == 7 else i * 0.1},a" for i in range(40)]
    with pytest.raises(RksError, match=rf"t\.csv:9: dense column `x` is `{value}`, not a finite number"):
        _load(tmp_path, {"dense": ["x"]}, rows)
    assert not [p for p in cache_root().glob("*") if not p.name.startswith(".")]


def test_non_finite_zero_reads_them_as_zero(tmp_path):
    rows = [f"{i},{i % 2},{'nan' if i == 7 else 'inf' if i == 8 else 1.0},a" for i in range(40)]
    data = _load(tmp_path, {"dense": [{"column": "x", "transform": "log1p"}], "non_finite": "zero"}, rows)
    assert np.isfinite(np.asarray(data.dense)).all()
    assert float(data.dense[7][0]) == 0.0 and float(data.dense[8][0]) == 0.0 and float(data.dense[6][0]) > 0


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"files": "t.csv"}, 'files: expected a list of file names, like ["train.csv"], got "t.csv"'),
        ({"files": [{"file": "t.csv", "columns": ["a", "a"]}]}, 'files[0].columns[1]: column "a" is already listed'),
        ({"joins": [{"file": "u.csv", "on": "k", "sep": ","}]}, "joins[0]: unknown key(s) sep"),
        ({"joins": [{"file": "u.csv", "on": "k", "delimiter": ""}]}, "joins[0].delimiter: must be one or more"),
        ({"dense": [{"transform": "log1p"}]}, 'dense[0]: missing "column"'),
        ({"dense": ["x", {"column": 3}]}, "dense[1].column: expected a non-empty string, got 3"),
        ({"joins": [{"on": "k"}]}, 'joins[0]: missing "file"'),
        ({"label": {"column": "label", "rule": 4}}, "label.rule: expected a non-empty string, got 4"),
        ({"label": {"column": "label", "rule": ">= nan"}}, "label.rule `>= nan` is not `OP NUMBER`"),
        ({"delimiter": ':"'}, "delimiter: must be one or more characters, none a quote or a line break"),
        ({"delimiter": "\n"}, "delimiter: must be one or more characters, none a quote or a line break"),
        ({"categorical": [{"column": "t", "parts": ["minute"]}]}, "categorical[0].parts[0]: must be one of hour,"),
        ({"categorical": [{"column": "t", "parts": ["hour"], "format": "iso"}]}, "categorical[0].format: must be"),
        (
            {"categorical": ["k", {"column": "t", "parts": ["hour", "hour"]}]},
            'categorical[1].parts[1]: "t.hour" is already listed at categorical[1].parts[0]',
        ),
        ({"dense": ["x", "x"]}, 'dense[1]: column "x" is already listed at dense[0]'),
        ({"categorical": ["k", "t", "k"]}, 'categorical[2]: column "k" is already listed at categorical[0]'),
        ({"non_finite": "drop"}, "non_finite: must be one of error, zero"),
        ({"sort_by": 3}, "sort_by: expected a non-empty string, got 3"),
        ({"categorical": []}, "categorical: must list at least one column"),
    ],
)
def test_schema_holes_are_refused_naming_the_key_path(tmp_path, schema, message):
    with pytest.raises(RksError) as err:
        _load(tmp_path, schema)
    assert message in err.value.render() and "s.json: " in err.value.render()


@pytest.mark.parametrize("key", ["sort_by", "dense", "categorical", "count_features", "label"])
def test_a_schema_column_the_data_lacks_is_refused_naming_the_header(tmp_path, key):
    """`sort_by` naming a missing column used to be ignored: the time split silently became file order."""
    schema = {"sort_by": {"sort_by": "when"}, "dense": {"dense": ["when"]}, "label": {"label": "when"}}.get(
        key, {key: ["when"]}
    )
    with pytest.raises(RksError, match=r"t\.csv: schema .* names column `when`, which the header lacks \(t, label"):
        _load(tmp_path, schema)


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["1,0,0.5,a", "2,1,0.5," + "b" * 200_000], "t,label,x,k", "t.csv:3: cannot read the row: field larger"),
        (["1,0,0.5,a"], "t,label,x,x", "t.csv:1: the header names column `x` twice"),
        (["1,0,0.5,a", "yesterday,1,0.5,b"], "t,label,x,k", "t.csv:3: sort_by column `t` is `yesterday`, not a"),
        (["1,0,0.5,a", '2,1,0.5,"b', "3,0,1,c"], "t,label,x,k", "t.csv:3: cannot read the row: unexpected end"),
    ],
)
def test_rows_the_reader_cannot_take_are_refused_at_their_line(tmp_path, rows, header, message):
    with pytest.raises(RksError) as err:
        _load(tmp_path, {"sort_by": "t"}, rows * 20 if "twice" in message else rows, header)
    assert message in err.value.render()


# -- 6. workers starting together on a new store ----------------------------------------------------------
def test_workers_starting_together_on_a_new_sqlite_store_create_it_one_at_a_time(tmp_path, monkeypatch):
    """Optuna's schema creation raced (`UNIQUE constraint failed: alembic_version.version_num`, 9 of 24
    workers in 6 rounds of 4 when each called optuna.create_study itself); creation now holds a lock. Each
    creator here waits inside the creation for the others to join it: without the lock they all do, and the
    creations overlap; with it each waits alone, times out, and the next starts only when it is done."""
    import threading

    import optuna

    from rankitect_dsl.search.store.study import StudyStore

    real = optuna.storages.RDBStorage
    meet = threading.Barrier(3, timeout=1.0)
    events, errors = [], []

    class Creating(real):
        def __init__(self, *args, **kwargs):
            events.append("enter")
            try:
                meet.wait()
            except threading.BrokenBarrierError:
                pass
            try:
                super().__init__(*args, **kwargs)
            finally:
                events.append("exit")

    monkeypatch.setattr(optuna.storages, "RDBStorage", Creating)

    def worker():
        try:
            StudyStore(f"sqlite:///{tmp_path}/s.db", "s")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and events == ["enter", "exit"] * 3, (events, errors)


# -- 4, 5, 8. the command line: memory, arch files, study names, --version, closed pipes -------------------
def test_examples_past_this_machines_memory_are_refused_before_allocating(capsys):
    from rankitect_dsl.cli import main

    assert main(["train", str(ROOT / "spaces" / "tiny.rks"), "--baseline", "--examples", "2000000000"]) == 1
    err = capsys.readouterr().err
    assert "--examples 2,000,000,000 on synthetic:0 needs about" in err and "lower --examples" in err


def test_a_supernet_past_this_machines_memory_is_refused(blocks, monkeypatch):
    from rankitect_dsl.core import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 2**20)
    with pytest.raises(RksError, match="the all-on supernet of `rankitect_blocks` .* needs about"):
        blocks.supernet()
    with pytest.raises(RksError, match="a subnet of `rankitect_blocks`"):
        blocks.subnet(blocks.baseline)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deep to be an arch"),
    ],
)
def test_arch_files_that_cannot_be_read_are_one_line(tmp_path, capsys, content, message):
    from rankitect_dsl.cli import main

    (tmp_path / "a.json").write_bytes(content)
    assert main(["flops", str(ROOT / "spaces" / "tiny.rks"), str(tmp_path / "a.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_study_name_that_is_no_file_name_is_refused_before_the_study_exists(tmp_path):
    proc = run_rks(
        "search", ROOT / "spaces" / "tiny.rks", "--method", "random", "--budget", "1",
        "--storage", f"sqlite:///{tmp_path}/s.db", "--study", "x</y",
    )  # fmt: skip
    assert proc.returncode == 2 and "`x</y` is not a study name" in proc.stderr and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_version_and_a_closed_pipe():
    from importlib.metadata import version

    proc = run_rks("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"rks {version('rankitect-dsl')}"
    rks = subprocess.Popen(
        [str(Path(sys.executable).parent / "rks"), "sample", str(ROOT / "spaces" / "rankitect.rks"), "-n", "3000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    rks.stdout.readline()
    rks.stdout.close()  # what `| head -1` does
    err = rks.stderr.read().decode()
    assert rks.wait(timeout=120) == 141 and err == "", err


def _many_choices(n: int, comment: str = "") -> str:
    body = "".join(
        f"choice my_choice{i} {{ blocks linear from {'dense' if i == 0 else 'distance 1'} }}\n" for i in range(n)
    )
    head = "space many\ninput dense : dense[4]\ninput sparse : embed[3, 4]\ndim linear 4\n"
    return f"{head}{comment}{body}output from my_choice0\n"


def test_a_file_of_too_many_choices_is_refused_before_it_is_parsed(monkeypatch):
    """5,000 choices: one diagnostic at the first `choice` past the ceiling, given without parsing the file
    (the parser here fails the test if it is called); `choice` in a comment or inside a name is not counted."""
    from rankitect_dsl.lang import parser

    monkeypatch.setattr(parser, "_parser", lambda *a, **k: pytest.fail("the file was parsed"))
    with pytest.raises(RksError) as err:
        load_source(_many_choices(5000, "# choice choice choice\n"), "many.rks")
    (diag,) = err.value.diagnostics
    assert "more than 1,024 choices" in diag.message and (diag.span.line, diag.span.column) == (5 + 1024 + 1, 1)
    monkeypatch.undo()
    assert load_source(_many_choices(1024, "# choice\n" * 5)).spec.name == "many"  # at the ceiling: accepted


def test_choices_past_the_ceiling_by_ranges_are_one_diagnostic():
    src = _many_choices(1).replace(
        "output",
        "".join(f"choice r{k}_1 .. r{k}_600 {{ blocks linear from distance 1 }}\n" for k in range(2)) + "output",
    )
    rendered = _refusal(src)
    assert rendered.count("error:") == 1 and "bad.rks:7:8: error: a space may hold at most 1,024 choices" in rendered
