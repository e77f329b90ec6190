"""Hyper-parameters chosen on the validation split, never on test data (Xian et al. 2018).

Usage::

    result = gzslbench.tune("eszsl", "synth-cub", seeds=3)
    result.chosen     # {"gamma": 0.1, "lam": 1.0}
    result.records    # the trainval runs of the chosen point, evaluated on the test split

Each grid point is trained on the validation split's train part and evaluated on the
validation split (:func:`gzslbench.protocol.selection.make_split` with ``"val"``: validation classes act
as unseen, held-out train-class instances as seen), exactly as the ``val`` selection mode
does; only the validation split's features are read. The point with the best validation H
(at its best candidate epoch) is chosen, then trained on ``trainval`` with the requested seeds
through the normal run path and evaluated on the test split. Its records carry a ``tuning``
block (:class:`gzslbench.results.record.TuningBlock`): the grid, every point's validation H, the choice,
and that the choice used the validation split only.

Search results are kept one file per (point, search seed) under
``<out>/tuning/<dataset>/<method>/<config-hash>/search-seed-<k>.json``, so a search resumes
where it stopped and grids that share points share their results; the search's summary is
``<out>/tuning/<dataset>/<method>/<name>.json``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from gzslbench.core.environment import cpu_count
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.files import write_json_atomic
from gzslbench.core.progress import progress_bar
from gzslbench.data.dataset import GZSLData
from gzslbench.execution.api import as_mapping, note_plan
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.options import check_execution
from gzslbench.execution.planning import threads_per_process
from gzslbench.execution.process import set_up_own_process
from gzslbench.execution.resolve import load_dataset, seeds_to_run
from gzslbench.execution.schedule import run_specs
from gzslbench.execution.spec import RunSpec
from gzslbench.execution.workers import in_workers
from gzslbench.methods.base import RunContext
from gzslbench.protocol.selection import best_epoch
from gzslbench.protocol.splits import validation_split
from gzslbench.results.claims import ClaimHeld, claimed
from gzslbench.results.record import TuningBlock, TuningPoint
from gzslbench.studies.sweep import Expansion, Grid, check_name, expand, given_grid, grid_name

SELECTED_ON = "validation split only (no test data read)"
SEARCH_SCHEMA = 1


def search_path(out: str | Path, spec: RunSpec) -> Path:
    """Where the validation result of one (point, search seed) lives."""
    return Path(out) / "tuning" / spec.dataset / spec.method / spec.config_hash / f"search-seed-{spec.seed}.json"


def summary_path(out: str | Path, dataset: str, method: str, name: str) -> Path:
    """Where a search's summary (grid, every point's validation H, the choice) is written."""
    return Path(out) / "tuning" / dataset / method / f"{name}.json"


def _read_point(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("schema") == SEARCH_SCHEMA else None


def _reusable(spec: RunSpec, payload: dict[str, Any] | None) -> bool:
    """A finished search result made from the same data (another fingerprint means other data: redo)."""
    return bool(payload) and payload.get("status") == "ok" and payload.get("data_fingerprint") == spec.data_fingerprint


def evaluate_point(spec: RunSpec, data: GZSLData, progress: bool = False) -> dict[str, Any]:
    """Train one point on the validation split and score its candidates there; never touches test data."""
    ctx = RunContext(seed=spec.seed, device=torch.device(spec.device), progress=progress)
    result: dict[str, Any] = {
        "schema": SEARCH_SCHEMA,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "config": spec.config,
        "config_hash": spec.config_hash,
        "dataset_options": spec.dataset_options,
        "data_fingerprint": data.fingerprint,
        "split": "val",
        "selected_on": SELECTED_ON,
    }
    tic = time.perf_counter()
    try:
        rows = evaluate_split(spec, data, "val", ctx)
        result.update(status="ok", error=None, val=rows, best=best_epoch(rows))
    except (KeyboardInterrupt, GZSLBenchError):
        raise
    except Exception as exc:
        result.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    result["history"] = {"train": ctx.history}
    result["timings"] = {"total_s": time.perf_counter() - tic, **ctx.timings}
    return result


def _search_and_save(spec: RunSpec, out: str, force: bool, data: GZSLData | None = None) -> dict[str, Any]:
    path = search_path(out, spec)
    try:
        with claimed(path):
            existing = _read_point(path)
            if not force and _reusable(spec, existing):
                return existing  # type: ignore[return-value]
            if data is None:
                data = load_dataset(spec.dataset, spec.data_dir, spec.dataset_options)
            result = evaluate_point(spec, data)
            write_json_atomic(path, result)
            return result
    except ClaimHeld as exc:
        return {"status": "busy", "error": str(exc), "config_hash": spec.config_hash}


def _indexed_search(index: int, spec: RunSpec, out: str, force: bool) -> tuple[int, dict[str, Any]]:
    set_up_own_process()  # a worker: gzslbench's own process
    return index, _search_and_save(spec, out, force)


def search(
    specs: Sequence[RunSpec],
    data: GZSLData,
    out: str | Path,
    n_jobs: int = 1,
    force: bool = False,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Validation results of ``specs`` (one per point), computing only those not stored yet.

    In-process evaluations use ``data``; parallel workers load the dataset themselves.
    """
    results: list[dict[str, Any] | None] = [None] * len(specs)
    todo = []
    for i, spec in enumerate(specs):
        stored = _read_point(search_path(out, spec))
        if not force and _reusable(spec, stored):
            results[i] = stored
        else:
            todo.append(i)
    n_jobs = max(1, min(n_jobs, len(todo)))
    bar = progress_bar(len(todo), "validation search", "point", quiet or not todo)
    log_lines = not quiet and not sys.stderr.isatty()
    count = 0  # a disabled bar (no terminal) counts nothing

    def finished(i: int, result: dict[str, Any]) -> None:
        nonlocal count
        results[i] = result
        count += 1
        bar.update()
        if log_lines:
            score = f"val H {result['best']['H']:.1f}" if result.get("status") == "ok" else result.get("status")
            print(f"[search {count}/{len(todo)}] {specs[i].config_hash}: {score}", file=sys.stderr, flush=True)

    if n_jobs == 1:
        for i in todo:
            finished(i, _search_and_save(specs[i], str(out), force, data))
    else:
        with closing(in_workers(_indexed_search, [(i, specs[i], str(out), force) for i in todo], n_jobs)) as done:
            for i, result in done:
                finished(i, result)
    bar.close()
    return results  # type: ignore[return-value]


