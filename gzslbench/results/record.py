"""The run record: the schema of the JSON file each run writes, defined once, and its checks.

Every run writes one record (see :mod:`gzslbench.results.store` for where). It holds what is needed to
rerun the run (the :class:`~gzslbench.execution.spec.RunSpec` fields), to judge it (data fingerprint,
code version, environment) and to report it (metrics per selection mode, history, timings).
Records are strict JSON: a value that is not finite is written as ``null``.

Older records are upgraded when read (:func:`upgrade`); a record from a newer gzslbench is
refused with a message that says to upgrade. A finished record whose reported numbers are not
finite percentages (0..100), or whose fields read by tables, figures and checks have the wrong
JSON type (:func:`shape_problem`), is refused too, so a damaged file never reaches a table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, TypedDict

from gzslbench.core.environment import assignments
from gzslbench.core.errors import GZSLBenchError

SCHEMA_VERSION = 2
METRICS = ("U", "S", "H", "U_restricted", "AUSUC", "U_cs", "S_cs", "H_cs")


class RecordError(GZSLBenchError):
    """A record file that cannot be used: unreadable, truncated, foreign or of an unknown schema."""


class NewerRecordError(RecordError):
    """A record of a newer gzslbench (record schema ``schema``): only it can read it; never overwritten unasked."""

    def __init__(self, message: str, schema: int | None = None) -> None:
        super().__init__(message)
        self.schema = schema


class CodeVersion(TypedDict, total=False):
    """Which gzslbench produced the record, and which plugin code when the method or dataset is not its own."""

    version: str  # the package version (gzslbench.__version__)
    git_commit: str | None  # HEAD of the checkout it ran from; None for an installed wheel
    git_dirty: bool | None  # True if tracked files differed from HEAD; None when unknown
    source: str  # hash of gzslbench's .py files: tells apart uncommitted edits and installs without a checkout
    plugins: dict[str, str]  # {"method": "my-plugin 0.2"} (distribution and version, else "module NAME"); else absent


class DataBlock(TypedDict, total=False):
    """The data the run actually read (filled after loading)."""

    name: str  # registry name of the dataset
    source: str  # a path, or synthetic(...)
    fingerprint: str  # GZSLData.fingerprint: shapes, splits, labels, attributes, sampled features
    n_instances: int
    feature_dim: int
    attribute_dim: int
    n_classes: int
    n_seen: int
    n_unseen: int
    n_trainval: int
    n_test_seen: int
    n_test_unseen: int
    validation: dict[str, Any] | None  # a --val run: how its split was made (protocol.validation_split)
    validation_restricted: dict[str, int]  # xlsa17: train_loc / val_loc indices dropped for lying outside trainval


class SelectedMetrics(TypedDict, total=False):
    """The reported numbers of one selection mode, in percent."""

    epoch: int  # the selected candidate (e.g. final-classifier epoch), 1-based
    U: float  # per-class accuracy on test_unseen, over all classes
    S: float  # per-class accuracy on test_seen, over all classes
    H: float  # harmonic mean of U and S
    U_restricted: float  # test_unseen scored over the unseen classes only (not the papers' ZSL accuracy)
    val_H: float  # `val` mode only: the validation H that chose the epoch
    AUSUC: float  # `last` only: area under the seen-unseen curve of calibrated stacking, percent (100 = perfect)
    U_cs: float  # `last` with --val only: U after calibrated stacking, gamma chosen on the validation split
    S_cs: float  # idem, S
    H_cs: float  # idem, H
    gamma_cs: float  # the calibration constant subtracted from seen-class scores


class TuningPoint(TypedDict, total=False):
    """One grid point of a validation search."""

    values: dict[str, Any]  # the grid values as written (e.g. {"gamma": 0.1, "lam": 1.0})
    config_hash: str
    status: str  # ok, or failed (e.g. the loss diverged): then val_H is None
    val_H: float | None  # the point's validation H at its best candidate epoch
    val_U: float | None
    val_S: float | None
    epoch: int | None  # that candidate epoch (1 for single-candidate methods)


class TuningBlock(TypedDict, total=False):
    """How the config of a tuned run was chosen (``gzslbench tune``); absent on other runs."""

    name: str  # the search's name (the sweep tag)
    grid: dict[str, list[Any]]  # key -> candidate values
    random: int | None  # points sampled from the grid, or None for the whole product
    chosen: dict[str, Any]  # the grid values of the selected point
    chosen_epoch: int | None  # its best validation epoch
    val_H: float  # the selected point's validation H
    points: list[TuningPoint]  # every point searched, in grid order
    search_seed: int  # the seed each point was trained with on the validation split
    validation: dict[str, Any]  # protocol.validation_split provenance
    selected_on: str  # "validation split only (no test data read)"


class ExecutionBlock(TypedDict, total=False):
    """How a run was executed: what can change its numbers in the last digits without changing the run."""

    device: str  # torch device
    threads: int  # torch intra-op threads
    batch_seeds: int  # seeds trained as one computation with this one (1: alone)
    batch_position: int  # this seed's place in that computation (0-based)
    unit_seeds: list[int]  # the seeds of that computation, in order
    flush_denormals: bool  # CPU arithmetic flushed denormal floats to zero (core.environment.flush_denormals)
    cuda_graphs: bool  # CUDA graphs asked for: GZSLBENCH_CUDA_GRAPHS=1 on a CUDA device (core.cuda_graphs)
    cublas_workspace: str | None  # CUBLAS_WORKSPACE_CONFIG on a CUDA device (execution.process); absent on a CPU


def execution_label(record: dict[str, Any]) -> str:
    """``cpu, batched`` or ``cpu, alone``: the kernels a run's arithmetic went through.

    The device and batching choose other kernels, whose float rounding training amplifies into
    points of H; the planner varies neither within a cell on a CPU of 2 cores. The thread count
    (kept in the record) changes only the order of sums inside the same kernels, and the planner
    gives the last runs of a command more threads for speed, so it is not part of the label.
    Math-library settings that choose other kernels (``env.arithmetic_env``, e.g. ``MKL_CBWR``)
    are appended. Records before the execution block: from ``device`` and ``timings.batch_seeds``.
    """
    block = record.get("execution") or {}
    device = block.get("device", record.get("device"))
    batch = int(block.get("batch_seeds", (record.get("timings") or {}).get("batch_seeds", 1)) or 1)
    settings = dict((record.get("env") or {}).get("arithmetic_env") or {})
    return ", ".join([str(device), "alone" if batch == 1 else "batched", *assignments(settings)])


def protocol_version(record: dict[str, Any]) -> int | None:
    """The protocol version a record was evaluated under (None: the record does not say)."""
    return (record.get("protocol") or {}).get("version")


class RunRecord(TypedDict, total=False):
    """One run's record. Keys marked 'ok only' are present when status is 'ok'."""

    schema_version: int  # SCHEMA_VERSION when written
    # --- what was run (RunSpec fields: enough to rerun it) ---
    method: str
    dataset: str
    seed: int
    config: dict[str, Any]  # the fully resolved method config
    config_hash: str  # hash of config + dataset_options; names the record's folder
    defaults_source: dict[str, str]  # which dataset's method defaults were applied, and why
    dataset_options: dict[str, Any]
    data_dir: str | None
    device: str  # torch device the run used (cpu, cuda, cuda:1)
    threads: int  # torch intra-op threads: results can differ in the last bits with another count
    validate: bool  # trained again on the validation split for the `val` mode
    sweep: str | None  # name of the sweep / tuning search that planned the run, else None
    seed_dependent: bool  # False: the method ignores the seed (one run stands for every seed)
    command: str  # the CLI command that repeats exactly this run (its whole batch, for a batched seed)
    execution: ExecutionBlock  # how it was executed: device, threads, batch
    # --- provenance ---
    protocol: dict[str, Any]  # protocol.PROTOCOL
    data: DataBlock
    code: CodeVersion
    env: dict[str, Any]  # python / torch / numpy versions, platform, device name
    started_at: str  # ISO 8601, UTC
    finished_at: str
    # --- outcome ---
    status: Literal["ok", "failed"]
    error: str | None  # failed only: "<ExceptionType>: message", e.g. a diverged loss
    traceback: str | None  # failed only
    warnings: list[str]  # things the user should know about this run (e.g. classes without validation)
    metrics: dict[str, SelectedMetrics]  # ok only: selection mode -> numbers
    selection: dict[str, str]  # ok only: selection mode -> what it means (protocol.SELECTION_MODES)
    history: dict[str, Any]  # train: per-epoch losses; test / val: per-epoch U/S/H rows
    timings: dict[str, float]  # seconds: total_s and the method's stages
    model_file: str  # --save-model only: the state dict's file name, beside the record
    tuning: TuningBlock  # tuned runs only: the config was chosen on the validation split (gzslbench tune)


