"""Execute one unit of runs: seeds of one (method, dataset, config) trained together, one record each.

A single run is a unit of one seed; a method that trains seeds batched
(:attr:`~gzslbench.methods.base.Method.batched_seeds`) takes several at once. Either way the
method's :meth:`~gzslbench.methods.base.Method.predict_seeds` yields, per candidate model, one
entry per seed; the protocol turns them into U / S / H and the selection modes. A seed that
diverges fails alone; an error of the unit as a whole fails every seed with its reason.
Records are written atomically under each run's claim (:mod:`gzslbench.results.claims`), so an
interrupted command loses only the runs in flight and two commands never run one spec at once.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

import gzslbench.datasets
import gzslbench.methods
from gzslbench.core.cuda_graphs import cuda_graphs_enabled
from gzslbench.core.environment import (
    code_version,
    denormals_flushed,
    environment,
    flush_denormals,
    source_digest,
    torch_threads,
    with_arithmetic_env,
)
from gzslbench.core.errors import GZSLBenchError, folder_in_the_way
from gzslbench.core.files import atomic_path, write_json_atomic
from gzslbench.core.registry import DATASETS, METHODS, origin
from gzslbench.data.dataset import GZSLData
from gzslbench.execution.process import interrupts_deferred, set_up_own_process
from gzslbench.execution.resolve import get_method, load_dataset
from gzslbench.execution.spec import RunSpec
from gzslbench.methods.base import Method, MethodError, RunContext, Scores, TrainingDiverged
from gzslbench.protocol.scores import scores_problem
from gzslbench.protocol.selection import PROTOCOL, SELECTION_MODES, calibrated_metrics, evaluate, select
from gzslbench.protocol.splits import Split, make_split, validation_split
from gzslbench.results.claims import ClaimHeld, claimed
from gzslbench.results.record import SCHEMA_VERSION, RunRecord
from gzslbench.results.store import read_record, remove_temp_files

# One seed's evaluation: per-candidate metric rows, and the split with the last candidate's scores.
Evaluation = tuple[list[dict], tuple[Split, Scores]]


# gzslbench's code as installed: the core, and the methods and datasets (installed under its namespace)
SOURCE_ROOTS = (*gzslbench.__path__, *gzslbench.methods.__path__, *gzslbench.datasets.__path__)


def plugin_origins(spec: RunSpec) -> dict[str, dict[str, str]]:
    """``{"plugins": {"method": "my-plugin 0.2", ...}}`` for a method or dataset that is not gzslbench's own."""
    found = {"method": origin(METHODS.get(spec.method)), "dataset": origin(DATASETS.get(spec.dataset))}
    plugins = {kind: where for kind, where in found.items() if where}
    return {"plugins": plugins} if plugins else {}


# In the record of a --save-model run whose method saved nothing: a rerun would save nothing either.
NO_MODEL_SAVED = "--save-model: the method saves no model (it does not call ctx.save_model)"


def is_finished(spec: RunSpec, out: str | Path) -> bool:
    """True if a successful record for ``spec`` exists (with val metrics when asked for)."""
    record = read_record(spec.path(out))
    if record is None or record["status"] != "ok":
        return False
    saved = record.get("model_file") and spec.model_path(out).exists()
    if spec.save_model and not saved and NO_MODEL_SAVED not in record.get("warnings", []):
        return False  # finished without saving its model: run again to save it
    if spec.save_scores and not spec.scores_path(out).is_file():
        return False  # finished without its test scores (not asked for, or lost since): run again to save them
    return not spec.validate or "val" in record["metrics"]


