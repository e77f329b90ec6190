"""The Dask backend: run specs as tasks on a ``dask.distributed`` cluster (local, or any scheduler by address).

Usage::

    gzslbench run -m acmr -d cub --seeds 5 --backend dask --n-jobs 4        # a LocalCluster of 4 workers
    gzslbench run -m acmr -d cub --seeds 5 --scheduler tcp://HOST:8786 --backend dask

Each spec becomes one task that calls :func:`gzslbench.execution.execute.run_in_worker` on a worker, as a
joblib worker does: the worker loads the data, claims the spec and writes the record atomically,
so the command and its workers must see the results folder at the same path (a shared
filesystem on a cluster). A worker that dies mid-run (killed, out of memory, node lost) loses
only that run: the scheduler hands the task to another worker until the task has killed
``distributed.scheduler.allowed-failures`` workers (3 by default), and then the run is reported
failed. Its record is never half-written: records are renamed into place, the dead worker's
claim lock died with it, and what it left (claim file, temp file) is removed here. A task that
raises instead of dying (a filesystem error while saving, say) is resubmitted ``RETRIES`` times.
No run waits queued on a worker: at most one task per worker thread is out at a time, the next
submitted as one finishes, so no run shares the fate of a worker that another run kills.

Ctrl-C in a terminal reaches the command and its LocalCluster's worker processes alike; the
workers ignore it (the command stops them as it closes the cluster), and the distributed loggers
are quiet while it does, so an interrupted run ends with the command's one line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from gzslbench.core.errors import GZSLBenchError
from gzslbench.execution.execute import run_in_worker
from gzslbench.execution.process import caller_environment_kept
from gzslbench.execution.spec import RunSpec
from gzslbench.results.store import remove_partial_writes

if TYPE_CHECKING:
    from distributed import Client

RETRIES = 1
CONNECT_TIMEOUT_S = 20.0
INSTALL_HINT = "pip install 'gzslbench[dask]'"


def _distributed() -> Any:
    """The ``distributed`` module, or one clear line on how to install it."""
    try:
        import distributed
    except ImportError:
        raise GZSLBenchError(f"--backend dask needs dask.distributed, which is not installed: {INSTALL_HINT}") from None
    return distributed


@contextmanager
def dask_client(n_workers: int, scheduler: str | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new loopback LocalCluster of ``n_workers`` processes.

    LocalCluster workers are single-threaded processes: torch sets its own thread count per run
    (the spec's ``threads``), and separate processes keep one run's crash from taking others along.
    """
    distributed = _distributed()
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise GZSLBenchError(f"cannot connect to the Dask scheduler at '{scheduler}': {exc}") from None
        with client:
            yield client
        return
    with (
        caller_environment_kept(),
        distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def ignore_interrupts_plugin() -> Any:
    """A worker plugin that makes a worker process ignore SIGINT (Ctrl-C): the command that owns it stops it."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        name = "gzslbench-ignore-interrupts"

        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


@contextmanager
def quiet_distributed_logs() -> Iterator[None]:
    """Silence the dask.distributed loggers in this process for the block; their levels are restored after.

    For shutting a cluster down after an interrupt, when its warnings about closed comms and
    cancelled tasks say nothing the command's own line does not.
    """
    names = ["distributed", *(n for n in logging.root.manager.loggerDict if n.startswith("distributed."))]
    loggers = [logging.getLogger(n) for n in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def lost_record(spec: RunSpec, out: str, reason: str) -> dict[str, Any]:
    """Report a run whose worker died: nothing is written, and the dead worker's temp files go."""
    remove_partial_writes(spec.path(out))
    return {"status": "failed", "error": reason, **asdict(spec), "config_hash": spec.config_hash}


def run_on_dask(
    specs: Sequence[RunSpec], out: str | Path, force: bool, n_workers: int, scheduler: str | None = None
) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """Run ``specs`` as Dask tasks and yield each with its record as it finishes (in finishing order).

    At most one task per worker thread is out at a time (:func:`capacity`): the scheduler queues a
    few tasks on busy workers rather than on itself, and a task queued on a worker that dies counts
    that death against its own allowed failures. A user error on a worker (data missing there,
    say) stops the command, as it does in a local run; any other task error or a worker death
    becomes a ``failed`` record for that run only.
    """
    distributed = _distributed()
    out = str(Path(out).resolve())
    waiting = list(specs)
    out_now: dict[Any, RunSpec] = {}
    shutdown = ExitStack()  # left after the client and cluster are closed
    with shutdown, dask_client(n_workers, scheduler) as client:
        if not scheduler:  # our own LocalCluster's workers: Ctrl-C is the command's to handle
            client.register_plugin(ignore_interrupts_plugin())
        finished = distributed.as_completed()

        def submit_while_free() -> None:
            while waiting and len(out_now) < capacity(client):
                spec = waiting.pop(0)
                key = f"gzslbench-{spec.dataset}-{spec.method}-{spec.config_hash}-seed-{spec.seed}-{uuid4().hex[:8]}"
                future = client.submit(run_in_worker, [spec], out, force, key=key, pure=False, retries=RETRIES)
                out_now[future] = spec
                finished.add(future)

        try:
            submit_while_free()
            for future in finished:
                spec = out_now.pop(future)
                submit_while_free()
                try:
                    (record,) = future.result()
                    yield spec, record
                except GZSLBenchError:
                    raise
                except distributed.KilledWorker as exc:
                    yield spec, lost_record(spec, out, f"its Dask worker died while running it ({exc})")
                except Exception as exc:
                    yield spec, lost_record(spec, out, f"Dask task failed: {type(exc).__name__}: {exc}")
        except (KeyboardInterrupt, GeneratorExit):
            shutdown.enter_context(quiet_distributed_logs())
            raise
        finally:
            client.cancel(list(out_now))


def capacity(client: Client) -> int:
    """Tasks the cluster can execute at once now: its workers' threads (at least one, while workers start)."""
    return max(1, sum(client.nthreads().values()))
