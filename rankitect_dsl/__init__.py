"""rankitect_dsl: a search-space language and compiler for NAS of ranking models (after Rankitect).

The weight-transfer functions need torch; they are imported on first use, so `load_space` and `rks check`
run without importing torch or sympy.
"""

from .core.arch import Arch, ChoiceArch
from .core.errors import ArchError, RksError
from .space import Space, load_source, load_space

__all__ = [
    "Arch",
    "ChoiceArch",
    "ArchError",
    "RksError",
    "Space",
    "load_space",
    "load_source",
    "transfer_weights",
    "transfer_back",
]


def __getattr__(name):
    if name in ("transfer_weights", "transfer_back"):
        from .runtime import transfer

        return getattr(transfer, name)
    raise AttributeError(f"module 'rankitect_dsl' has no attribute {name!r}")