def point_summary(values: Mapping[str, Any], result: Mapping[str, Any]) -> TuningPoint:
    """One line of the tuning block: a point's grid values and its validation numbers."""
    best = result.get("best") if result.get("status") == "ok" else None
    return {
        "values": dict(values),
        "config_hash": str(result.get("config_hash")),
        "status": str(result.get("status")),
        "val_H": best["H"] if best else None,
        "val_U": best["U"] if best else None,
        "val_S": best["S"] if best else None,
        "epoch": best["epoch"] if best else None,
    }


def choose(points: Sequence[TuningPoint]) -> int:
    """Index of the point with the best validation H (the first on ties); GZSLBenchError if none finished."""
    finished = [i for i, p in enumerate(points) if p["val_H"] is not None]
    if not finished:
        raise GZSLBenchError(
            f"no grid point finished on the validation split ({len(points)} tried, statuses: "
            f"{sorted({p['status'] for p in points})}); see the search files under <out>/tuning"
        )
    return max(finished, key=lambda i: points[i]["val_H"])  # type: ignore[arg-type,return-value]


@dataclass(frozen=True)
class TuneResult:
    """What ``tune`` did: the search, the choice and the final test runs."""

    name: str
    grid: Grid
    points: list[TuningPoint]
    chosen_index: int
    chosen_config: dict[str, Any]
    mode: str  # the selection mode to report: ``val`` when the method has several candidate epochs, else ``last``
    block: TuningBlock
    records: list[dict[str, Any]]

    @property
    def chosen(self) -> dict[str, Any]:
        return self.points[self.chosen_index]["values"]


def _attach(records: list[dict[str, Any]], specs: Sequence[RunSpec], out: str | Path, block: TuningBlock) -> None:
    """Write the tuning block into each finished final record (also into records reused from earlier runs)."""
    for record, spec in zip(records, specs, strict=True):
        if record.get("status") == "ok" and record.get("tuning") != block:
            record["tuning"] = block
            write_json_atomic(spec.path(out), record)


