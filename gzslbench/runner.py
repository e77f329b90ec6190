"""Plan and execute runs: one run = (method, dataset, dataset options, config, seed) -> one record.

Runs are independent, so seeds go out in parallel with joblib (processes). Workers receive
plain data (a :class:`RunSpec`), load the dataset themselves, and write their own record
atomically under a claim (:mod:`gzslbench.claims`), so an interrupted command loses only the
runs still in flight and two commands never run the same spec at once.

Resume rule: a spec with a finished (``ok``) record is skipped, unless ``force``. A record made
from other data (its data fingerprint differs from the data loaded now) is never reused: the
command stops before running anything and asks for ``--force`` or another ``--out``. A record
from another code version or device is reused; ``table`` shows such mixes and ``--strict``
refuses them. An unreadable or incomplete record is rerun.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from gzslbench.claims import ClaimHeld, claimed
from gzslbench.config import check_ranges, config_hash, load_config_file, parse_assignments, resolve_config
from gzslbench.data import GZSLData
from gzslbench.environment import code_version, environment, resolve_device
from gzslbench.errors import ConfigError, GZSLBenchError
from gzslbench.methods.base import Method, RunContext, Scores, TrainingDiverged
from gzslbench.planning import ExecutionPlan, parse_count, plan_execution, threads_per_process
from gzslbench.process import set_up_process
from gzslbench.protocol import (
    PROTOCOL,
    SELECTION_MODES,
    Split,
    calibrated_metrics,
    evaluate,
    make_split,
    select,
    validation_split,
)
from gzslbench.record import SCHEMA_VERSION, RunRecord
from gzslbench.registry import DATASETS, METHODS
from gzslbench.results import (
    SCORES_SUFFIX,
    atomic_path,
    read_record,
    record_path,
    remove_partial_writes,
    remove_stale_temp_files,
    remove_temp_files,
    write_json_atomic,
)

MAX_SEEDS = 10_000  # more seeds than any table needs: a larger count is a typo
MAX_SEED = 2**31 - 1
BACKENDS = ("joblib", "dask")


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(n_jobs: int) -> int:
    """Torch threads per run so that ``n_jobs`` parallel runs never exceed this machine's cores."""
    return threads_per_process(cpu_count(), n_jobs)


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run; its record can be rebuilt from these fields alone.

    ``threads`` is part of the spec because the torch thread count can change results in the
    last bits; ``data_fingerprint`` (of the data loaded when the spec was planned) and
    ``defaults_source`` are carried for the record and the resume check, not for identity; so is
    ``sweep``, the name of the sweep that planned the run.
    """

    method: str
    dataset: str
    seed: int
    config: dict[str, Any]
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    device: str = "cpu"
    validate: bool = False
    threads: int = 1
    defaults_source: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str | None = None
    save_scores: bool = False
    sweep: str | None = None  # the sweep or tuning search that planned the run; a tag, not identity
    save_model: bool = False

    @property
    def data_key(self) -> tuple:
        return data_key(self.dataset, self.data_dir, self.dataset_options)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config, self.dataset_options)

    def path(self, out: str | Path) -> Path:
        return record_path(out, self.dataset, self.method, self.config_hash, self.seed)

    def model_path(self, out: str | Path) -> Path:
        """Where ``--save-model`` puts the trained weights: beside the record."""
        return model_path(self.path(out))

    def scores_path(self, out: str | Path) -> Path:
        """Where ``--save-scores`` puts the last candidate's test scores: beside the record."""
        path = self.path(out)
        return path.with_name(path.stem + SCORES_SUFFIX)

    def command(self) -> str:
        """The CLI command that repeats exactly this run (shell-quoted)."""
        parts = ["gzslbench", "run", "--method", self.method, "--dataset", self.dataset]
        parts += [
            "--seeds",
            "1",
            "--seed-start",
            str(self.seed),
            "--device",
            self.device,
            "--threads",
            str(self.threads),
        ]
        for key, value in self.dataset_options.items():
            parts += ["--dataset-option", f"{key}={_yaml_value(value)}"]
        for key, value in self.config.items():
            parts += ["--set", f"{key}={_yaml_value(value)}"]
        if self.data_dir:
            parts += ["--data-dir", self.data_dir]
        if self.validate:
            parts.append("--val")
        if self.save_model:
            parts.append("--save-model")
        if self.save_scores:
            parts.append("--save-scores")
        return shlex.join(parts)


