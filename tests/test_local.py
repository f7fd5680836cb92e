"""The local search from the production model: its neighbourhood (against a brute-force enumeration), its
moves on a scripted trainer whose NE per arch and seed is known, the FLOPs cap, racing, and the command
line's resumable study (kill -9 and run again: the same path)."""

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, run_rks, space_path
from rankitect_dsl.search.constraints import valid_mask
from rankitect_dsl.search.sampling.local import NOISE_FLOOR, LocalSearch, t_quantile
from rankitect_dsl.search.sampling.neighbours import neighbours
from rankitect_dsl.space import load_space


@pytest.fixture(scope="module")
def tiny():
    return load_space(space_path("tiny"))


def brute_force_neighbours(space, vector, cap):
    """Every vector one or two decisions away, kept when it is a valid arch under `cap` whose subnet differs
    from `vector`'s: the superset that `neighbours` picks from, counted independently."""
    sizes = [d.size for d in space.decisions]
    here = space.subnet_key(space.decode(vector))
    out = {}
    for n in (1, 2):
        for idx in itertools.combinations(range(len(sizes)), n):
            for values in itertools.product(*[range(sizes[i]) for i in idx]):
                if any(vector[i] == v for i, v in zip(idx, values)):
                    continue
                vec = list(vector)
                for i, v in zip(idx, values):
                    vec[i] = v
                if not valid_mask(space, np.array([vec]))[0]:
                    continue
                arch = space.decode(vec)
                flops = space.flops(arch)
                if cap is not None and flops > cap:
                    continue
                key = space.subnet_key(arch)
                if key != here:
                    out.setdefault(key, []).append((n, tuple(vec), flops))
    return out


def test_neighbours_are_the_brute_force_single_moves_and_capped(tiny):
    base = tiny.encode(tiny.baseline)
    cap = tiny.flops(tiny.baseline)
    moves = neighbours(tiny, base, cap)
    brute = brute_force_neighbours(tiny, base, cap)
    keys = [m.key for m in moves]
    assert len(keys) == len(set(keys)), "a subnet is offered twice"
    assert set(keys) <= set(brute), "a neighbour outside the cap, invalid, or the incumbent itself"
    for m in moves:
        arch = tiny.decode(list(m.vector))
        assert tiny.flops(arch) == m.flops <= cap
        assert sum(a != b for a, b in zip(m.vector, base)) == (2 if m.compound else 1)
    # Every subnet one non-dim decision away (a dim moves one step only) is offered.
    dims = {i for i, d in enumerate(tiny.decisions) if d.kind == "dim"}
    one_away = {
        k
        for k, found in brute.items()
        for n, vec, _ in found
        if n == 1 and not any(i in dims and abs(vec[i] - base[i]) > 1 for i in range(len(base)))
    }
    assert one_away <= set(keys)


def test_compound_moves_widen_one_part_and_narrow_another(tiny):
    base = tiny.encode(tiny.baseline)
    cap = tiny.flops(tiny.baseline)
    here = tiny.flops(tiny.baseline)
    compounds = [m for m in neighbours(tiny, base, cap) if m.compound]
    assert compounds, "tiny's baseline has compound moves under its cap"
    over_alone = 0
    for m in compounds:
        changed = [i for i, (a, b) in enumerate(zip(m.vector, base)) if a != b]
        alone = [[m.vector[i] if j == i else v for j, v in enumerate(base)] for i in changed]
        if not valid_mask(tiny, np.array(alone)).all():
            continue  # one part alone is no arch (its choice's last input off): the other part makes it one
        flops = [tiny.flops(tiny.decode(vec)) for vec in alone]
        assert max(flops) > here > min(flops), (m.text, flops)
        over_alone += max(flops) > cap
    assert over_alone, "no compound reaches a widening that the cap forbids alone"


class Scripted:
    """A trainer whose validation NE is known: 0.9 + the arch's effect (the baseline's 0, an arch not named
    0.002) + the seed's shared shift (pairing cancels it) + a small per-(arch, seed) wobble. Counts what was
    asked."""

    def __init__(self, space, effects, wobble=0.0005):
        self.space, self.effects, self.wobble = space, effects, wobble
        self.asked = []

    def __call__(self, requests):
        out = []
        for arch, seed in requests:
            key = self.space.subnet_key(arch)
            self.asked.append((key, seed))
            rng = np.random.default_rng([seed, abs(hash(key)) % (1 << 31)])
            shift = [0.0, 0.02, -0.015, 0.01][seed % 4]
            effect = 0.0 if key == self.space.subnet_key(self.space.baseline) else self.effects.get(key, 0.002)
            out.append({"val_ne": 0.9 + effect + shift + self.wobble * rng.standard_normal()})
        return out


