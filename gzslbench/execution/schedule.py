"""Run specs: skip finished ones, plan the rest (:mod:`~gzslbench.execution.planning`), run them in rounds.

Resume rule: a spec with a finished (``ok``) record is skipped, unless ``force``. A record made
from other data (its data fingerprint differs from the data loaded now) is never reused: the
command stops before running anything and asks for ``--force`` or another results folder; so
it does for a record written by a newer gzslbench, which only that version can read. A
record from another code version or device is reused; ``table`` shows such mixes and
``--strict`` refuses them. An unreadable or incomplete record is rerun.

Runs are independent, so units go out in parallel to worker processes of the call's own
(:mod:`~gzslbench.execution.workers`) or to Dask tasks.
Workers receive plain data (:class:`~gzslbench.execution.spec.RunSpec`), load the dataset
themselves, and write their own records.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from gzslbench.core.environment import cpu_count
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.progress import progress_bar
from gzslbench.data.dataset import GZSLData
from gzslbench.execution.execute import execute_and_save, is_finished, run_in_worker
from gzslbench.execution.layouts import Choice, Workload, choose_layout
from gzslbench.execution.options import AUTO
from gzslbench.execution.planning import ExecutionPlan, plan_execution, seed_batches, unit_key
from gzslbench.execution.resolve import load_dataset
from gzslbench.execution.spec import RunSpec
from gzslbench.execution.workers import in_workers
from gzslbench.methods.base import DataShapes
from gzslbench.protocol.selection import PROTOCOL
from gzslbench.results.record import SCHEMA_VERSION, NewerRecordError, RecordError, protocol_version
from gzslbench.results.store import load_record, read_record, remove_partial_writes, remove_stale_temp_files


def newer_records(specs: Iterable[RunSpec], out: str | Path) -> list[tuple[Path, int | None]]:
    """The specs' records that a newer gzslbench wrote, with their schema versions: this one cannot read them."""
    found = []
    for spec in specs:
        try:
            load_record(spec.path(out))
        except NewerRecordError as exc:
            found.append((spec.path(out), exc.schema))
        except RecordError:
            continue
    return found


def stale_records(specs: Iterable[RunSpec], out: str | Path) -> list[tuple[RunSpec, str]]:
    """Specs whose finished record cannot stand for them now: (spec, why), for other data or another protocol."""
    stale = []
    for spec in specs:
        record = read_record(spec.path(out))
        if record is None or record["status"] != "ok":
            continue
        recorded = (record.get("data") or {}).get("fingerprint")
        if protocol_version(record) != PROTOCOL["version"]:
            stale.append((spec, f"protocol version {protocol_version(record)}, now {PROTOCOL['version']}"))
        elif spec.data_fingerprint is not None and recorded != spec.data_fingerprint:
            stale.append((spec, f"data fingerprint {recorded}, now {spec.data_fingerprint}"))
    return stale


def schedule(specs: Sequence[RunSpec], plan: ExecutionPlan) -> list[list[RunSpec]]:
    """``specs`` cut into the plan's units; a spec without threads gets the plan's (in the tail, the tail's)."""
    units = seed_batches(specs, plan.batch_seeds)
    first_tail = len(units) - plan.tail if plan.tail else len(units)
    return [
        [s if s.threads else replace(s, threads=plan.tail_threads if i >= first_tail else plan.threads) for s in unit]
        for i, unit in enumerate(units)
    ]