def model_path(record: Path) -> Path:
    """``.../seed-0.json`` -> ``.../seed-0.model.pt`` (the state dict saved by ``--save-model``)."""
    return record.with_suffix(".model.pt")


def data_key(dataset: str, data_dir: str | None, options: Mapping[str, Any]) -> tuple:
    """Runs with equal keys read the same data, so one command loads it once."""
    return (dataset, data_dir, tuple(sorted(options.items())))


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def get_method(name: str) -> type[Method]:
    """The registered Method class called ``name``."""
    return METHODS.get(name)


def dataset_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's options with ``options`` applied (unknown keys raise)."""
    return resolve_config(DATASETS.get(name).options, [options], kind=f"option of dataset '{name}'")


def load_dataset(name: str, data_dir: str | None = None, options: Mapping[str, Any] | None = None) -> GZSLData:
    """Load (or generate) a registered dataset with its options applied."""
    adapter = DATASETS.get(name)()
    return adapter.load(Path(data_dir).expanduser() if data_dir else None, **dataset_options(name, options or {}))


def defaults_source(method: str, defaults_from: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The per-dataset defaults layer of ``method`` for data whose settings come from ``defaults_from``."""
    cls = get_method(method)
    try:
        return cls.defaults_for(defaults_from)
    except ValueError as exc:
        raise ConfigError(f"method '{cls.name}' {exc}") from exc


def method_config(
    method: str,
    defaults_from: str,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults < per-dataset defaults < config file < overrides, checked against the defaults and ranges."""
    cls = get_method(method)
    layers = [defaults_source(method, defaults_from)[0]]
    if config_file:
        layers.append(load_config_file(config_file))
    layers.append(overrides or {})
    config = resolve_config(cls.defaults, layers, kind=f"config key of method '{cls.name}'")
    try:
        check_ranges(config, cls.ranges)
        cls.check_config(config)
    except ValueError as exc:  # ConfigError included
        raise ConfigError(f"method '{cls.name}': {exc}") from exc
    return config


def _absolute_paths(options: dict[str, Any]) -> dict[str, Any]:
    """A ``path`` option made absolute, so that the record's command replays from any folder."""
    if options.get("path"):
        return {**options, "path": str(Path(str(options["path"])).expanduser().resolve())}
    return options


def plan(
    methods: Sequence[str],
    datasets: Sequence[str],
    seeds: Iterable[int],
    *,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    validate: bool = False,
    threads: int | None = None,
    save_scores: bool = False,
    loaded: dict[tuple, GZSLData] | None = None,
    save_model: bool = False,
) -> list[RunSpec]:
    """Resolve names, options and configs into RunSpecs, loading (and so checking) each dataset once.

    The loaded datasets are put in ``loaded`` (keyed by :attr:`RunSpec.data_key`) when given, for
    :func:`run_specs` to reuse in this process.
    """
    seeds = list(seeds)
    resolved_device = str(resolve_device(device))
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None
    specs = []
    for dataset in datasets:
        ds_name = DATASETS.get(dataset).name
        opts = _absolute_paths(dataset_options(ds_name, options or {}))
        data = load_dataset(ds_name, data_dir, opts)
        if loaded is not None:
            loaded[data_key(ds_name, data_dir, opts)] = data
        for method in methods:
            m_name = get_method(method).name
            config = method_config(m_name, data.defaults_from, config_file, overrides)
            source = defaults_source(m_name, data.defaults_from)[1]
            specs += [
                RunSpec(
                    m_name,
                    ds_name,
                    seed,
                    config,
                    opts,
                    data_dir,
                    resolved_device,
                    validate,
                    threads or default_threads(1),
                    source,
                    data.fingerprint,
                    save_scores,
                    save_model=save_model,
                )
                for seed in seeds
            ]
    return specs


def is_finished(spec: RunSpec, out: str | Path) -> bool:
    """True if a successful record for ``spec`` exists (with val metrics when asked for)."""
    record = read_record(spec.path(out))
    if record is None or record["status"] != "ok":
        return False
    if spec.save_model and not (record.get("model_file") and spec.model_path(out).exists()):
        return False  # finished without saving its model: run again to save it
    return not spec.validate or "val" in record["metrics"]


def stale_records(specs: Iterable[RunSpec], out: str | Path) -> list[tuple[RunSpec, str | None]]:
    """Specs whose finished record was made from other data: (spec, the record's fingerprint)."""
    stale = []
    for spec in specs:
        record = read_record(spec.path(out))
        if record is None or record["status"] != "ok" or spec.data_fingerprint is None:
            continue
        recorded = (record.get("data") or {}).get("fingerprint")
        if recorded != spec.data_fingerprint:
            stale.append((spec, recorded))
    return stale


def evaluate_split(spec: RunSpec, data: GZSLData, kind: str, ctx: RunContext) -> list[dict]:
    """Train ``spec``'s method on the ``kind`` split of ``data`` and score every candidate (tuning uses ``val``)."""
    set_up_process(spec.threads)
    return _evaluate_all(get_method(spec.method)(), data, kind, spec, ctx)[0]


def _evaluate_all(
    method: Method, data: GZSLData, kind: str, spec: RunSpec, ctx: RunContext
) -> tuple[list[dict], tuple[Split, Scores]]:
    """Per-candidate metric rows, and the split with the last candidate's scores (for AUSUC): a batch of one."""
    (result,) = _evaluate_seeds(method, data, kind, [spec], [ctx])
    if isinstance(result, Exception):
        raise result
    return result


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


def _data_block(data: GZSLData, validate: bool, warnings: list[str]) -> dict[str, Any]:
    """The record's ``data`` block: counts, fingerprint and, for a --val run, the validation split's provenance."""
    block: dict[str, Any] = {**data.summary(), "fingerprint": data.fingerprint, "validation": None}
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


def new_record(spec: RunSpec) -> RunRecord:
    """The record of ``spec`` before it runs: what is run, with which code and where."""
    device = torch.device(spec.device)
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
        "command": spec.command(),
        "protocol": PROTOCOL,
        "code": code_version(),  # type: ignore[typeddict-item]
        "env": environment(device),
        "started_at": datetime.now(UTC).isoformat(),
        "warnings": [],
    }


