"""Which names may become Python identifiers in generated code (after torch.fx's `_Namespace`)."""
from __future__ import annotations

import builtins
import keyword
import re

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# Names the generated modules use for themselves; a choice or input may not shadow them.
GENERATED_NAMES = frozenset({"self", "torch", "nn", "F", "math", "Supernet", "Subnet", "SPEC"})


def identifier_problem(name: str) -> str | None:
    """Why `name` cannot be used as an identifier, or None when it can."""
    if name.startswith("_"):
        return "names may not start with `_` (dunder and private names are reserved)"
    if "__" in name:
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
