"""Worker processes of gzslbench's own: started for one call, stopped before it returns.

joblib's ``Parallel`` keeps one pool of processes for the life of the Python session and shares
it with the caller's own joblib jobs, so the settings a run makes in its workers (the allocator's,
huge pages: :func:`~gzslbench.execution.process.set_up_own_process`) would reach the caller's
later jobs, and the workers would outlive the call. gzslbench runs its jobs on a pool of its own,
loky's (joblib's process backend), and stops it when the jobs are done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, as_completed
from contextlib import contextmanager
from typing import Any

from gzslbench.core.environment import cpu_count
from gzslbench.core.registry import caller_classes, register_caller_classes

# The math libraries' thread counts, capped in each worker at its share of the cores, as joblib caps them.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def worker_environment(n_jobs: int) -> dict[str, str]:
    """Thread caps for ``n_jobs`` workers sharing the cores; a variable the caller set is left to them."""
    share = str(max(1, cpu_count() // n_jobs))
    return {name: share for name in THREAD_VARIABLES if name not in os.environ}


@contextmanager
def worker_pool(n_jobs: int) -> Iterator[Executor]:
    """``n_jobs`` worker processes for the block; they finish their jobs when it ends, or are killed if it fails.

    Killed on any exception, Ctrl-C or the closing of a generator that holds the block, so no
    worker writes after the block is left.
    """
    from joblib.externals.loky import ProcessPoolExecutor  # joblib's import is slow and sets variables: on use only

    executor = ProcessPoolExecutor(
        max_workers=n_jobs,
        env=worker_environment(n_jobs),
        initializer=register_caller_classes,  # what the caller's script registered exists there too
        initargs=caller_classes(),
    )
    try:
        yield executor
    except BaseException:
        executor.shutdown(wait=True, kill_workers=True)
        raise
    executor.shutdown(wait=True)


def as_finished(executor: Executor, function: Callable[..., Any], calls: Sequence[tuple]) -> Iterator[Any]:
    """``function(*args)`` for every ``args`` of ``calls`` on ``executor``, yielded as each finishes.

    A job's exception is raised here (a worker that died raises loky's ``TerminatedWorkerError``).
    """
    for future in as_completed([executor.submit(function, *args) for args in calls]):
        yield future.result()


def in_workers(function: Callable[..., Any], calls: Sequence[tuple], n_jobs: int) -> Iterator[Any]:
    """:func:`as_finished` on a :func:`worker_pool` of ``n_jobs`` processes, stopped when the stream ends or closes."""
    with worker_pool(n_jobs) as executor:
        yield from as_finished(executor, function, calls)