def execute(
    spec: RunSpec,
    progress: bool = False,
    data: GZSLData | None = None,
    scores_path: Path | None = None,
    model_path: Path | None = None,
) -> RunRecord:
    """Run one spec and return its record; a failure inside the method becomes status 'failed'."""
    set_up_process(spec.threads)
    device = torch.device(spec.device)
    record = new_record(spec)
    ctx = RunContext(seed=spec.seed, device=device, progress=progress, model_path=model_path)
    tic = time.perf_counter()
    try:
        if data is None:
            data = load_dataset(spec.dataset, spec.data_dir, spec.dataset_options)
        record["data"] = _data_block(data, spec.validate, record["warnings"])  # type: ignore[typeddict-item]
        method = get_method(spec.method)()
        test = _evaluate_all(method, data, "test", spec, ctx)
        val, val_ctx = None, RunContext(seed=spec.seed, device=device, progress=progress)
        if spec.validate:
            val = _evaluate_all(method, data, "val", spec, val_ctx)
        _complete(record, spec, ctx, val_ctx, test, val, scores_path, model_path)
    except (KeyboardInterrupt, GZSLBenchError):
        raise
    except Exception as exc:
        _fail(record, ctx, exc)
    record["timings"] = {"total_s": time.perf_counter() - tic, **ctx.timings}
    record["finished_at"] = datetime.now(UTC).isoformat()
    return record


Evaluation = tuple[list[dict], tuple[Split, Scores]]


def _complete(
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


def _fail(record: RunRecord, ctx: RunContext, exc: BaseException) -> None:
    """Mark ``record`` failed with ``exc`` as its reason, keeping the history logged so far."""
    trace = "".join(traceback.format_exception(exc))
    record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=trace)  # type: ignore[typeddict-item]
    record["history"] = {"train": ctx.history}