def test_moves_only_on_a_paired_gain_beyond_the_noise(tiny):
    base = tiny.encode(tiny.baseline)
    cap = tiny.flops(tiny.baseline)
    moves = neighbours(tiny, base, cap)
    good, tiny_gain = moves[-1], moves[0]  # the good one comes last in any order the prior may choose
    effects = {good.key: -0.01, tiny_gain.key: -0.0002}
    trainer = Scripted(tiny, effects)
    search = LocalSearch(tiny, trainer, [0, 1, 2], budget=len(moves), cap=cap).run()
    assert [s.key for s in search.path[1:]] == [good.key]
    taken = [v for v in search.visits if v.accepted]
    assert len(taken) == 1 and taken[0].move.key == good.key
    assert all(abs(d + 0.01) < 0.003 for d in taken[0].diffs), "paired differences cancel the seed shifts"
    # The one whose gain is within the noise was raced and not taken.
    near = [v for v in search.visits if v.move.key == tiny_gain.key]
    assert not near or not near[0].accepted


def test_a_level_trainer_never_moves_and_clear_losers_get_one_seed(tiny):
    cap = tiny.flops(tiny.baseline)
    trainer = Scripted(tiny, {}, wobble=0.0)  # every candidate 0.002 worse on every seed
    search = LocalSearch(tiny, trainer, [0, 1, 2], budget=8, cap=cap).run()
    assert len(search.path) == 1 and len(search.visits) == 8
    assert all(len(v.diffs) == 1 for v in search.visits), "a clear loser was trained on a second seed"
    baseline = tiny.subnet_key(tiny.baseline)
    assert sorted(s for k, s in trainer.asked if k == baseline) == [0, 1, 2]
    assert search.stopped.startswith("budget")
    assert search.noise() == (NOISE_FLOOR, 0), "no candidate was raced, so nothing estimated the noise"


def test_a_gain_below_z_standard_errors_is_not_taken(tiny):
    cap = tiny.flops(tiny.baseline)
    moves = neighbours(tiny, tiny.encode(tiny.baseline), cap)
    effects = {m.key: -0.0001 for m in moves}  # ahead on every seed, by less than the noise floor's 2 s.e.
    search = LocalSearch(tiny, Scripted(tiny, effects, wobble=0.0), [0, 1, 2], budget=5, cap=cap).run()
    assert len(search.path) == 1
    assert all(len(v.diffs) == 3 for v in search.visits), "a close call is raced on every seed"
    looser = LocalSearch(tiny, Scripted(tiny, effects, wobble=0.0), [0, 1, 2], budget=5, cap=cap, z=0.5).run()
    assert len(looser.path) > 1, "the same gain is taken when the bar is lower"


def test_t_quantile_against_the_published_table():
    # Student's t, two-sided 95% (one-sided 2.5%, z = 1.96): 4.303 (2 dof), 2.571 (5), 2.228 (10), 2.042 (30).
    for dof, exact in [(2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)]:
        assert abs(t_quantile(1.959964, dof) - exact) / exact < 0.04
    assert t_quantile(2.0, 0) == 2.0


def test_never_leaves_the_cap_and_stops_at_a_local_optimum(tiny):
    base = tiny.flops(tiny.baseline)
    cap = 0.9 * base  # below the baseline: every move must shrink the model
    rng = np.random.default_rng(0)
    effects = {}

    class Random(Scripted):
        def __call__(self, requests):
            for arch, _ in requests:
                effects.setdefault(self.space.subnet_key(arch), float(rng.normal(0, 0.02)))
            return super().__call__(requests)

    search = LocalSearch(tiny, Random(tiny, effects, wobble=0.0), [0, 1], budget=10_000, cap=cap).run()
    for s in search.path[1:]:
        assert tiny.flops(s.arch) <= cap
    for v in search.visits:
        assert tiny.flops(tiny.decode(list(v.move.vector))) <= cap
    assert search.stopped.startswith("local optimum")
    final = search.path[-1]
    left = [m for m in neighbours(tiny, tiny.encode(final.arch), cap) if m.key not in {s.key for s in search.path}]
    tried = {v.move.key for v in search.visits}
    assert all(m.key in tried for m in left), "stopped before every neighbour of the incumbent was tried"


