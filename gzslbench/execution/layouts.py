"""Which layout of processes, threads and batched seeds runs a group of seeds fastest on this machine.

No rule carries over between CPUs: on one 2-core machine two single-thread processes beat one
two-thread process by a third, on another they gain nothing and batched seeds lose. So the planner
measures instead of assuming. The first time a (method, shapes, config) runs several seeds on a
machine, each candidate layout runs a few training iterations of the method's own step
(:meth:`~gzslbench.methods.base.Method.speed_probe`) on random data of the run's shapes:

* ``sequential``: one process on every core, one seed after another (what ``--n-jobs 1`` does);
* ``processes``: one single-thread process per core, side by side;
* ``batched``: one process on every core, the seeds trained as one computation (methods that can).

The fastest in seed-iterations per second wins, but a layout other than ``sequential`` must beat
it by :data:`MARGIN`, so the plan is never slower than one seed after another by more than the
measurement's noise. The result is cached per machine (CPU model, cores, torch version, device) in
``layouts.json`` under the user's cache folder (``$GZSLBENCH_CACHE_DIR``, else
``$XDG_CACHE_HOME/gzslbench``, else ``~/.cache/gzslbench``), as FFTW keeps its wisdom, and the
measurement takes under a minute. A method without a probe, or ``GZSLBENCH_LAYOUT=sequential``, gets
``sequential`` without measuring.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gzslbench.core.environment import cpu_name, flush_denormals, torch_threads
from gzslbench.core.files import write_json_atomic
from gzslbench.execution.process import set_up_own_process
from gzslbench.execution.resolve import get_method
from gzslbench.execution.workers import as_finished, worker_pool
from gzslbench.methods.base import DataShapes, Method

MARGIN = 1.05  # a layout must beat one seed after another by 5% to be chosen over it
PROBE_ITERATIONS = 8  # iterations a probe times: a call of WARMUP_ITERATIONS more than another
WARMUP_ITERATIONS = 3
PAIRS = 2  # calls of each length per probe, the fastest kept
REPEATS = 3  # each layout timed this many times, alternated with the others; the median kept
CACHE_ENV, LAYOUT_ENV = "GZSLBENCH_CACHE_DIR", "GZSLBENCH_LAYOUT"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class Workload:
    """What a probe needs to stand for a group of runs: the method, its config and the data's shapes."""

    method: str
    config: Mapping[str, Any]
    shapes: DataShapes
    seeds: int  # the group's seed count (the batch a `batched` layout would train)

    def key(self) -> str:
        text = json.dumps(
            {"method": self.method, "config": dict(self.config), "shapes": asdict(self.shapes), "seeds": self.seeds},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class BusyMachine(RuntimeError):
    """A timing came out impossible (other work shared the cores); the measurement is neither used nor cached."""


@dataclass(frozen=True)
class Choice:
    """The chosen layout, the measured throughputs (seed-iterations per second) and whether they came from the cache."""

    layout: str
    throughput: Mapping[str, float]
    cached: bool

    def describe(self) -> str:
        measured = ", ".join(f"{name} {value:.1f}" for name, value in self.throughput.items())
        source = "cached measurement" if self.cached else "measured now"
        return f"{self.layout} fastest here ({source}, seed-iterations/s: {measured})" if measured else self.layout


def machine_key(cores: int, device_type: str) -> str:
    """What a measurement holds for: CPU model, cores, torch version and device."""
    return f"{cpu_name()} | {cores} cores | torch {torch.__version__} | {device_type}"


def cache_file() -> Path:
    folder = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gzslbench"
    return Path(folder) / "layouts.json"


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries; an unreadable or foreign file counts as empty (it is a cache)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("entries", {}) if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else {}


def _write_cache(path: Path, entries: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a read-only home: measure again next time
        write_json_atomic(path, {"format": CACHE_FORMAT, "entries": entries})


def has_speed_probe(method: type[Method]) -> bool:
    """Whether ``method`` overrides :meth:`~gzslbench.methods.base.Method.speed_probe`."""
    return method.speed_probe.__func__ is not Method.speed_probe.__func__  # type: ignore[attr-defined]


def candidates(cores: int, can_batch: bool, seeds: int) -> list[str]:
    """The layouts worth measuring: ``processes`` needs two cores and two seeds, ``batched`` a method that can."""
    names = ["sequential"]
    if cores > 1 and seeds > 1:
        names.append("processes")
    if can_batch and seeds > 1:
        names.append("batched")
    return names


def _probe_seconds(workload: Workload, threads: int, seeds: int, barrier: Any = None) -> float:
    """Seconds of :data:`PROBE_ITERATIONS` training iterations of ``seeds`` seeds on ``threads`` threads.

    A probe call has fixed costs a real run spreads over thousands of iterations (a new optimizer,
    stacking batched weights, a fresh process's first page faults), so the iterations are timed as
    the difference between a longer and a shorter call, after a warm-up call. Each is called
    :data:`PAIRS` times and the fastest of each kept: another process can only slow a call, and a
    slowed shorter call alone would flatter the layout.
    """
    if barrier is not None:
        set_up_own_process()  # as a run's worker process is set up
    method = get_method(workload.method)
    with torch_threads(threads), flush_denormals():
        probe = method.speed_probe(workload.shapes, workload.config, torch.device("cpu"), seeds)
        assert probe is not None
        probe(WARMUP_ITERATIONS)
        if barrier is not None:
            barrier.wait()
        shorter, longer = [], []
        for _ in range(PAIRS):
            start = time.perf_counter()
            probe(WARMUP_ITERATIONS)
            middle = time.perf_counter()
            probe(WARMUP_ITERATIONS + PROBE_ITERATIONS)
            shorter.append(middle - start)
            longer.append(time.perf_counter() - middle)
        seconds = min(longer) - min(shorter)
        if seconds <= 0:  # the shorter calls were slowed more than the longer ones took: another process ran
            raise BusyMachine(f"a probe of {PROBE_ITERATIONS} iterations timed {seconds:.3f} s")
        return seconds


def _processes_throughput(workload: Workload, cores: int, barrier: Any, workers: Executor) -> float:
    """Seed-iterations per second of ``cores`` single-thread worker processes (``workers``) probing side by side."""
    seconds = list(as_finished(workers, _probe_seconds, [(workload, 1, 1, barrier)] * cores))
    return cores * PROBE_ITERATIONS / max(seconds)


def _manager_context() -> Any:
    """The caller's multiprocessing start method, or the platform's, without fixing it as the caller's default."""
    return multiprocessing.get_context(
        multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    )


def measure(workload: Workload, cores: int, layouts: list[str]) -> dict[str, float]:
    """Seed-iterations per second of each layout, the median of :data:`REPEATS` alternated timings.

    ``processes`` runs in ``cores`` single-thread worker processes, the others in this process.
    """
    batch = min(workload.seeds, 8)
    timings: dict[str, list[float]] = {name: [] for name in layouts}
    with _manager_context().Manager() as manager, worker_pool(cores) as workers:
        barrier = manager.Barrier(cores)
        for _ in range(REPEATS):
            for name in layouts:
                if name == "sequential":
                    value = PROBE_ITERATIONS / _probe_seconds(workload, cores, 1)
                elif name == "batched":
                    value = batch * PROBE_ITERATIONS / _probe_seconds(workload, cores, batch)
                else:
                    value = _processes_throughput(workload, cores, barrier, workers)
                timings[name].append(value)
    return {name: statistics.median(values) for name, values in timings.items()}


def pick(throughput: Mapping[str, float]) -> str:
    """The fastest layout, unless it beats ``sequential`` by less than :data:`MARGIN`."""
    best = max(throughput, key=lambda name: throughput[name])
    if best != "sequential" and throughput[best] < MARGIN * throughput.get("sequential", 0.0):
        return "sequential"
    return best


def choose_layout(
    workload: Workload, cores: int, measure_fn: Callable[[Workload, int, list[str]], dict[str, float]] = measure
) -> Choice:
    """The layout for ``workload`` on this machine: cached, measured now, or ``sequential`` without a probe."""
    method = get_method(workload.method)
    layouts = candidates(cores, method.batched_seeds, workload.seeds)
    if os.environ.get(LAYOUT_ENV) == "sequential" or len(layouts) == 1:
        return Choice("sequential", {}, cached=False)
    if not has_speed_probe(method):
        return Choice("sequential", {}, cached=False)
    path = cache_file()
    entries = _read_cache(path)
    key = f"{machine_key(cores, 'cpu')} | {workload.key()}"
    if key in entries:
        throughput = entries[key]["throughput"]
        return Choice(pick(throughput), throughput, cached=True)
    try:
        throughput = measure_fn(workload, cores, layouts)
    except BusyMachine:
        return Choice("sequential", {}, cached=False)  # the safe layout; the next command measures again
    entries[key] = {"method": workload.method, "throughput": throughput, "measured_at": time.time()}
    _write_cache(path, entries)
    return Choice(pick(throughput), throughput, cached=False)
