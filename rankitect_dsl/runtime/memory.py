"""Keeping the process's peak memory near what is alive: the heap setting the checkpointed supernet needs.

glibc serves large allocations with mmap until one is freed, then raises its mmap threshold to that size (up
to 32 MiB) and carves later ones of that size from the heap. A supernet step allocates and frees thousands of
1-60 MiB activations of many widths, so the heap fragments: on `rankitect.rks` at batch 512 with activation
checkpointing the process peaks at 4.2 GB for 2 GB alive. Fixing the threshold at 32 MiB (the largest it
would reach anyway) stops the drift: 2.7 GB peak at the same step time (`benchmarks/bench_supernet.py`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

_M_MMAP_THRESHOLD = -3  # mallopt parameter number, from <malloc.h>
_THRESHOLD = 32 * 1024 * 1024


@lru_cache(maxsize=1)
def fix_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold for this process (once); False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _THRESHOLD))
    except (OSError, AttributeError):
        return False