def evaluate_seeds(
    method: Method, data: GZSLData, kind: str, specs: Sequence[RunSpec], ctxs: list[RunContext]
) -> list[Evaluation | Exception]:
    """Train ``specs`` (seeds of one config) on the ``kind`` split; per seed its evaluation or what ended it."""
    split = make_split(data, kind)
    shape = (len(split.test_seen_y), len(split.test_unseen_y), split.n_classes)
    rows: list[list[dict]] = [[] for _ in specs]
    last: list[Scores | None] = [None] * len(specs)
    errors: list[Exception | None] = [None] * len(specs)
    for entries in method.predict_seeds(split, specs[0].config, ctxs):
        if all(e is not None for e in errors):
            break  # every seed has ended: train no further candidate
        for k, entry in enumerate(entries):
            if errors[k] is not None:
                continue
            if isinstance(entry, Exception):
                errors[k] = entry
            elif problem := scores_problem(entry, *shape):
                errors[k] = MethodError(f"method '{specs[k].method}' {problem}")
            elif not (torch.isfinite(entry.seen).all() and torch.isfinite(entry.unseen).all()):
                errors[k] = TrainingDiverged(f"{kind} scores of epoch {entry.epoch} contain NaN or infinite values")
            else:
                if entry.seen.dtype not in (torch.float32, torch.float64):  # half precision: metrics in fp32
                    entry = Scores(entry.epoch, entry.seen.float(), entry.unseen.float())
                rows[k].append({"epoch": entry.epoch, **evaluate(split, entry.seen, entry.unseen)})
                last[k] = entry
    results: list[Evaluation | Exception] = []
    for k, spec in enumerate(specs):
        scores = last[k]
        if errors[k] is None and scores is None:
            errors[k] = RuntimeError(f"method '{spec.method}' yielded no candidate model")
        results.append(errors[k] or (rows[k], (split, scores)))  # type: ignore[arg-type]
    return results


def evaluate_split(spec: RunSpec, data: GZSLData, kind: str, ctx: RunContext) -> list[dict]:
    """Train ``spec``'s method on the ``kind`` split of ``data`` and score every candidate (tuning uses ``val``)."""
    with torch_threads(spec.threads), flush_denormals():
        (result,) = evaluate_seeds(get_method(spec.method)(), data, kind, [spec], [ctx])
    if isinstance(result, Exception):
        raise result
    return result[0]


