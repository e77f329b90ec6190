"""How a command spreads its runs over the machine: processes, torch threads and batched seeds.

``--n-jobs auto --threads (unset) --batch-seeds auto``, the defaults, on a CPU: the layout that is
fastest on this machine for the command's largest group of seeds, measured on first use and
cached (:mod:`gzslbench.execution.layouts`): one seed after another on every core, one
single-thread process per core, or the seeds batched in one process on every core. Where nothing
is measured (a method without a speed probe, a single run, ``GZSLBENCH_LAYOUT=sequential``), one
seed after another. No fixed rule serves every CPU: on one 2-core machine two single-thread
processes ran five ACMR seeds 1.32x faster than one seed after another on two threads, on another
they gained nothing and batched seeds were slower.

Any of ``--n-jobs N``, ``--threads N``, ``--batch-seeds K`` set by hand is kept, and the rest follows
the rules of :func:`plan_execution`:

* processes: one per core (per ``--threads`` cores when given), but no more than there are runs;
* threads: the cores divided among the processes (``--n-jobs`` x threads never exceeds the cores);
* batched seeds (methods that can), only for processes of several threads: each (method,
  dataset, config) group is cut into as many batches as it takes to give every process work, at
  most :data:`MAX_CPU_BATCH` seeds each, the seeds that do not fill a batch left over as one more;
* the tail (a planned process count only): when the units do not fill the last round of
  processes, the last units wait for the others and then share every core (threads x processes
  / tail units each), instead of one process running its extra unit on one thread while the
  other cores idle.

On a GPU, processes would only queue for the same device: one process, every seed of a group
batched (at most :data:`MAX_GPU_BATCH`), so that each kernel does K seeds' work. The Dask
backend sends runs out one by one: no batching there, one single-thread worker per core.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from gzslbench.core.environment import cpu_count
from gzslbench.execution.layouts import Choice
from gzslbench.execution.options import AUTO
from gzslbench.execution.resolve import get_method
from gzslbench.execution.spec import RunSpec

MAX_CPU_BATCH = 8  # 5 CUB-size ACMR seeds batched peak at 1.7 GB; 8 stay under 3 GB
MAX_GPU_BATCH = 8


@dataclass(frozen=True)
class ExecutionPlan:
    """Worker processes, torch threads per run and seeds per batched computation, with why."""

    n_jobs: int
    threads: int
    batch_seeds: int
    reason: str
    tail: int = 0  # the last units of execution, run after the others ...
    tail_threads: int = 0  # ... with this many threads each

    def describe(self) -> str:
        """One line for the log: ``2 processes x 1 thread, seeds batched by up to 2, then ... (auto: ...)``."""
        batch = f", seeds batched by up to {self.batch_seeds}" if self.batch_seeds > 1 else ""
        tail = ""
        if self.tail:
            tail = f", then the last {_count(self.tail, 'unit')} on {_count(self.tail_threads, 'thread')} each"
        return f"{_count(self.n_jobs, 'process')} x {_count(self.threads, 'thread')}{batch}{tail} ({self.reason})"


def _count(n: int, noun: str) -> str:
    plural = "es" if noun.endswith("s") else "s"
    return f"{n} {noun}{plural if n != 1 else ''}"


def threads_per_process(n_jobs: int, threads: int | None = None, cores: int | None = None) -> int:
    """The one thread rule: ``threads`` when given, else the cores divided among ``n_jobs`` processes."""
    if threads is not None:
        return threads
    return max(1, (cores or cpu_count()) // max(1, n_jobs))


def unit_key(spec: RunSpec) -> str:
    """Specs with equal keys differ only by seed, so they may train as one unit."""
    return json.dumps({**asdict(spec), "seed": None}, sort_keys=True, default=str)


def can_batch(spec: RunSpec) -> bool:
    """Whether ``spec``'s method trains several seeds as one computation."""
    return get_method(spec.method).batched_seeds


def seed_batches(specs: Sequence[RunSpec], batch_seeds: int) -> list[list[RunSpec]]:
    """``specs`` cut into units of execution: up to ``batch_seeds`` specs of one :func:`unit_key`, for methods
    that train seeds batched; every other spec alone. Order is kept within a unit."""
    if batch_seeds <= 1:
        return [[s] for s in specs]
    units: list[list[RunSpec]] = []
    open_units: dict[str, list[RunSpec]] = {}
    for spec in specs:
        if not can_batch(spec):
            units.append([spec])
            continue
        key = unit_key(spec)
        unit = open_units.get(key)
        if unit is None or len(unit) >= batch_seeds:
            unit = open_units[key] = []
            units.append(unit)
        unit.append(spec)
    return units


def group_sizes(specs: Sequence[RunSpec]) -> tuple[list[int], int]:
    """Seeds per :func:`unit_key` group of the specs that can batch, and how many specs cannot."""
    groups = Counter(unit_key(s) for s in specs if can_batch(s))
    return list(groups.values()), sum(not can_batch(s) for s in specs)