def test_the_default_method_is_the_registrys():
    from rankitect_dsl.arguments import build_parser
    from rankitect_dsl.search.registry import DEFAULT

    args = build_parser(None).parse_args(["search", "x.rks", "--budget", "3"])
    assert args.method == DEFAULT == "predictor" and args.first_round is None


def test_local_refuses_a_space_without_a_baseline(tmp_path):
    source = (ROOT / "spaces" / "tiny.rks").read_text()
    bare = tmp_path / "bare.rks"
    bare.write_text(source[: source.index("baseline hand")])
    p = run_rks("search", bare, "--method", "local", "--budget", "2", cwd=tmp_path)
    assert p.returncode != 0 and "names no baseline" in p.stderr and "Traceback" not in p.stderr


def _path(summary):
    return [(s["move"], round(s["val_ne"], 9)) for s in summary["path"]]


@pytest.mark.slow
def test_cli_local_search_records_its_path_and_reports_it(tmp_path):
    db = f"sqlite:///{tmp_path}/l.db"
    args = ["search", space_path("tiny"), "--method", "local", "--budget", "6", "--examples", "3000", "--storage", db]
    p = run_rks(*args, "--export", tmp_path / "win", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    js = json.loads(p.stdout.strip().splitlines()[-1])
    assert js["method"] == "local" and js["evaluated"] == 6
    final = js["final"]
    assert final["winner"]["flops"] <= final["baseline"]["flops"]
    assert set(final["baseline"]["seeds"]).isdisjoint(js["seeds"]), "the finalists are judged on fresh seeds"
    assert final["baseline"]["val_ne_seeds"] != js["path"][0]["val_ne_seeds"]
    show = run_rks("study", "show", db, cwd=tmp_path)
    assert show.returncode == 0 and "path of incumbents" in show.stdout and "method             local" in show.stdout
    rp = run_rks("report", db, "-o", tmp_path / "r.html", cwd=tmp_path)
    assert rp.returncode == 0, rp.stderr
    assert "The path of incumbents" in (tmp_path / "r.html").read_text()


@pytest.mark.multiproc
def test_resume_after_kill_repeats_the_same_path(tmp_path):
    args = [space_path("tiny"), "--method", "local", "--budget", "8", "--examples", "3000", "--data", "synthetic:2"]
    args += ["--json"]
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same threads in every run: the same floats

    def command(db):
        return [sys.executable, "-m", "rankitect_dsl.cli", "search", *args, "--storage", f"sqlite:///{db}"]

    whole = subprocess.run(command(tmp_path / "whole.db"), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed_db = tmp_path / "killed.db"
    proc = subprocess.Popen(
        command(killed_db), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    from rankitect_dsl.search.store.study import open_study

    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.5)
        if killed_db.exists():
            try:
                if len(open_study(f"sqlite:///{killed_db}").completed("fit")) >= 6:
                    break
            except Exception:
                pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(open_study(f"sqlite:///{killed_db}").completed("fit"))
    assert done_before >= 6, "the search did not get far enough to be killed midway"
    resumed = subprocess.run(command(killed_db), cwd=tmp_path, env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (whole, resumed))
    assert _path(a) == _path(b)
    assert [v["move"] for v in a["visits"]] == [v["move"] for v in b["visits"]]
    assert b["trained"] < a["trained"], "the resumed run trained again what the killed one had stored"


@pytest.mark.multiproc
def test_jobs_share_the_fits_between_processes(tmp_path):
    store = f"journal:{tmp_path}/l.journal"
    # Fits of 20,000 rows: long enough that the helper, a fresh interpreter, is up before the work is done.
    args = ["search", space_path("tiny"), "--method", "local", "--budget", "8", "--examples", "20000", "--jobs", "2"]
    args += ["--json"]
    p = run_rks(*args, "--storage", store, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    from rankitect_dsl.search.store.study import open_study

    fits = open_study(store).completed("fit")
    assert len({t.user_attrs["pid"] for t in fits}) == 2, "the helper trained none of the fits"
    keys = [(t.user_attrs["arch"], t.user_attrs["seed"]) for t in fits]
    assert len(keys) == len(set(keys)), "a fit was trained twice"


def test_sampling_searches_start_from_the_baselines_neighbours(tiny, tmp_path):
    from test_engine import NamedProxy

    from rankitect_dsl.search.sampling.evolution import EvolutionProposer
    from rankitect_dsl.search.sampling.loop import Search, SearchConfig
    from rankitect_dsl.search.store.study import StudyStore

    cap = tiny.flops(tiny.baseline)
    near = {m.key for m in neighbours(tiny, tiny.encode(tiny.baseline), cap)}
    rounds = {}
    for first in ("incumbent", "random"):
        store = StudyStore(f"sqlite:///{tmp_path}/{first}.db", "s")
        cfg = SearchConfig("evolution", 8, round_size=4, flops_cap=cap, progress=False, first_round=first)
        Search(tiny, NamedProxy(tiny), store, cfg, EvolutionProposer(4, 2)).run()
        done = sorted(store.completed(), key=lambda t: t.number)
        rounds[first] = [
            tiny.subnet_key(tiny.decode(t.user_attrs["vector"])) for t in done if t.user_attrs["round"] == 0
        ]
    assert len(rounds["incumbent"]) == 4 and set(rounds["incumbent"]) <= near
    assert not set(rounds["random"]) <= near, "a random first round landed on the neighbours alone (reseed the test)"


def test_an_in_place_policy_can_start_centred_on_the_baseline():
    import torch

    from rankitect_dsl.search.inplace.policy import START_SHARE, Policy

    space = load_space(space_path("rankitect_blocks"))
    base = np.array(space.encode(space.baseline))
    relevant = space.relevance([base])[0]
    draws = {}
    for centre in (None, base):
        policy = Policy(space, 0.05, centre=centre)
        draws[centre is None] = policy.sample(4000, torch.Generator().manual_seed(0))
    kept_centred = (draws[False][:, relevant] == base[relevant]).mean()
    kept_uniform = (draws[True][:, relevant] == base[relevant]).mean()
    assert abs(kept_centred - (1 - START_SHARE)) < 0.03, kept_centred
    sizes = np.array([d.size for d in space.decisions])[relevant]
    assert abs(kept_uniform - (1 / sizes).mean()) < 0.03, kept_uniform


def test_rks_train_warns_when_examples_exceed_one_pass_over_a_file():
    from types import SimpleNamespace

    from rankitect_dsl.data.loading import passes_warning

    fit = SimpleNamespace(n_train=6400)
    assert passes_warning(6400, fit, synthetic=False) is None
    assert passes_warning(9000, fit, synthetic=True) is None, "synthetic rows are made to the count asked"
    text = passes_warning(8000, fit, synthetic=False)
    assert "1.25 passes over the 6,400 training rows" in text


@pytest.mark.parametrize("method", ["dnas", "oneshot"])
def test_a_warm_start_puts_the_trained_baseline_into_the_supernet(method, tmp_path):
    import torch

    from rankitect_dsl.data.loading import load_data
    from rankitect_dsl.search.inplace.dnas import DNASConfig, DNASSearch
    from rankitect_dsl.search.inplace.oneshot import OneShotConfig, OneShotSearch

    space = load_space(space_path("rankitect_blocks"))
    data = load_data("synthetic", space, 3000)
    Config, Search = (DNASConfig, DNASSearch) if method == "dnas" else (OneShotConfig, OneShotSearch)
    cfg = Config(examples=640, target=space.flops(space.baseline), batch_size=64, start="incumbent")
    search = Search(space, data, space.baseline, cfg, tmp_path / "s.pt", tmp_path / "s.jsonl")
    before = {k: v.clone() for k, v in search.supernet.state_dict().items()}
    trained = []
    search.warm_started = lambda model: trained.append(model) or type(search).warm_started(search, model)
    assert search.warm_start() == data.n_train
    (model,) = trained
    dense, cats = torch.from_numpy(data.dense[:256]), torch.from_numpy(data.cats[:256])
    search.supernet.eval(), model.eval()
    with torch.no_grad():
        through_supernet = search.supernet(dense, cats, arch=space.baseline)
        fresh = model(dense, cats)
    torch.testing.assert_close(through_supernet, fresh, rtol=1e-5, atol=1e-5)
    changed = [k for k, v in search.supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "the supernet kept its initialisation"
    if method == "oneshot":
        torch.testing.assert_close(search.reference(dense, cats), fresh)
    policy = search.policy if method == "oneshot" else search.theta
    assert (policy.most_likely() == np.array(space.encode(space.baseline)))[
        space.relevance([space.encode(space.baseline)])[0]
    ].all()