def save_scores(path: Path, split: Split, scores: Scores) -> None:
    """The last candidate's test scores as float16, with labels and class roles, written atomically."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez_compressed(
            handle,
            seen_scores=scores.seen.detach().cpu().numpy().astype(np.float16),
            unseen_scores=scores.unseen.detach().cpu().numpy().astype(np.float16),
            seen_y=split.test_seen_y,
            unseen_y=split.test_unseen_y,
            seen_classes=split.seen,
            unseen_classes=split.unseen,
            epoch=np.asarray(scores.epoch),
        )


def data_block(data: GZSLData, validate: bool, warnings: list[str]) -> dict[str, Any]:
    """The record's ``data`` block: counts, fingerprint and, for a --val run, the validation split's provenance."""
    block: dict[str, Any] = {**data.summary(), "fingerprint": data.fingerprint, "validation": None}
    warnings.extend(data.extra.get("warnings") or [])  # the data validation's (e.g. a class of all-zero attributes)
    if data.extra.get("validation_restricted"):
        block["validation_restricted"] = data.extra["validation_restricted"]
    if validate:
        block["validation"] = validation_split(data).provenance
        small = block["validation"]["classes_without_seen_validation"]
        if small:
            warnings.append(
                f"{len(small)} train class(es) have fewer than 5 trainval instances and no seen-validation "
                f"instance (classes {small[:10]}); they are trained on but not validated"
            )
    return block


def new_record(spec: RunSpec, unit_seeds: Sequence[int] = (), results: str | Path | None = None) -> RunRecord:
    """The record of ``spec`` before it runs: what is run, with which code, where and how.

    ``unit_seeds`` are the seeds trained in one computation with this one (empty: alone);
    ``results`` the folder the record goes to, for its replay command.
    """
    device = torch.device(spec.device)
    unit = list(unit_seeds) or [spec.seed]
    return {
        "schema_version": SCHEMA_VERSION,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "config": spec.config,
        "config_hash": spec.config_hash,
        "defaults_source": spec.defaults_source,
        "dataset_options": spec.dataset_options,
        "data_dir": spec.data_dir,
        "device": spec.device,
        "threads": torch.get_num_threads(),
        "validate": spec.validate,
        "sweep": spec.sweep,
        "seed_dependent": get_method(spec.method).seed_dependent,
        "command": with_arithmetic_env(spec.command(unit, results)),
        "execution": {
            "device": spec.device,
            "threads": torch.get_num_threads(),
            "batch_seeds": len(unit),
            "batch_position": unit.index(spec.seed),
            "unit_seeds": unit,
            "flush_denormals": denormals_flushed(),
            "cuda_graphs": cuda_graphs_enabled(device),
            **({"cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG")} if device.type == "cuda" else {}),
        },
        "protocol": PROTOCOL,
        "code": {**code_version(), "source": source_digest(SOURCE_ROOTS), **plugin_origins(spec)},  # type: ignore[typeddict-item]
        "env": environment(device),
        "started_at": datetime.now(UTC).isoformat(),
        "warnings": [],
    }


def complete(
    record: RunRecord,
    spec: RunSpec,
    ctx: RunContext,
    val_ctx: RunContext,
    test: Evaluation,
    val: Evaluation | None,
    scores_path: Path | None,
    model_path: Path | None,
) -> None:
    """Fill ``record`` of a finished run: selected metrics, history, saved scores and model."""
    (test_rows, test_last), (val_rows, val_last) = test, val or (None, None)
    if val is not None:
        ctx.timings.update({f"val_{k}": v for k, v in val_ctx.timings.items()})
    metrics = select(test_rows, val_rows, int(spec.config.get("oracle_from_epoch", 1)))
    metrics["last"].update(calibrated_metrics(test_last, val_last))
    if scores_path is not None:
        save_scores(scores_path, *test_last)
    record.update(status="ok", error=None, metrics=metrics)  # type: ignore[typeddict-item]
    record["selection"] = {mode: SELECTION_MODES[mode] for mode in metrics}
    record["history"] = {"train": ctx.history, "test": test_rows, "val_train": val_ctx.history, "val": val_rows}
    if model_path is not None and model_path.exists():
        record["model_file"] = model_path.name
    elif model_path is not None:
        record["warnings"].append(NO_MODEL_SAVED)


def fail(record: RunRecord, ctx: RunContext, exc: BaseException) -> None:
    """Mark ``record`` failed with ``exc`` as its reason, keeping the history logged so far."""
    trace = "".join(traceback.format_exception(exc))
    record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=trace)  # type: ignore[typeddict-item]
    record["history"] = {"train": ctx.history}


def execute(
    specs: Sequence[RunSpec],
    progress: bool = False,
    data: GZSLData | None = None,
    scores_paths: Sequence[Path | None] | None = None,
    model_paths: Sequence[Path | None] | None = None,
    results: str | Path | None = None,
) -> list[RunRecord]:
    """Run a unit (specs that differ only by seed) and return one record per spec.

    The torch thread count is the spec's while the unit runs, and CPU arithmetic flushes denormals
    (:func:`~gzslbench.core.environment.flush_denormals`); the caller's settings again after.
    Timings are the unit's (``batch_seeds``, when above one, says how many seeds shared them).
    """
    spec0 = specs[0]
    device = torch.device(spec0.device)
    scores_paths = scores_paths or [None] * len(specs)
    model_paths = model_paths or [None] * len(specs)
    with torch_threads(spec0.threads), flush_denormals():
        records = [new_record(spec, [s.seed for s in specs], results) for spec in specs]
        ctxs = [
            RunContext(seed=s.seed, device=device, progress=progress, model_path=p)
            for s, p in zip(specs, model_paths, strict=True)
        ]
        val_ctxs = [RunContext(seed=s.seed, device=device, progress=progress) for s in specs]
        tic = time.perf_counter()
        try:
            if data is None:
                data = load_dataset(spec0.dataset, spec0.data_dir, spec0.dataset_options)
            for record in records:
                record["data"] = data_block(data, spec0.validate, record["warnings"])  # type: ignore[typeddict-item]
            method = get_method(spec0.method)()
            tests = evaluate_seeds(method, data, "test", specs, ctxs)
            vals: list[Evaluation | Exception | None] = [None] * len(specs)
            live = [k for k, t in enumerate(tests) if not isinstance(t, Exception)]
            if spec0.validate and live:
                val_specs, val_live_ctxs = [specs[k] for k in live], [val_ctxs[k] for k in live]
                for k, v in zip(live, evaluate_seeds(method, data, "val", val_specs, val_live_ctxs), strict=True):
                    vals[k] = v
            for k, (test, val) in enumerate(zip(tests, vals, strict=True)):
                failure = next((e for e in (test, val) if isinstance(e, Exception)), None)
                if failure is not None:
                    fail(records[k], ctxs[k], failure)
                else:
                    complete(records[k], specs[k], ctxs[k], val_ctxs[k], test, val, scores_paths[k], model_paths[k])  # type: ignore[arg-type]
        except (KeyboardInterrupt, GZSLBenchError):
            raise
        except Exception as exc:
            for record, ctx in zip(records, ctxs, strict=True):
                fail(record, ctx, exc)
        total_s = time.perf_counter() - tic
    for record, ctx in zip(records, ctxs, strict=True):
        record["timings"] = {"total_s": total_s, **ctx.timings}
        if len(specs) > 1:
            record["timings"]["batch_seeds"] = float(len(specs))
        record["finished_at"] = datetime.now(UTC).isoformat()
    return records


def busy_record(spec: RunSpec, reason: str) -> dict[str, Any]:
    """What a spec that another process is running reports in this command (nothing is written)."""
    return {"status": "busy", "error": reason, **asdict(spec), "config_hash": spec.config_hash}


def check_outputs_free(specs: Sequence[RunSpec], out: str) -> None:
    """Fail before training when a folder sits where a run's record, scores or model file goes.

    Found only when the file is written, it would cost the finished run (a record) or its metrics.
    """
    for spec in specs:
        paths = (spec.path(out), spec.save_scores and spec.scores_path(out), spec.save_model and spec.model_path(out))
        for path in paths:
            if path and path.is_dir():
                raise GZSLBenchError(folder_in_the_way(path))


def execute_and_save(
    specs: Sequence[RunSpec], out: str, progress: bool, force: bool, data: GZSLData | None = None
) -> list[dict[str, Any]]:
    """Claim every spec of a unit, run those not finished meanwhile, write each record alone.

    Specs another process holds or finished meanwhile are reported as such and left out of the unit.
    """
    results: dict[int, dict[str, Any]] = {}
    with ExitStack() as claims:
        todo = []
        for k, spec in enumerate(specs):
            path = spec.path(out)
            try:
                claims.enter_context(claimed(path))
            except ClaimHeld as exc:
                results[k] = busy_record(spec, str(exc))
                continue
            remove_temp_files(path)  # a killed predecessor's, if any: the claim says none is alive
            if not force and is_finished(spec, out):
                results[k] = read_record(path) or busy_record(spec, "finished by another process")
            else:
                todo.append(k)
        if todo:
            unit = [specs[k] for k in todo]
            check_outputs_free(unit, out)
            records = execute(
                unit,
                progress,
                data,
                [s.scores_path(out) if s.save_scores else None for s in unit],
                [s.model_path(out) if s.save_model else None for s in unit],
                out,
            )
            with interrupts_deferred():  # all of the unit's records, or an interrupt would drop finished runs
                for k, spec, record in zip(todo, unit, records, strict=True):
                    write_json_atomic(spec.path(out), record)
                    results[k] = record
    return [results[k] for k in range(len(specs))]


def run_in_worker(specs: Sequence[RunSpec], out: str, force: bool) -> list[dict[str, Any]]:
    """:func:`execute_and_save` in a worker process gzslbench started (joblib or Dask), set up as its own."""
    set_up_own_process()
    return execute_and_save(specs, out, False, force)
