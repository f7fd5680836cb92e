"""The ceilings a space, its data and its training run are checked against before any work starts, so bad
input costs a positioned message, not minutes of work and a MemoryError. Each is far above what the paper's
spaces need (Rankitect's supernets: tens of choices, five distances, widths in the thousands) and documented in
docs/language.md."""

from __future__ import annotations

import math
import os

MAX_SOURCE_BYTES = 1 << 20  # a `.rks` file
MAX_SIZE = 1 << 20  # an input's width, count or dim, a dim option, the pair bottleneck
MAX_DIM_OPTIONS = 256  # dim options of one block: a list's length or a scale's steps
MAX_CHOICES = 1024  # choices in a space, ranges expanded
MAX_CANDIDATES = 64  # candidate inputs of one choice
MAX_LOG10_SIZE = 4000  # architectures in a space: its exact size stays printable
MAX_SUPERNET_PARAMS = 1 << 31  # dense parameters of the all-on supernet (8 GiB of float32)
BYTES_PER_TRAINED_PARAM = 16  # float32 weight, gradient and Adam's two moments


def scientific(n: int, digits: int = 3) -> str:
    """`n` as `1.234e+56` for any size of integer (a float overflows above 1e308)."""
    if n < 10**15:
        return f"{n:.{digits}e}"
    shift = n.bit_length() - 53
    exponent = math.log10(n >> shift) + shift * math.log10(2)
    whole = math.floor(exponent)
    mantissa = 10 ** (exponent - whole)
    if round(mantissa, digits) >= 10:
        mantissa, whole = mantissa / 10, whole + 1
    return f"{mantissa:.{digits}f}e+{whole:02d}"


def available_memory() -> int | None:
    """Bytes this machine can still give (MemAvailable), or None where that is unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def memory_problem(needed: int, what: str) -> str | None:
    """Why `needed` bytes for `what` will not fit in this machine's available memory, or None."""
    free = available_memory()
    if free is None or needed <= 0.9 * free:
        return None
    return f"{what} needs about {gib(needed)}, more than the {gib(free)} this machine has available"
