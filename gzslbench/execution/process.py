"""Process-wide settings, and who may change them.

A run holds torch's thread count only while it runs
(:func:`~gzslbench.core.environment.torch_threads`), so a Python caller gets its own setting back.
Settings that last for the life of a process (the allocator's, :func:`set_up_own_process`) are
made only in processes gzslbench owns: its worker processes and the command line, never in a
caller's notebook; so is the SIGTERM handler of a command (:func:`sigterm_as_interrupt`). What a
library changes in the caller's process is put back (:func:`caller_environment_kept`).
"""

from __future__ import annotations

import ctypes
import os
import platform
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from gzslbench.core.progress import start_method_kept

RETAIN_MEMORY_ENV = "GZSLBENCH_RETAIN_MEMORY"
# cuBLAS's fixed workspace configuration: 8 buffers of 4 MiB, PyTorch's own workspace size on Hopper GPUs.
CUBLAS_WORKSPACE = ":4096:8"
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
_INT_MAX = 2**31 - 1


# Workers stopped by Ctrl-C leave their queues' semaphores to the resource tracker, which cleans them up and
# says so in a two-line warning after "interrupted"; the cleanup is its job, the warning only noise.
QUIET_RESOURCE_TRACKER = "ignore:resource_tracker:UserWarning"


def set_up_own_process() -> None:
    """Settings for a process gzslbench started (a worker, the CLI): huge pages and freed memory kept.

    Large CPU tensors go on transparent huge pages (PyTorch reads ``THP_MEM_ALLOC_ENABLE`` once, at
    its first allocation): batched seeds allocate gradients of tens of MB every step, and faulting
    them in 4 KiB pages cost as much as the product that fills them.

    cuBLAS promises the same bits run after run only while one stream is active, unless its
    workspace configuration is fixed (``CUBLAS_WORKSPACE_CONFIG``, read when CUDA's first product
    runs; cuBLAS documentation, "Results reproducibility"). CUDA graphs warm up and capture on side
    streams, so gzslbench's processes fix it; a value the user set is kept.
    """
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    filters = [f for f in os.environ.get("PYTHONWARNINGS", "").split(",") if f]
    if QUIET_RESOURCE_TRACKER not in filters:  # read by the resource trackers, processes started later
        os.environ["PYTHONWARNINGS"] = ",".join([*filters, QUIET_RESOURCE_TRACKER])
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


@contextmanager
def caller_environment_kept() -> Iterator[None]:
    """Put the caller's environment variables, Python ``random`` state and start method back when the block ends.

    For libraries that change them in the calling process: dask.distributed's nanny writes the
    variables it gives its worker processes (thread caps of 1, a hash seed) into this process's
    own environment, where the caller's later subprocesses would inherit them, and its local
    cluster fixes the multiprocessing start method.
    """
    environ, state = dict(os.environ), random.getstate()
    try:
        with start_method_kept():
            yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        random.setstate(state)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (:func:`sigterm_as_interrupt`)."""


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status of a command stopped by ``exc``, as shells give it: 128 + the signal's number."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Handle SIGTERM like Ctrl-C while a command runs: finished records stay, its workers and children stop."""

    def interrupt(signum: int, frame: Any) -> None:
        raise Terminated

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait for the end of the block, then act as they would have.

    For the few milliseconds in which the records of seeds trained together are written: an
    interrupt between two of them would drop finished runs whose training took hours.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    received: list[tuple[int, Any]] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append((signum, frame))) for sig in _DEFERRED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            signum, frame = received[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler != signal.SIG_IGN:  # the default action (or a handler set outside Python)
                signal.raise_signal(signum)