def _evaluate_seeds(
    method: Method, data: GZSLData, kind: str, specs: Sequence[RunSpec], ctxs: list[RunContext]
) -> list[Evaluation | Exception]:
    """Train ``specs`` (one per context, differing only by seed) as one call and score every candidate.

    Per seed its evaluation (metric rows, and the split with the last candidate's scores) or what ended it.
    """
    split = make_split(data, kind)
    rows: list[list[dict]] = [[] for _ in specs]
    last: list[Scores | None] = [None] * len(specs)
    errors: list[Exception | None] = [None] * len(specs)
    for entries in method.predict_seeds(split, specs[0].config, ctxs):
        for k, entry in enumerate(entries):
            if errors[k] is not None:
                continue
            if isinstance(entry, Exception):
                errors[k] = entry
            elif not (torch.isfinite(entry.seen).all() and torch.isfinite(entry.unseen).all()):
                errors[k] = TrainingDiverged(f"{kind} scores of epoch {entry.epoch} contain NaN or infinite values")
            else:
                rows[k].append({"epoch": entry.epoch, **evaluate(split, entry.seen, entry.unseen)})
                last[k] = entry
        if all(e is not None for e in errors):
            break  # every seed has ended: train no further candidate
    results: list[Evaluation | Exception] = []
    for k, spec in enumerate(specs):
        scores = last[k]
        if errors[k] is None and scores is None:
            errors[k] = RuntimeError(f"method '{spec.method}' yielded no candidate model")
        results.append(errors[k] or (rows[k], (split, scores)))  # type: ignore[arg-type]
    return results


def execute_batch(
    specs: Sequence[RunSpec],
    progress: bool = False,
    data: GZSLData | None = None,
    scores_paths: Sequence[Path | None] | None = None,
    model_paths: Sequence[Path | None] | None = None,
) -> list[RunRecord]:
    """Run specs that differ only by seed as one batched computation; one record per seed, as :func:`execute`'s.

    A seed that diverges fails alone; an error of the batch as a whole fails every seed with its
    reason. Timings are the batch's (``batch_seeds`` says how many seeds shared them).
    """
    spec0 = specs[0]
    set_up_process(spec0.threads)
    device = torch.device(spec0.device)
    scores_paths = scores_paths or [None] * len(specs)
    model_paths = model_paths or [None] * len(specs)
    records = [new_record(spec) for spec in specs]
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
            record["data"] = _data_block(data, spec0.validate, record["warnings"])  # type: ignore[typeddict-item]
        method = get_method(spec0.method)()
        tests = _evaluate_seeds(method, data, "test", specs, ctxs)
        vals: list[Evaluation | Exception | None] = [None] * len(specs)
        live = [k for k, t in enumerate(tests) if not isinstance(t, Exception)]
        if spec0.validate and live:
            val_specs, val_live_ctxs = [specs[k] for k in live], [val_ctxs[k] for k in live]
            for k, v in zip(live, _evaluate_seeds(method, data, "val", val_specs, val_live_ctxs), strict=True):
                vals[k] = v
        for k, (test, val) in enumerate(zip(tests, vals, strict=True)):
            failure = next((e for e in (test, val) if isinstance(e, Exception)), None)
            if failure is not None:
                _fail(records[k], ctxs[k], failure)
            else:
                _complete(records[k], specs[k], ctxs[k], val_ctxs[k], test, val, scores_paths[k], model_paths[k])  # type: ignore[arg-type]
    except (KeyboardInterrupt, GZSLBenchError):
        raise
    except Exception as exc:
        for record, ctx in zip(records, ctxs, strict=True):
            _fail(record, ctx, exc)
    total_s = time.perf_counter() - tic
    for record, ctx in zip(records, ctxs, strict=True):
        record["timings"] = {"total_s": total_s, **ctx.timings, "batch_seeds": float(len(specs))}
        record["finished_at"] = datetime.now(UTC).isoformat()
    return records


def busy_record(spec: RunSpec, reason: str) -> dict[str, Any]:
    """What a spec that another process is running reports in this command (nothing is written)."""
    return {"status": "busy", "error": reason, **asdict(spec), "config_hash": spec.config_hash}


def _execute_and_save(
    spec: RunSpec, out: str, progress: bool, force: bool, data: GZSLData | None = None
) -> dict[str, Any]:
    """Claim the spec, run it unless another process finished it meanwhile, write its record."""
    path = spec.path(out)
    try:
        with claimed(path):
            remove_temp_files(path)  # a killed predecessor's, if any: the claim says none is alive
            if not force and is_finished(spec, out):
                return read_record(path) or busy_record(spec, "finished by another process")
            scores_path = spec.scores_path(out) if spec.save_scores else None
            model_path = spec.model_path(out) if spec.save_model else None
            record = execute(spec, progress, data, scores_path, model_path)
            write_json_atomic(path, record)
            return record
    except ClaimHeld as exc:
        return busy_record(spec, str(exc))


