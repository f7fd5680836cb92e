"""Unique, safe identifiers for generated code (after torch.fx's `_Namespace`)."""
from __future__ import annotations

import builtins
import keyword
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


class Namespace:
    """Hands out identifiers that never repeat and never shadow keywords, builtins or reserved names."""

    def __init__(self, reserved=()):
        self._taken = set(reserved) | set(keyword.kwlist) | set(dir(builtins))

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