def tune(
    method: str,
    dataset: str,
    grid: Sequence[str] | Mapping[str, Any] | None = None,
    seeds: int = 1,
    *,
    random: int | None = None,
    random_seed: int = 0,
    name: str | None = None,
    seed_start: int = 0,
    out: str | Path = "results",
    device: str = "auto",
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | Sequence[str] | None = None,
    data_dir: str | None = None,
    n_jobs: int = 1,
    threads: int | None = None,
    force: bool = False,
    quiet: bool = True,
) -> TuneResult:
    """Python twin of ``gzslbench tune``: search ``grid`` (default: the method's search space) on validation,
    then train the best point on trainval with ``seeds`` seeds and evaluate it on the test split.

    Every point is trained once, with seed ``seed_start``, on the validation split.
    """
    n_jobs, _ = check_execution(seeds, seed_start, out, cores=cpu_count(), n_jobs=n_jobs, threads=threads)
    check_name(name)
    assert isinstance(n_jobs, int)
    search_threads = threads_per_process(n_jobs, threads)
    parsed = given_grid(grid)
    expansion = expand(
        method,
        dataset,
        parsed,
        random=random,
        random_seed=random_seed,
        seed=seed_start,
        overrides=as_mapping(overrides),
        config_file=config_file,
        options=as_mapping(options),
        data_dir=data_dir,
        device=device,
        threads=search_threads,
    )
    parsed = expansion.grid
    name = name or grid_name("tune", expansion, random, random_seed)
    specs = [replace(expansion.base, config=config, sweep=name) for config in expansion.configs]
    results = search(specs, expansion.data, out, n_jobs=n_jobs, force=force, quiet=quiet)
    busy = [r for r in results if r.get("status") == "busy"]
    if busy:
        raise GZSLBenchError(
            f"{len(busy)} grid point(s) are being searched by another process (e.g. {busy[0]['error']}); "
            "run the command again when it is done"
        )
    points = [point_summary(values, result) for values, result in zip(expansion.points, results, strict=True)]
    best = choose(points)
    scores = {p["val_H"] for p in points if p["val_H"] is not None}
    if not quiet and len(points) > 1 and len(scores) == 1:
        print(
            f"warning: every point scored validation H {scores.pop():.1f}, so the first was chosen: the search told "
            "them apart by nothing (train longer, or search other values)",
            file=sys.stderr,
        )
    several_epochs = any(len(r.get("val") or []) > 1 for r in results if r.get("status") == "ok")
    block: TuningBlock = {
        "name": name,
        "grid": parsed,
        "random": random,
        "chosen": points[best]["values"],
        "chosen_epoch": points[best]["epoch"],
        "val_H": points[best]["val_H"],  # type: ignore[typeddict-item]
        "points": points,
        "search_seed": seed_start,
        "validation": validation_split(expansion.data).provenance,
        "selected_on": SELECTED_ON,
    }
    final = [
        replace(
            expansion.base, config=expansion.configs[best], seed=seed, validate=several_epochs, sweep=name, threads=None
        )
        for seed in seeds_to_run(expansion.base.method, range(seed_start, seed_start + seeds))
    ]
    if not quiet:
        note_plan([expansion.base], seeds, data_dir)
    records = run_specs(final, out, n_jobs=n_jobs, threads=threads, force=force, quiet=quiet, loaded=_loaded(expansion))
    _attach(records, final, out, block)
    mode = "val" if several_epochs else "last"
    summary = {
        **block,
        "method": expansion.base.method,
        "dataset": expansion.base.dataset,
        "dataset_options": expansion.base.dataset_options,
        "chosen_config": expansion.configs[best],
        "report_mode": mode,
        "final_records": [str(s.path(out)) for s in final],
    }
    write_json_atomic(summary_path(out, expansion.base.dataset, expansion.base.method, name), summary)
    return TuneResult(name, parsed, points, best, expansion.configs[best], mode, block, records)


def _loaded(expansion: Expansion) -> dict[tuple, GZSLData]:
    return {expansion.base.data_key: expansion.data}
