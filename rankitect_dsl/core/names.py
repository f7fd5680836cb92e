"""The naming authority: which names may become Python identifiers in generated code, the identifiers
codegen hands out, and the keys of parameters and decisions (after torch.fx's `_Namespace` and its one
table of illegal names)."""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from .blocks import TEMPLATE_CLASSES

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

# Helper functions the subnet template may define at module level.
HELPER_FUNCTIONS = frozenset({"place_at", "pad_sum"})
# Every module-level name the generated modules use for themselves: imports, helpers, template classes
# and the supernet module's constants. A choice or input may not take one of them (a test renders the
# templates and checks this table covers every name they define).
GENERATED_NAMES = frozenset(
    {"self", "torch", "nn", "F", "math", "SPEC", "PARAMETER_SHAPES", "SupernetBase"}
    | HELPER_FUNCTIONS
    | TEMPLATE_CLASSES
)
SEPARATOR = "__"  # user names may not contain it, so generated keys split back unambiguously


def identifier_problem(name: str) -> str | None:
    """Why `name` cannot be used as an identifier, or None when it can."""
    if name.startswith("_"):
        return "names may not start with `_` (dunder and private names are reserved)"
    if SEPARATOR in name:
        return "names may not contain `__` (generated code uses it as a separator)"
    if not _IDENT.match(name):
        return "not a valid identifier (use ASCII letters, digits and `_`, starting with a letter)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if hasattr(builtins, name):
        return "shadows a Python builtin"
    if name in GENERATED_NAMES:
        return "is reserved by the generated code"
    return None


class Namespace:
    """Hands out identifiers that never repeat and never shadow keywords, builtins or reserved names."""

    def __init__(self, reserved=()):
        self._taken = set(reserved) | set(keyword.kwlist) | set(dir(builtins)) | GENERATED_NAMES

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def create(self, base: str) -> str:
        base = _UNSAFE.sub("_", base).strip("_") or "value"
        if base[0].isdigit():
            base = f"v{base}"
        name, n = base, 1
        while name in self._taken:
            name = f"{base}_{n}"
            n += 1
        self._taken.add(name)
        return name


# -- keys of the supernet's parameters -----------------------------------------------------------
# Keys are joined with SEPARATOR, which no user name contains, and told apart by shape: a block's key has 3
# parts (choice, block, role), a stack adaptor's 4 with `stack` second and a STACK role, a pair FC's 4 with
# `fc` first and a PAIR_FC role, the head's 2 (the adaptors' keys and `param_owner`: `core/adaptors.py`). So
# no choice name (`fc`, `stack`, `head`) makes two keys one; tests/test_cost.py counts the supernet's
# parameters on names built to try.
PAIR_KEY, HEAD_KEY = "fc", "head"


def block_param(choice: str, block: str, role: str) -> str:
    return SEPARATOR.join((choice, block, role))


def pair_stem(left: str, right: str) -> str:
    """The identifier stem of the shared FC_ij in the export; `Namespace.create` makes it unique, so two pairs
    whose joined names agree (`a_b`/`c`, `a`/`b_c`) still get their own attributes."""
    return f"fc_{left}_{right}"


# -- parts of the cost model -------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Part:
    """A part of a subnet's cost, keyed by structure (never by joined names, which collide): a choice, the
    shared FC of a (left, right) pair, or the classifier head. `label` is for people, `key` for JSON."""

    kind: str  # "choice" | "pair" | "head"
    names: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        if self.kind == "choice":
            return self.names[0]
        if self.kind == "pair":
            return f"FC({self.names[0]} -> {self.names[1]})"
        return "(classifier)"


def choice_part(name: str) -> Part:
    return Part("choice", (name,))


def pair_part(left: str, right: str) -> Part:
    return Part("pair", (left, right))


HEAD_PART = Part("head")


# -- names of decisions ----------------------------------------------------------------------------
def decision_name(choice: str, kind: str, target: str | None = None) -> str:
    """`c.block`, `c.input.x`, `c.left`, `c.right`, `c.dim.linear`."""
    return ".".join(p for p in (choice, kind, target) if p is not None)