def execution_rounds(units: Sequence[list[RunSpec]], n_jobs: int) -> list[tuple[list[list[RunSpec]], int]]:
    """``units`` grouped by thread count, fewest threads first, each with its number of processes.

    The first group runs on ``n_jobs`` processes; a group of more threads per run (a plan's tail)
    runs after it on as many processes as keep processes x threads within the first group's.
    """
    by_threads: dict[int, list[list[RunSpec]]] = {}
    for unit in units:
        by_threads.setdefault(unit[0].threads or 1, []).append(unit)
    least = min(by_threads, default=1)
    return [
        (group, max(1, min(len(group), n_jobs * least // threads))) for threads, group in sorted(by_threads.items())
    ]


Finished = tuple[RunSpec, dict[str, Any]]  # a spec and its record


def run_unit(unit: list[RunSpec], out: str, force: bool) -> list[Finished]:
    """A worker's job: the unit's specs paired with their records."""
    return list(zip(unit, run_in_worker(unit, out, force), strict=True))


def run_in_processes(units: Sequence[list[RunSpec]], out: str, force: bool, n_jobs: int) -> Iterator[Finished]:
    """Specs of ``units`` with their records, run on ``n_jobs`` worker processes, as they finish.

    Closing the stream early kills the workers before it returns, so no worker writes afterwards.
    """
    with closing(in_workers(run_unit, [(unit, out, force) for unit in units], n_jobs)) as batches:
        for batch in batches:
            yield from batch


def run_rounds(rounds: Sequence[tuple[list[list[RunSpec]], int]], out: str, force: bool) -> Iterator[Finished]:
    """Records of :func:`execution_rounds`' rounds, one round after the other, as they finish."""
    for units, n_jobs in rounds:
        yield from run_in_processes(units, out, force, n_jobs)


def report_line(record: dict[str, Any], done: int, total: int) -> str:
    """One log line per finished run, for logs that are not a terminal."""
    head = f"[{done}/{total}] {record.get('method')} on {record.get('dataset')} seed {record.get('seed')}"
    if record.get("status") == "ok":
        last = record["metrics"]["last"]
        return f"{head}: H {last['H']:.1f} (U {last['U']:.1f}, S {last['S']:.1f}), {record['timings']['total_s']:.0f} s"
    return f"{head}: {record.get('status')}: {record.get('error')}"


def run_specs(
    specs: Sequence[RunSpec],
    out: str | Path = "results",
    *,
    n_jobs: int | str = 1,
    threads: int | None = None,
    batch_seeds: int | str = 1,
    force: bool = False,
    quiet: bool = False,
    loaded: Mapping[tuple, GZSLData] | None = None,
    backend: str = "joblib",
    scheduler: str | None = None,
) -> list[dict[str, Any]]:
    """Execute the specs that are not finished yet (all with ``force``); return every spec's record.

    The options are checked already (:func:`~gzslbench.execution.options.check_execution`). The
    unfinished specs are planned (``n_jobs``/``batch_seeds`` numbers or ``auto``) and cut into
    units; in-process units reuse datasets from ``loaded``, worker processes load their own.
    ``backend`` "dask" runs them on a Dask cluster (:mod:`gzslbench.execution.dask`). Units with
    more threads than others (a plan's tail) start once the others are done. Progress bars
    appear only on a terminal; otherwise (a log file, CI) one line per finished run.
    """
    remove_stale_temp_files(out, older_than_s=60.0)
    if not force:
        newer = newer_records(specs, out)
        if newer:
            (path, schema), others = newer[0], f" (and {len(newer) - 1} more)" if len(newer) > 1 else ""
            raise GZSLBenchError(
                f"{path}{others}: written by a newer gzslbench (record schema {schema}, this one reads up to "
                f"{SCHEMA_VERSION}), so not overwritten; upgrade gzslbench, pass --force to replace it, or "
                "--results another folder"
            )
        stale = stale_records(specs, out)
        if stale:
            spec, why = stale[0]
            raise GZSLBenchError(
                f"{len(stale)} finished record(s) were made from other data or under another protocol than now "
                f"(e.g. {spec.path(out)}: {why}); pass --force to replace them, or --results another folder"
            )
    loaded = dict(loaded or {})
    todo = [s for s in specs if force or not is_finished(s, out)]
    done: dict[Path, dict[str, Any]] = {}
    if todo:
        device_type = todo[0].device.split(":")[0]
        layout = None
        if (n_jobs, threads, batch_seeds, backend, device_type) == (AUTO, None, AUTO, "joblib", "cpu"):
            layout = measured_layout(todo, cpu_count(), loaded)
        plan = plan_execution(
            todo,
            cores=cpu_count(),
            device_type=device_type,
            backend=backend,
            n_jobs=n_jobs,
            threads=threads,
            batch_seeds=batch_seeds,
            layout=layout,
        )
        if not quiet:
            print(f"plan: {plan.describe()}", file=sys.stderr, flush=True)
        units = schedule(todo, plan)
        log_lines = not quiet and not sys.stderr.isatty()
        with (
            closing(_unit_records(units, plan, out, force, quiet, loaded, backend, scheduler)) as records,
            progress_bar(len(todo), "runs", "run", quiet) as bar,
        ):
            for spec, record in records:
                done[spec.path(out)] = record
                bar.update()
                if log_lines:
                    print(report_line(record, len(done), len(todo)), file=sys.stderr, flush=True)
    return [done.get(s.path(out)) or read_record(s.path(out)) or {"status": "missing", **asdict(s)} for s in specs]


def measured_layout(specs: Sequence[RunSpec], cores: int, loaded: dict[tuple, GZSLData]) -> Choice:
    """The fastest layout on this machine for the largest group of seeds in ``specs`` (:func:`choose_layout`).

    The group's data are loaded for their shapes and kept in ``loaded`` for the runs.
    """
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        groups.setdefault(unit_key(spec), []).append(spec)
    group = max(groups.values(), key=len)
    first = group[0]
    data = loaded.get(first.data_key)
    if data is None:
        data = loaded[first.data_key] = load_dataset(first.dataset, first.data_dir, first.dataset_options)
    shapes = DataShapes(
        n_train=len(data.trainval),
        feature_dim=data.features.shape[1],
        attribute_dim=data.attributes.shape[1],
        n_seen=len(data.seen_classes),
        n_classes=data.n_classes,
    )
    return choose_layout(Workload(first.method, first.config, shapes, len(group)), cores)


def _unit_records(
    units: Sequence[list[RunSpec]],
    plan: ExecutionPlan,
    out: str | Path,
    force: bool,
    quiet: bool,
    loaded: Mapping[tuple, GZSLData],
    backend: str,
    scheduler: str | None,
) -> Iterator[Finished]:
    """The specs of ``units`` with their records as they finish: in this process, on worker processes or on Dask.

    Interrupted (Ctrl-C, SIGTERM, the stream closed), the workers are stopped first, then what
    they were writing is removed.
    """
    n_jobs = min(plan.n_jobs, len(units))
    if backend == "joblib" and n_jobs == 1:
        for unit in units:
            records = execute_and_save(unit, str(out), not quiet, force, loaded.get(unit[0].data_key))
            yield from zip(unit, records, strict=True)
        return
    if backend == "dask":
        from gzslbench.execution.dask import run_on_dask

        records = run_on_dask([s for unit in units for s in unit], out, force, n_jobs, scheduler)
    else:  # workers may sit in another folder: give them absolute paths
        records = run_rounds(execution_rounds(units, n_jobs), str(Path(out).resolve()), force)
    try:
        yield from records
    except BaseException:
        records.close()
        for unit in units:
            for spec in unit:
                remove_partial_writes(spec.path(out))
        raise