def _execute_and_save_batch(
    specs: Sequence[RunSpec], out: str, progress: bool, force: bool, data: GZSLData | None = None
) -> list[dict[str, Any]]:
    """:func:`_execute_and_save` for seeds trained as one batch: every spec is claimed, each record written alone.

    Specs another process holds or finished meanwhile are reported as such and left out of the batch.
    """
    if len(specs) == 1:
        return [_execute_and_save(specs[0], out, progress, force, data)]
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
            remove_temp_files(path)
            if not force and is_finished(spec, out):
                results[k] = read_record(path) or busy_record(spec, "finished by another process")
            else:
                todo.append(k)
        if todo:
            batch = [specs[k] for k in todo]
            paths = [s.path(out) for s in batch]
            records = execute_batch(
                batch,
                progress,
                data,
                [s.scores_path(out) if s.save_scores else None for s in batch],
                [s.model_path(out) if s.save_model else None for s in batch],
            )
            for k, path, record in zip(todo, paths, records, strict=True):
                write_json_atomic(path, record)
                results[k] = record
    return [results[k] for k in range(len(specs))]


def seed_batches(specs: Sequence[RunSpec], batch_seeds: int) -> list[list[RunSpec]]:
    """``specs`` cut into units of execution: up to ``batch_seeds`` specs that differ only by seed, for methods
    that train seeds batched; every other spec alone. Order is kept within a unit."""
    if batch_seeds <= 1:
        return [[s] for s in specs]
    units: list[list[RunSpec]] = []
    open_units: dict[str, list[RunSpec]] = {}
    for spec in specs:
        if not get_method(spec.method).batched_seeds:
            units.append([spec])
            continue
        key = json.dumps({**asdict(spec), "seed": None}, sort_keys=True, default=str)
        unit = open_units.get(key)
        if unit is None or len(unit) >= batch_seeds:
            unit = open_units[key] = []
            units.append(unit)
        unit.append(spec)
    return units


def _report_line(record: dict[str, Any], done: int, total: int) -> str:
    """One log line per finished run, for logs that are not a terminal."""
    head = f"[{done}/{total}] {record.get('method')} on {record.get('dataset')} seed {record.get('seed')}"
    if record.get("status") == "ok":
        last = record["metrics"]["last"]
        return f"{head}: H {last['H']:.1f} (U {last['U']:.1f}, S {last['S']:.1f}), {record['timings']['total_s']:.0f} s"
    return f"{head}: {record.get('status')}: {record.get('error')}"


def with_tail_threads(specs: Sequence[RunSpec], execution: ExecutionPlan) -> list[RunSpec]:
    """``specs`` with the plan's tail (its last units of execution) given the tail's threads."""
    if not execution.tail:
        return list(specs)
    tail = {id(s) for unit in seed_batches(specs, execution.batch_seeds)[-execution.tail :] for s in unit}
    return [replace(s, threads=execution.tail_threads) if id(s) in tail else s for s in specs]