REQUIRED = ("method", "dataset", "seed", "config", "config_hash", "status")
REQUIRED_OK = ("metrics",)
STATUSES = ("ok", "failed")
# The JSON type each field must have where present (``block.key``: a field inside a block), for every field that
# tables, figures and checks read: one wrong type would stop every table of the folder. Blocks come before their
# fields.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "method": str,
    "dataset": str,
    "seed": int,
    "config": dict,
    "config_hash": str,
    "status": str,
    "defaults_source": dict,
    "dataset_options": dict,
    "device": str,
    "threads": int,
    "validate": bool,
    "sweep": str,
    "seed_dependent": bool,
    "model_file": str,
    "execution": dict,
    "protocol": dict,
    "data": dict,
    "code": dict,
    "env": dict,
    "metrics": dict,
    "selection": dict,
    "history": dict,
    "timings": dict,
    "tuning": dict,
    "warnings": list,
    "execution.device": str,
    "execution.threads": int,
    "execution.batch_seeds": int,
    "timings.batch_seeds": (int, float),  # timings are seconds: written as a float
    "protocol.version": int,
    "data.fingerprint": str,
    "code.version": str,
    "code.git_commit": str,
    "code.source": str,
    "env.device_name": str,
    "env.arithmetic_env": dict,
}
# The per-epoch rows of ``history``: lists of objects whose values are numbers (null where not finite).
HISTORY_ROWS = ("train", "test", "val_train", "val")
# Every selection mode of an ok record reports these; the other percentages may be null (absent:
# strict JSON writes a NaN as null, e.g. an AUSUC without a curve).
REQUIRED_PERCENT = ("U", "S", "H")
PERCENT = (*METRICS, "val_H")


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 record in schema-2 form: spec fields at the top, ZSL renamed, code version from env."""
    spec = record.pop("spec", {}) or {}
    for key in ("data_dir", "device", "validate"):
        record.setdefault(key, spec.get(key))
    env = record.get("env", {})
    record.setdefault("threads", env.get("torch_threads"))
    record.setdefault("code", {"version": env.get("gzslbench", "unknown"), "git_commit": env.get("git_commit")})
    record["code"].setdefault("git_dirty", None)
    record.setdefault("warnings", [])
    record.setdefault("defaults_source", {})
    for values in (record.get("metrics") or {}).values():
        if "ZSL" in values:
            values["U_restricted"] = values.pop("ZSL")
    record["schema_version"] = SCHEMA_VERSION
    return record


def check(record: Any, where: str) -> RunRecord:
    """``record`` if it is a usable run record (upgraded when older), else RecordError naming ``where``."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: not a run record (a JSON {type(record).__name__})")
    version = record.get("schema_version")
    if "schema_version" not in record or "status" not in record:
        raise RecordError(f"{where}: not a gzslbench run record (no schema_version / status)")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"{where}: schema_version = {repr(version)[:40]} is not a record schema (a whole number)")
    if version > SCHEMA_VERSION:
        raise NewerRecordError(
            f"{where}: written by a newer gzslbench (record schema {version}, this one reads up to "
            f"{SCHEMA_VERSION}); upgrade gzslbench to read it",
            version,
        )
    if version < SCHEMA_VERSION:
        record = upgrade(record)
    missing = [k for k in REQUIRED if k not in record]
    if record.get("status") == "ok":
        missing += [k for k in REQUIRED_OK if not isinstance(record.get(k), dict) or not record.get(k)]
    if missing:
        raise RecordError(f"{where}: incomplete run record (missing {', '.join(missing)}); rerun it with --force")
    problem = shape_problem(record)
    if problem:
        raise RecordError(f"{where}: {problem}")
    if record["status"] not in STATUSES:
        raise RecordError(f"{where}: unknown status {record['status']!r} (expected one of {', '.join(STATUSES)})")
    if record["status"] == "ok":
        for mode, values in record["metrics"].items():
            problem = metrics_problem(values)
            if problem:
                raise RecordError(f"{where}: metrics '{mode}': {problem}; rerun it with --force")
    return record  # type: ignore[return-value]