def plan_execution(
    specs: Sequence[RunSpec],
    *,
    cores: int,
    device_type: str,
    backend: str = "joblib",
    n_jobs: int | str = 1,
    threads: int | None = None,
    batch_seeds: int | str = 1,
    layout: Choice | None = None,
) -> ExecutionPlan:
    """The plan for ``specs``, after the rules above.

    ``n_jobs`` and ``batch_seeds`` are numbers (kept) or ``auto``; ``threads`` None means the cores
    divided among the processes. All three automatic on a CPU with joblib: the plan of ``layout``
    (:func:`layout_plan`; none measured: one seed after another). Only a planned process count
    (``n_jobs`` auto, ``threads`` None, on a CPU with joblib) gets a tail (:func:`tail_units`).
    """
    runs = max(1, len(specs))
    if n_jobs == AUTO and threads is None and batch_seeds == AUTO and device_type != "cuda" and backend == "joblib":
        return layout_plan(specs, cores, layout)
    reasons = []
    planned = n_jobs == AUTO and threads is None  # only a mix planned whole gets a tail
    if n_jobs == AUTO:
        if device_type == "cuda" and backend == "joblib":
            n_jobs = 1
            reasons.append("one process per GPU")
        else:
            n_jobs = max(1, min(cores // (threads or 1), runs))
            reasons.append("one process per core, at most one per run")
    assert isinstance(n_jobs, int)
    per_process = threads_per_process(n_jobs, threads, cores)
    if batch_seeds == AUTO:
        groups, single = group_sizes(specs) if backend == "joblib" else ([], 0)
        if not groups:
            batch_seeds = 1
        elif device_type == "cuda":
            batch_seeds = min(max(groups), MAX_GPU_BATCH)
            reasons.append("all of a group's seeds batched on the GPU")
        elif per_process == 1:
            batch_seeds = 1
            reasons.append("no batches on one thread (they gain nothing there)")
        else:
            shares = math.ceil(n_jobs / (len(groups) + single))  # batches per group that give every process work
            batch_seeds = max(1, min(max(groups) // shares, MAX_CPU_BATCH))
            if batch_seeds > 1:
                reasons.append(f"each group in batches that fill {n_jobs} process(es)")
    unused = isinstance(batch_seeds, int) and batch_seeds > 1 and not group_sizes(specs)[0]
    if unused:
        batch_seeds = 1  # the plan line must not promise batches
    assert isinstance(batch_seeds, int)
    tail, tail_threads = 0, 0
    if planned and device_type != "cuda" and backend == "joblib":
        tail, tail_threads = tail_units(len(seed_batches(specs, batch_seeds)), n_jobs, per_process)
        if tail:
            reasons.append("the last round's units share every core")
    reason = "auto: " + "; ".join(reasons) if reasons else "as given"
    if unused:
        reason += "; --batch-seeds unused: no method here trains seeds batched"
    return ExecutionPlan(n_jobs, per_process, batch_seeds, reason, tail, tail_threads)


def layout_plan(specs: Sequence[RunSpec], cores: int, layout: Choice | None) -> ExecutionPlan:
    """The plan of a measured layout (:mod:`gzslbench.execution.layouts`) on ``cores`` CPU cores.

    ``sequential`` (also without a measurement): one process on every core, one seed after
    another. ``processes``: one single-thread process per core, the last round's units sharing
    every core (:func:`tail_units`). ``batched``: one process on every core, each group's seeds as
    one computation (at most :data:`MAX_CPU_BATCH`).
    """
    name = layout.layout if layout is not None else "sequential"
    why = f"auto: {layout.describe()}" if layout is not None and layout.throughput else "auto: one seed after another"
    if name == "processes":
        n_jobs = max(1, min(cores, len(specs)))
        tail, tail_threads = tail_units(len(specs), n_jobs, 1)
        return ExecutionPlan(n_jobs, 1, 1, why, tail, tail_threads)
    if name == "batched":
        groups, _ = group_sizes(specs)
        return ExecutionPlan(1, cores, max(1, min(max(groups, default=1), MAX_CPU_BATCH)), why)
    return ExecutionPlan(1, cores, 1, why)


def tail_units(units: int, n_jobs: int, threads: int) -> tuple[int, int]:
    """(how many last units run after the others, their threads each): (0, 0) when rounds come out even.

    A last round of ``r`` units on ``n_jobs`` processes would leave ``n_jobs - r`` processes idle;
    run after the others instead, each of the ``r`` gets ``n_jobs // r`` processes' threads.
    """
    rest = units % n_jobs if units > n_jobs else 0
    if not rest or n_jobs // rest < 2:
        return 0, 0
    return rest, threads * (n_jobs // rest)