def execution_rounds(units: Sequence[list[RunSpec]], n_jobs: int) -> list[tuple[list[list[RunSpec]], int]]:
    """``units`` grouped by thread count, fewest threads first, each with its number of processes.

    The first group runs on ``n_jobs`` processes; a group of more threads per run (a plan's tail)
    runs after it on as many processes as keep processes x threads within the first group's.
    """
    by_threads: dict[int, list[list[RunSpec]]] = {}
    for unit in units:
        by_threads.setdefault(unit[0].threads, []).append(unit)
    least = min(by_threads, default=1)
    return [
        (group, max(1, min(len(group), n_jobs * least // threads))) for threads, group in sorted(by_threads.items())
    ]


def _run_rounds(rounds: Sequence[tuple[list[list[RunSpec]], int]], out: str, force: bool) -> Iterator[dict[str, Any]]:
    """Records of :func:`execution_rounds`' rounds, one round after the other, as they finish."""
    for units, n_jobs in rounds:
        yield from _run_in_processes(units, out, force, n_jobs)


def _run_in_processes(units: Sequence[list[RunSpec]], out: str, force: bool, n_jobs: int) -> Iterator[dict[str, Any]]:
    """Records of ``units`` run on ``n_jobs`` joblib worker processes, as they finish.

    Closing the stream early kills the workers before it returns, so no worker writes afterwards.
    """
    jobs = (delayed(_execute_and_save_batch)(unit, out, False, force) for unit in units)
    batches = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    try:
        for batch in batches:
            yield from batch
    finally:
        batches.close()


def check_writable(out: str | Path) -> None:
    """Fail before any run if records cannot be written under ``out``."""
    if str(out).strip() == "":
        raise GZSLBenchError("--out must name a folder (got an empty string)")
    runs = Path(out) / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs):  # a unique name: concurrent commands probe at once
            pass
    except OSError as exc:
        raise GZSLBenchError(f"cannot write run records under '{out}': {exc.strerror or exc}") from None


def run_specs(
    specs: Sequence[RunSpec],
    out: str | Path = "results",
    n_jobs: int = 1,
    force: bool = False,
    quiet: bool = False,
    loaded: Mapping[tuple, GZSLData] | None = None,
    backend: str = "joblib",
    scheduler: str | None = None,
    batch_seeds: int = 1,
) -> list[dict[str, Any]]:
    """Execute the specs that are not finished yet (all with ``force``); return every spec's record.

    In-process runs reuse datasets from ``loaded``; parallel workers load their own. ``backend``
    "dask" runs them on a Dask cluster (:mod:`gzslbench.backends`): a LocalCluster of ``n_jobs``
    workers, or the one whose scheduler is at ``scheduler``. ``batch_seeds`` K > 1 trains up to K
    seeds of one (method, dataset, config) as one computation where the method can
    (:func:`seed_batches`; joblib backend only), each still written as its own record. Runs with
    more threads than others (a plan's tail) start once the others are done
    (:func:`execution_rounds`). Progress bars appear only on a terminal; otherwise (a log file,
    CI) one line per finished run.
    """
    check_batch_seeds(batch_seeds, backend)
    check_backend(backend, scheduler)
    check_writable(out)
    remove_stale_temp_files(out, older_than_s=60.0)
    if not force:
        stale = stale_records(specs, out)
        if stale:
            spec, recorded = stale[0]
            raise GZSLBenchError(
                f"{len(stale)} finished record(s) were made from other data than is loaded now (e.g. "
                f"{spec.path(out)}: data fingerprint {recorded}, now {spec.data_fingerprint}); pass --force to "
                "replace them, or --out another folder"
            )
    loaded = loaded or {}
    todo = [s for s in specs if force or not is_finished(s, out)]
    units = seed_batches(todo, batch_seeds)
    n_jobs = max(1, min(n_jobs, len(units)))
    log_lines = not quiet and not sys.stderr.isatty()
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=True if quiet or not todo else None)
    done: dict[Path, dict[str, Any]] = {}

    def finished(record: dict[str, Any]) -> None:
        bar.update()
        if log_lines:
            print(_report_line(record, len(done), len(todo)), file=sys.stderr, flush=True)

    rounds = execution_rounds(units, n_jobs)
    if backend == "joblib" and n_jobs == 1:
        for unit in (unit for round_units, _ in rounds for unit in round_units):
            records = _execute_and_save_batch(unit, str(out), not quiet, force, loaded.get(unit[0].data_key))
            for spec, record in zip(unit, records, strict=True):
                done[spec.path(out)] = record
                finished(record)
    elif todo:
        if backend == "dask":
            from gzslbench.backends import run_on_dask

            records = run_on_dask(todo, out, force, n_jobs, scheduler)
        else:
            records = _run_rounds(rounds, str(Path(out).resolve()), force)  # workers may sit elsewhere
        by_key = {(s.method, s.dataset, s.config_hash, s.seed): s for s in todo}
        try:
            for record in records:
                spec = by_key[(record["method"], record["dataset"], record["config_hash"], record["seed"])]
                done[spec.path(out)] = record
                finished(record)
        except BaseException:  # Ctrl-C, SIGTERM: stop the workers, then clear what they were writing
            records.close()
            for spec in todo:
                remove_partial_writes(spec.path(out))
            raise
    bar.close()
    return [done.get(s.path(out)) or read_record(s.path(out)) or {"status": "missing", **asdict(s)} for s in specs]


def check_seeds(seeds: int, seed_start: int) -> None:
    """Refuse seed counts and ranges no table needs (a typo would otherwise exhaust memory)."""
    if seeds < 1:
        raise GZSLBenchError("--seeds must be at least 1")
    if seeds > MAX_SEEDS:
        raise GZSLBenchError(f"--seeds {seeds} is more than {MAX_SEEDS}; run seeds in batches with --seed-start")
    if seed_start < 0 or seed_start + seeds - 1 > MAX_SEED:
        raise GZSLBenchError(f"seeds must lie in [0, {MAX_SEED}]; got {seed_start}..{seed_start + seeds - 1}")


def check_batch_seeds(batch_seeds: int, backend: str = "joblib") -> None:
    """Refuse a batch size below one seed, and batches on a backend that runs specs one by one."""
    if batch_seeds < 1:
        raise GZSLBenchError(f"--batch-seeds must be at least 1, got {batch_seeds}")
    if batch_seeds > 1 and backend != "joblib":
        raise GZSLBenchError("--batch-seeds runs on the joblib backend only; leave it out with --backend dask")


def check_backend(backend: str, scheduler: str | None) -> None:
    """Refuse an unknown backend, and a scheduler address without the backend that uses it."""
    if backend not in BACKENDS:
        raise GZSLBenchError(f"unknown backend '{backend}'; known: {', '.join(BACKENDS)}")
    if scheduler and backend != "dask":
        raise GZSLBenchError("--scheduler is the address of a Dask scheduler: add --backend dask")


def check_n_jobs(n_jobs: int) -> int:
    """``n_jobs`` as a process count: -1 means one per core; 0 and other negatives are refused."""
    if n_jobs == -1:
        return cpu_count()
    if n_jobs < 1:
        raise GZSLBenchError(f"--n-jobs must be a positive number of processes or -1 (one per core), got {n_jobs}")
    return n_jobs


def run(
    method: str | Sequence[str],
    dataset: str | Sequence[str],
    seeds: int = 1,
    *,
    seed_start: int = 0,
    out: str | Path = "results",
    device: str = "auto",
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | Sequence[str] | None = None,
    data_dir: str | None = None,
    n_jobs: int | str = 1,
    threads: int | None = None,
    force: bool = False,
    validate: bool = False,
    save_scores: bool = False,
    quiet: bool = True,
    backend: str = "joblib",
    scheduler: str | None = None,
    save_model: bool = False,
    batch_seeds: int | str = 1,
) -> list[dict[str, Any]]:
    """Python twin of ``gzslbench run``: run methods x datasets x seeds and return the records.

    ``threads`` is the torch thread count of each run (default: the cores divided by ``n_jobs``),
    so a serial and a parallel command with equal ``threads`` give identical records. ``n_jobs``
    and ``batch_seeds`` may be ``"auto"`` (:mod:`gzslbench.planning` picks them, as the CLI does
    by default). ``backend``, ``scheduler`` and ``batch_seeds``: see :func:`run_specs`.
    """
    check_seeds(seeds, seed_start)
    n_jobs = parse_count(n_jobs, "--n-jobs")
    batch_seeds = parse_count(batch_seeds, "--batch-seeds")
    if isinstance(batch_seeds, int):
        check_batch_seeds(batch_seeds, backend)
    check_backend(backend, scheduler)
    if isinstance(n_jobs, int):
        n_jobs = check_n_jobs(n_jobs)
    if threads is not None and threads < 1:
        raise GZSLBenchError(f"--threads must be at least 1, got {threads}")
    check_writable(out)
    if not isinstance(overrides, Mapping):
        overrides = parse_assignments(overrides or [])
    if not isinstance(options, Mapping):
        options = parse_assignments(options or [])
    loaded: dict[tuple, GZSLData] = {}
    specs = plan(
        [method] if isinstance(method, str) else list(method),
        [dataset] if isinstance(dataset, str) else list(dataset),
        range(seed_start, seed_start + seeds),
        overrides=overrides,
        config_file=config_file,
        options=options,
        data_dir=data_dir,
        device=device,
        validate=validate,
        save_scores=save_scores,
        threads=threads or 1,
        loaded=loaded,
        save_model=save_model,
    )
    execution = plan_execution(
        specs,
        [get_method(s.method).batched_seeds for s in specs],
        cores=cpu_count(),
        device_type=torch.device(specs[0].device).type,
        backend=backend,
        n_jobs=n_jobs,
        threads=threads,
        batch_seeds=batch_seeds,
    )
    if threads is None:
        specs = with_tail_threads([replace(s, threads=execution.threads) for s in specs], execution)
    if not quiet:
        print(f"plan: {execution.describe()}", file=sys.stderr, flush=True)
    return run_specs(
        specs,
        out,
        n_jobs=execution.n_jobs,
        force=force,
        quiet=quiet,
        loaded=loaded,
        backend=backend,
        scheduler=scheduler,
        batch_seeds=execution.batch_seeds,
    )
