"""Plan and execute runs: one run = (method, dataset, dataset options, config, seed) -> one record.

Runs are independent, so seeds go out in parallel with joblib (processes). Workers receive
plain data (a :class:`RunSpec`), load the dataset themselves, and write their own record
atomically, so an interrupted command loses only the runs still in flight.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from gzslbench.config import config_hash, load_config_file, parse_assignments, resolve_config
from gzslbench.data import GZSLData
from gzslbench.environment import environment, resolve_device
from gzslbench.errors import ConfigError, GZSLBenchError
from gzslbench.methods.base import Method, RunContext, TrainingDiverged
from gzslbench.protocol import PROTOCOL, evaluate, make_split, select
from gzslbench.registry import DATASETS, METHODS
from gzslbench.results import SCHEMA_VERSION, read_record, record_path, write_json_atomic

SELECTION_LABELS = {
    "last": "fixed number of epochs, last epoch reported",
    "val": "epoch selected on the validation split (train_loc/val_loc), read on the test split",
    "oracle": "ORACLE: epoch selected on the TEST set (the reference ACMR script's max over epochs)",
}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run; its record can be rebuilt from these fields alone."""

    method: str
    dataset: str
    seed: int
    config: dict[str, Any]
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    device: str = "cpu"
    validate: bool = False
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

    def command(self) -> str:
        """The CLI command that repeats exactly this run."""
        parts = ["gzslbench run", f"--method {self.method}", f"--dataset {self.dataset}", "--seeds 1"]
        parts.append(f"--seed-start {self.seed}")
        parts += [f"--dataset-option {k}={v}" for k, v in self.dataset_options.items()]
        parts += [f"--set '{k}={_yaml_value(v)}'" for k, v in self.config.items()]
        if self.data_dir:
            parts.append(f"--data-dir {self.data_dir}")
        if self.validate:
            parts.append("--val")
        if self.save_model:
            parts.append("--save-model")
        return " ".join(parts)


def model_path(record: Path) -> Path:
    """``.../seed-0.json`` -> ``.../seed-0.model.pt`` (the state dict saved by ``--save-model``)."""
    return record.with_suffix(".model.pt")


def data_key(dataset: str, data_dir: str | None, options: Mapping[str, Any]) -> tuple:
    """Runs with equal keys read the same data, so one command loads it once."""
    return (dataset, data_dir, tuple(sorted(options.items())))


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_yaml_value(v) for v in value) + "]"
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