def shape_problem(record: dict[str, Any]) -> str | None:
    """Why a field that tables, figures or checks read has the wrong shape, or None (see :data:`FIELD_TYPES`)."""
    for key, kind in FIELD_TYPES.items():
        value = _field(record, key)
        if value is not None and _wrong_type(value, kind):
            return f"'{key}' = {repr(value)[:40]} is not a JSON {_json_name(kind)}"
    settings = _field(record, "env.arithmetic_env") or {}
    if not all(isinstance(value, str) for value in settings.values()):
        return f"'env.arithmetic_env' = {repr(settings)[:40]} does not map variable names to strings"
    model_file = record.get("model_file")
    if model_file is not None and (Path(model_file).name != model_file or model_file in ("", ".", "..")):
        return f"'model_file' = {model_file[:40]!r} is not a file name beside the record"
    history = record.get("history") or {}
    for part in HISTORY_ROWS:
        problem = _rows_problem(history.get(part))
        if problem:
            return f"'history.{part}' {problem}"
    return None


def _wrong_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Whether ``value`` is not of ``kind``: a boolean is no number, and a number must be finite (JSON reads NaN)."""
    if isinstance(value, bool):
        return kind is not bool
    return not isinstance(value, kind) or (isinstance(value, float) and not math.isfinite(value))


def _field(record: dict[str, Any], key: str) -> Any:
    """The value at ``block.key`` (None where absent or where the block is not an object)."""
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _rows_problem(rows: Any) -> str | None:
    """Why per-epoch history rows are unusable, or None: an array of objects with a whole-number epoch, a string
    stage where given, numbers (or null) for the rest."""
    if rows is None:
        return None
    if not isinstance(rows, list):
        return f"= {repr(rows)[:40]} is not a JSON array of rows"
    for row in rows:
        if not isinstance(row, dict):
            return f"has a row {repr(row)[:40]} that is not a JSON object"
        epoch = row.get("epoch")
        if epoch is None:
            return "has a row without an 'epoch'"
        if isinstance(epoch, bool) or not isinstance(epoch, int):
            return f"has a row whose 'epoch' = {repr(epoch)[:40]} is not a JSON integer"
        for key, value in row.items():
            if key == "stage":
                if not isinstance(value, str):
                    return f"has a row whose 'stage' = {repr(value)[:40]} is not a JSON string"
            elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                return f"has a row whose '{key}' = {repr(value)[:40]} is not a number"
    return None


def _json_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", int: "integer", (int, float): "number", dict: "object", list: "array", bool: "boolean"}
    return names.get(kind, str(kind))  # type: ignore[call-overload]


def metrics_problem(values: Any) -> str | None:
    """Why one selection mode's numbers cannot be reported, or None: percentages are finite and in 0..100, the
    selected epoch a whole number."""
    if not isinstance(values, dict):
        return f"not a mapping of metrics (a JSON {type(values).__name__})"
    epoch = values.get("epoch")
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        return f"'epoch' = {repr(epoch)[:40]} is not a JSON integer"
    for key in PERCENT:
        value = values.get(key)
        if value is None:
            if key in REQUIRED_PERCENT:
                return f"'{key}' is missing"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"'{key}' = {value!r} is not a number"
        elif not math.isfinite(value):
            return f"'{key}' = {value!r} is not a finite number"
        elif not 0.0 <= value <= 100.0:
            return f"'{key}' = {value!r} is outside 0..100 (a percentage)"
    return None


def code_label(record: RunRecord) -> str:
    """``version+commit[-dirty]`` of the code that wrote ``record`` (and its plugins), for tables and mixed-version
    checks."""
    code = record.get("code") or {}
    label = str(code.get("version", "unknown"))
    if code.get("git_commit"):
        label += f"+{str(code['git_commit'])[:10]}"
    if code.get("git_dirty"):
        label += "-dirty"
    if code.get("source") and (code.get("git_dirty") or not code.get("git_commit")):
        label += f" src {str(code['source'])[:8]}"  # no commit names this code: its files' hash does
    plugins = code.get("plugins")
    if isinstance(plugins, dict) and plugins:
        label += " with " + ", ".join(sorted({str(where) for where in plugins.values()}))
    return label
