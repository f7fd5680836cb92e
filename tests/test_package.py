"""The package's shape: imports point down the pipeline, checking a space needs neither torch nor sympy,
block names live in the registry, and no malformed file reaches a traceback."""

import ast
import contextlib
import random
import re
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, space_path
from rankitect_dsl import RksError, load_source

PACKAGE = ROOT / "rankitect_dsl"
# What each stage may import from the package (besides itself); the top-level modules may import anything.
ALLOWED = {
    "core": set(),
    "lang": {"core"},
    "compiler": {"core"},
    "data": {"core"},
    "runtime": {"core", "compiler", "data"},
    "search": {"core", "compiler", "data", "runtime"},
    "lsp": {"core", "lang", "compiler", "space"},  # the editor's server reads the checked space, never a model
}
NO_HEAVY = {"core", "lang", "lsp"}  # nor torch nor sympy, not even inside functions


def package_imports(path: Path):
    """(stage, stage imported, third-party top module) of every import in a module, nested ones included."""
    rel = path.relative_to(PACKAGE)
    stage, folder = rel.parts[0], list(rel.parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            full = folder[: len(folder) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            yield stage, full[0] if full else node.names[0].name, None
        elif isinstance(node, ast.ImportFrom):
            yield stage, None, node.module.split(".")[0]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield stage, None, a.name.split(".")[0]


def test_imports_only_point_down_the_pipeline():
    bad = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if len(rel.parts) == 1:
            continue
        stage = rel.parts[0]
        for _, target, external in package_imports(path):
            if target is not None and target != stage and target not in ALLOWED[stage]:
                bad.append(f"{rel} imports {target}")
            if stage in NO_HEAVY and external in ("torch", "sympy", "numpy"):
                bad.append(f"{rel} imports {external}")
    assert not bad, bad


def test_the_rule_catches_an_upward_import(tmp_path, monkeypatch):
    """The checker of the rule is itself checked: an upward import in a copy of core is reported."""
    copy = tmp_path / "rankitect_dsl" / "core"
    copy.mkdir(parents=True)
    (copy / "bad.py").write_text("from ..runtime.supernet import SupernetBase\nimport torch\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "rankitect_dsl")
    found = list(package_imports(copy / "bad.py"))
    assert ("core", "runtime", None) in found and ("core", None, "torch") in found


def test_load_space_and_check_import_neither_torch_nor_sympy():
    code = (
        "import sys\nfrom rankitect_dsl import load_space\nload_space(sys.argv[1])\n"
        "print(sorted(m for m in ('torch', 'sympy', 'numpy', 'networkx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, space_path("rankitect")], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
    cli = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "rankitect_dsl.cli", "check", space_path("rankitect")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert cli.returncode == 0
    imported = {line.split("|")[-1].strip() for line in cli.stderr.splitlines() if "|" in line}
    assert not {"torch", "sympy"} & imported


def test_block_names_are_spelled_only_in_the_registry_checker_and_templates():
    spelled = {}
    for path in PACKAGE.rglob("*.py"):
        n = len(re.findall(r"""["'](gating|dot_compressed|embed_fc)["']""", path.read_text()))
        if n:
            spelled[str(path.relative_to(PACKAGE))] = n
    assert set(spelled) <= {"core/blocks.py"}, spelled


# -- mutation fuzz of the shipped spaces ----------------------------------------------------------------
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|\.\.|[{}\[\](),:=]|#[^\n]*|\s+|.")
VOCABULARY = [
    "space",
    "input",
    "choice",
    "blocks",
    "from",
    "distance",
    "dim",
    "scale",
    "by",
    "steps",
    "fixed",
    "inputs",
    "pair",
    "keep",
    "bottleneck",
    "output",
    "baseline",
    "all",
    "linear",
    "embed_fc",
    "dot_compressed",
    "gating",
    "sum",
    "dense",
    "embed",
    "c1",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "=",
    "..",
    "0",
    "1",
    "16",
    "0.5",
    "-3",
    "__x",
    "self",
    "pad_sum",
    "\n",
    # numbers and ranges that do not fit (issue 26): overflowing floats, 320-digit integers, huge counts
    "1e309",
    "1e999",
    "9" * 320,
    "100000000",
    "1000000000",
    "c1000000",
    "scale 8 by 0.5 .. 1e309 steps 3",
    "scale 8 by 0.5 .. 1.5 steps 100000000",
]
MUTANT_SECONDS = 5  # a refusal costs a message, not minutes: each mutant loads or is refused within this


def mutants(text: str, n: int, seed: int):
    rng = random.Random(seed)
    tokens = [t for t in TOKEN.findall(text)]
    solid = [i for i, t in enumerate(tokens) if not t.isspace() and not t.startswith("#")]
    for _ in range(n):
        out = list(tokens)
        for i in sorted(rng.sample(solid, rng.randint(1, 4)), reverse=True):
            op = rng.random()
            if op < 0.4:
                out[i] = rng.choice(VOCABULARY)
            elif op < 0.7:
                out[i] = ""
            else:
                out[i] = out[i] + " " + rng.choice(VOCABULARY)
        yield "".join(out)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the block once `seconds` of wall time have passed (SIGALRM; main thread)."""

    def expired(signum, frame):
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "spaces").glob("*.rks")))
def test_every_mutant_loads_or_gets_a_positioned_diagnostic(name):
    text = open(space_path(name)).read()
    count = 300 if "rankitect" in name else 600
    failures = []
    for k, source in enumerate(mutants(text, count, seed=zlib.crc32(name.encode()) % 1000)):
        try:
            with time_limit(MUTANT_SECONDS):
                space = load_source(source, f"{name}-{k}.rks")
        except TimeoutError:
            failures.append((k, f"took more than {MUTANT_SECONDS} s", source))
            continue
        except RksError as err:
            rendered = err.render()
            if not all(d.span is not None for d in err.diagnostics) or not re.search(
                r"\.rks:\d+:\d+: error: ", rendered
            ):
                failures.append((k, rendered[:200]))
            continue
        except Exception as err:  # a traceback a user would see
            failures.append((k, f"{type(err).__name__}: {err}", source))
            continue
        assert space.size >= 1
    assert not failures, failures[:3]


REPRODUCERS = [
    ("avazu_dlrm", "choice top2 { blocks linear from by fixed inputs dim linear 128 }"),
    ("dhen_dims", "choice gate { blocks gating from mlp1, mlp2 blocks mlp1, mlp2 }"),
]


@pytest.mark.parametrize("name, decl", REPRODUCERS)
def test_a_choice_lost_to_an_error_does_not_reach_lowering(name, decl):
    """Both crashed with KeyError in the topological sort: a later choice still read the lost one."""
    choice = decl.split()[1]
    source, replaced = re.subn(rf"choice {choice}\s*\{{[^}}]*\}}", decl, open(space_path(name)).read())
    assert replaced == 1
    with pytest.raises(RksError) as err:
        load_source(source, f"{name}.rks")
    assert all(d.span is not None for d in err.value.diagnostics)


def test_the_search_plug_ins_import_no_torch():
    """search/methods/ holds only the torch-free `Searcher` plug-ins (flags, validation, orchestration): every
    one imports without torch, so `rks search --help` and the registry stay light; the algorithms they run
    (search/sampling/, search/inplace/) are imported inside `search()`."""
    code = (
        "import importlib, pkgutil, sys\nimport rankitect_dsl.search.methods as m\n"
        "for i in pkgutil.iter_modules(m.__path__):\n    importlib.import_module(f'{m.__name__}.{i.name}')\n"
        "from rankitect_dsl.search.registry import SEARCHERS, searcher_class\n"
        "[searcher_class(name) for name in SEARCHERS]\n"
        "print(sorted(k for k in ('torch', 'sympy') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_search_modules_live_in_the_folder_of_their_role():
    """The algorithms in sampling/ and inplace/, the store in store/, the plug-ins in methods/; at the top
    only what every method shares."""
    search = PACKAGE / "search"
    top = {p.stem for p in search.glob("*.py")} - {"__init__"}
    assert top == {"base", "registry", "flags", "constraints", "final"}
    assert {p.stem for p in (search / "methods").glob("*.py")} & top == set()
    for folder in ("sampling", "inplace", "store", "methods"):
        assert (search / folder / "__init__.py").exists()


def module_graph(package: Path) -> dict:
    """Module → the package's modules it imports, at the top or inside functions (a lazy import still ties
    the two modules together)."""

    def name(path: Path) -> str:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in package.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here.split(".")[: len(here.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets |= {t for t in [target, *(f"{target}.{a.name}" for a in node.names)] if t in modules}
        # a package's own __init__ and its modules import each other by design: not a cycle between ideas
        graph[module] = {
            t for t in targets if t != module and not t.startswith(module + ".") and not module.startswith(t + ".")
        }
    return graph


def test_no_two_modules_import_each_other(tmp_path):
    import networkx as nx

    cycles = list(nx.simple_cycles(nx.DiGraph(module_graph(PACKAGE))))
    assert not cycles, cycles[:3]
    # the walk finds a cycle made on purpose, lazy import included
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("def f():\n    from .a import y\n")
    assert list(nx.simple_cycles(nx.DiGraph(module_graph(tmp_path / "pkg")))) != []


def test_every_subpackage_is_installed():
    """pyproject.toml lists the packages a wheel holds: a folder left out installs nowhere but in editable mode."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py") if "__pycache__" not in p.parts
    }
    assert folders <= listed, sorted(folders - listed)