def method_config(
    method: str,
    defaults_from: str,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults < per-dataset defaults < config file < overrides, checked against the defaults."""
    cls = get_method(method)
    layers = [cls.dataset_defaults.get(defaults_from, {})]
    if config_file:
        layers.append(load_config_file(config_file))
    layers.append(overrides or {})
    config = resolve_config(cls.defaults, layers, kind=f"config key of method '{cls.name}'")
    try:
        cls.check_config(config)
    except ValueError as exc:
        raise ConfigError(f"method '{cls.name}': {exc}") from exc
    return config


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
    loaded: dict[tuple, GZSLData] | None = None,
    save_model: bool = False,
) -> list[RunSpec]:
    """Resolve names, options and configs into RunSpecs, loading (and so checking) each dataset once.

    The loaded datasets are put in ``loaded`` (keyed by :attr:`RunSpec.data_key`) when given, for
    :func:`run_specs` to reuse in this process.
    """
    seeds = list(seeds)
    resolved_device = str(resolve_device(device))
    specs = []
    for dataset in datasets:
        ds_name = DATASETS.get(dataset).name
        opts = dataset_options(ds_name, options or {})
        data = load_dataset(ds_name, data_dir, opts)
        if loaded is not None:
            loaded[data_key(ds_name, data_dir, opts)] = data
        for method in methods:
            m_name = get_method(method).name
            config = method_config(m_name, data.defaults_from, config_file, overrides)
            specs += [
                RunSpec(m_name, ds_name, seed, config, opts, data_dir, resolved_device, validate, save_model)
                for seed in seeds
            ]
    return specs


def is_finished(spec: RunSpec, out: str | Path) -> bool:
    """True if a successful record for ``spec`` exists (with val metrics when asked for)."""
    record = read_record(spec.path(out))
    if record is None or record["status"] != "ok":
        return False
    if spec.save_model and not (record.get("spec") or {}).get("save_model"):
        return False  # finished without saving its model: run again to save it
    return not spec.validate or "val" in record["metrics"]


def _evaluate_all(method: Method, data: GZSLData, kind: str, spec: RunSpec, ctx: RunContext) -> list[dict]:
    split = make_split(data, kind)
    rows = []
    for scores in method.predict(split, spec.config, ctx):
        if not (torch.isfinite(scores.seen).all() and torch.isfinite(scores.unseen).all()):
            raise TrainingDiverged(f"{kind} scores of epoch {scores.epoch} contain NaN or infinite values")
        rows.append({"epoch": scores.epoch, **evaluate(split, scores.seen, scores.unseen)})
    return rows


def execute(
    spec: RunSpec, progress: bool = False, data: GZSLData | None = None, save_to: Path | None = None
) -> dict[str, Any]:
    """Run one spec and return its record; a failure inside the method becomes status 'failed'.

    ``save_to``: where the method may save its trained model (see :meth:`RunContext.save_model`).
    """
    device = torch.device(spec.device)
    started = datetime.now(timezone.utc)
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "method": spec.method,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "config_hash": spec.config_hash,
        "config": spec.config,
        "dataset_options": spec.dataset_options,
        "protocol": PROTOCOL,
        "spec": asdict(spec),
        "command": spec.command(),
        "env": environment(device),
        "started_at": started.isoformat(),
    }
    ctx = RunContext(seed=spec.seed, device=device, progress=progress, model_path=save_to)
    tic = time.perf_counter()
    try:
        if data is None:
            data = load_dataset(spec.dataset, spec.data_dir, spec.dataset_options)
        record["data"] = data.summary()
        method = get_method(spec.method)()
        test_rows = _evaluate_all(method, data, "test", spec, ctx)
        val_rows, val_ctx = None, RunContext(seed=spec.seed, device=device, progress=progress)
        if spec.validate:
            val_rows = _evaluate_all(method, data, "val", spec, val_ctx)
            ctx.timings.update({f"val_{k}": v for k, v in val_ctx.timings.items()})
        metrics = select(test_rows, val_rows, int(spec.config.get("oracle_from_epoch", 1)))
        record.update(status="ok", error=None, metrics=metrics)
        record["selection"] = {mode: SELECTION_LABELS[mode] for mode in metrics}
        record["history"] = {"train": ctx.history, "test": test_rows, "val_train": val_ctx.history, "val": val_rows}
        if save_to is not None and save_to.exists():
            record["model_file"] = save_to.name
    except (KeyboardInterrupt, GZSLBenchError):
        raise
    except Exception as exc:
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        record["history"] = {"train": ctx.history}
    record["timings"] = {"total_s": time.perf_counter() - tic, **ctx.timings}
    record["finished_at"] = datetime.now(timezone.utc).isoformat()
    return record


def _execute_and_save(
    spec: RunSpec, out: str, threads: int | None, progress: bool, data: GZSLData | None = None
) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    saving = {"save_to": spec.model_path(out)} if spec.save_model else {}
    record = execute(spec, progress, data, **saving)
    write_json_atomic(spec.path(out), record)
    return record


def run_specs(
    specs: Sequence[RunSpec],
    out: str | Path = "results",
    n_jobs: int = 1,
    force: bool = False,
    quiet: bool = False,
    loaded: Mapping[tuple, GZSLData] | None = None,
) -> list[dict[str, Any]]:
    """Execute the specs that are not finished yet (all with ``force``); return every spec's record.

    In-process runs reuse datasets from ``loaded``; parallel workers load their own.
    """
    loaded = loaded or {}
    todo = [s for s in specs if force or not is_finished(s, out)]
    if n_jobs < 1:
        n_jobs = max(1, os.cpu_count() or 1)
    n_jobs = max(1, min(n_jobs, len(todo)))
    threads = max(1, (os.cpu_count() or 1) // n_jobs) if n_jobs > 1 else None
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=quiet or not todo)
    done: dict[Path, dict[str, Any]] = {}
    if n_jobs == 1:
        for spec in todo:
            done[spec.path(out)] = _execute_and_save(spec, str(out), None, not quiet, loaded.get(spec.data_key))
            bar.update()
    else:
        jobs = (delayed(_execute_and_save)(spec, str(out), threads, False) for spec in todo)
        for record in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs):
            done[record_path(out, record["dataset"], record["method"], record["config_hash"], record["seed"])] = record
            bar.update()
    bar.close()
    return [done.get(s.path(out)) or read_record(s.path(out)) or {"status": "missing", **asdict(s)} for s in specs]


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
    n_jobs: int = 1,
    force: bool = False,
    validate: bool = False,
    quiet: bool = True,
    save_model: bool = False,
) -> list[dict[str, Any]]:
    """Python twin of ``gzslbench run``: run methods x datasets x seeds and return the records."""
    if seeds < 1:
        raise GZSLBenchError("--seeds must be at least 1")
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
        loaded=loaded,
        save_model=save_model,
    )
    return run_specs(specs, out, n_jobs=n_jobs, force=force, quiet=quiet, loaded=loaded)
