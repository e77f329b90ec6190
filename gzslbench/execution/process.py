"""Set-up of a process that trains: its torch threads, and a C allocator that keeps freed memory."""

from __future__ import annotations

import ctypes
import os
import platform
from functools import cache

import torch

RETAIN_MEMORY_ENV = "GZSLBENCH_RETAIN_MEMORY"
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


def set_up_process(threads: int) -> None:
    """Give torch ``threads`` intra-op threads and keep freed memory for reuse (:func:`retain_freed_memory`)."""
    torch.set_num_threads(threads)
    retain_freed_memory()


@cache
def retain_freed_memory() -> bool:
    """Have glibc keep freed memory in the process; returns whether it was changed (glibc only).

    Every training step frees and allocates the same large gradient buffers again (13 MB for
    each wide layer, K times that with batched seeds). By default glibc serves such blocks with
    fresh ``mmap``s, or gives the top of its heap back to the system, so every step page-faults
    them in anew: on a 2-core VM that cost 10-15% of ACMR's training throughput. Served from the
    heap and never trimmed, the blocks are reused; the price is that the process's resident
    memory stays at its peak. ``GZSLBENCH_RETAIN_MEMORY=0`` keeps glibc's defaults.
    """
    if os.environ.get(RETAIN_MEMORY_ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library this process runs on
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _INT_MAX))
