"""Run records on disk: one JSON file per (dataset, method, config, seed), written atomically.

Layout (browsable, and fixed by the run's inputs so that finished runs can be skipped)::

    <out>/runs/<dataset>/<method>/<config-hash>/seed-<k>.json

Records are read only through :func:`load_record` / :func:`iter_records`, which check the schema
(:mod:`gzslbench.results.record`) and say which file is unusable and why.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.files import TEMP_PREFIX, TEMP_SUFFIX
from gzslbench.results.claims import ClaimHeld, claim_path, claimed
from gzslbench.results.record import (
    METRICS,
    RecordError,
    RunRecord,
    check,
    code_label,
    execution_label,
    protocol_version,
)

SCORES_SUFFIX = ".scores.npz"  # `run --save-scores`: seed-<k>.scores.npz beside seed-<k>.json
_RECORD_NAME = re.compile(r"seed-(\d+)\.json")
RECORD_FILES = "seed-*.json"  # the names the record files of a results folder match
OPTION_PREFIX = "-D "  # a dataset option among a config's keys (load_results' ``configs``), as the CLI gives it


def record_path(out: str | Path, dataset: str, method: str, config_hash: str, seed: int) -> Path:
    """Where the record of one run lives under the results folder ``out``."""
    return Path(out) / "runs" / dataset / method / config_hash / f"seed-{seed}.json"


def recorded_names(out: str | Path) -> tuple[set[str], set[str]]:
    """The method and dataset names that have run folders under ``out`` (``runs/<dataset>/<method>/``)."""
    root = Path(out) / "runs"
    datasets = {d for d in root.iterdir() if d.is_dir()} if root.is_dir() else set()
    methods = {m.name for d in datasets for m in d.iterdir() if m.is_dir()}
    return methods, {d.name for d in datasets}


def remove_stale_temp_files(out: str | Path, older_than_s: float = 0.0) -> int:
    """Delete temp files that interrupted writes left under ``out/runs``; returns how many."""

    root = Path(out) / "runs"
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for tmp in root.rglob(f"{TEMP_PREFIX}seed-*{TEMP_SUFFIX}"):
        try:
            if now - tmp.stat().st_mtime >= older_than_s:
                tmp.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def _temp_files(record: Path) -> Iterator[Path]:
    """The temp files (record, scores, model) of ``record``'s run: ``.seed-<k>.*.tmp`` beside it."""
    return record.parent.glob(f"{TEMP_PREFIX}{record.stem}.*{TEMP_SUFFIX}")


def remove_temp_files(record: Path) -> None:
    """Delete the temp files of ``record``'s run; call it holding the run's claim."""
    for tmp in _temp_files(record):
        tmp.unlink(missing_ok=True)


def remove_partial_writes(record: Path) -> None:
    """Delete the claim file and the temp files a killed run left beside ``record``.

    Only while no live process holds the run's claim: a holder may be writing them right now.
    """
    if not claim_path(record).exists() and not any(_temp_files(record)):
        return
    try:
        with claimed(record):
            remove_temp_files(record)
    except (ClaimHeld, OSError):
        pass


def load_record(path: Path) -> RunRecord:
    """The checked record at ``path``; RecordError (one line naming the file) if it cannot be used."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecordError(f"{path}: no such record") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: unreadable ({exc})") from None
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise RecordError(f"{path}: not valid JSON, probably truncated ({exc})") from None
    except RecursionError:
        raise RecordError(f"{path}: nested too deeply to be a run record") from None
    record = check(payload, str(path))
    named = _RECORD_NAME.fullmatch(path.name)
    if named and record["seed"] != int(named[1]):  # a copy (seed-0.json saved as seed-7.json) is no other seed
        seed = record["seed"]
        raise RecordError(f"{path}: holds the record of seed {seed!r}, but its file name says seed {named[1]}")
    if named and len(path.parts) >= 5 and path.parts[-5] == "runs":
        # In a results folder's layout (runs/<dataset>/<method>/<config_hash>/) the folders name the run too: a
        # record whose fields say otherwise would be counted, and its saved files looked for, under another run.
        held, folders = (record["dataset"], record["method"], record["config_hash"]), path.parts[-4:-1]
        if held != folders:
            held_run, folder_run = "/".join(held), "/".join(folders)
            raise RecordError(f"{path}: holds the record of run {held_run}, but its folders say {folder_run}")
    return record


def read_record(path: Path) -> RunRecord | None:
    """The record at ``path``, or None if it is missing or unusable (the run is then redone)."""
    try:
        return load_record(path)
    except RecordError:
        return None


def _record_files(root: Path, problems: list[str] | None) -> list[Path]:
    """The ``seed-*.json`` files under ``root``, sorted; a folder that cannot be listed is named in ``problems``."""

    def unreadable(error: OSError) -> None:
        if problems is not None:
            problems.append(f"{error.filename}: folder not readable ({error.strerror}); its records are left out")

    found = []
    for folder, dirs, files in os.walk(root, onerror=unreadable, followlinks=True):
        found += [Path(folder) / name for name in files if fnmatch.fnmatch(name, RECORD_FILES)]
        if problems is not None:  # a folder named as a record holds no run, but its seed would go missing unsaid
            named = [name for name in dirs if fnmatch.fnmatch(name, RECORD_FILES)]
            problems += [f"{Path(folder) / name}: a folder, not a run record file" for name in named]
    return sorted(found)


def load_or_note(path: Path, problems: list[str] | None) -> RunRecord | None:
    """The record at ``path``, or None with the one-line reason appended to ``problems`` (when given)."""
    try:
        return load_record(path)
    except RecordError as exc:
        if problems is not None:
            problems.append(str(exc))
        return None


def iter_records(out: str | Path, problems: list[str] | None = None) -> Iterator[RunRecord]:
    """Every usable run record under ``out`` (a results folder or its ``runs`` sub-folder).

    Unusable files are skipped; each one's one-line reason is appended to ``problems`` when given.
    So is a second record of the same run (dataset, method, config, seed), as a copy of a results
    folder inside another holds: counted twice, its seeds would narrow every interval.
    """
    root = Path(out)
    if not root.exists():
        raise GZSLBenchError(f"results folder '{root}' does not exist (run `gzslbench run` first, or pass --results)")
    if not root.is_dir():
        raise GZSLBenchError(f"'{root}' is a file, not a results folder (pass the folder given to --results)")
    first: dict[tuple, Path] = {}
    for path in _record_files(root, problems):
        record = load_or_note(path, problems)
        if record is None:
            continue
        run = (record["dataset"], record["method"], record["config_hash"], record["seed"])
        if run in first:
            if problems is not None:
                problems.append(f"{path}: another record of the run at {first[run]}, counted once")
            continue
        first[run] = path
        yield record


# Columns that must agree across a cell's seeds, and what a disagreement is called in a warning.
PROVENANCE_COLUMNS = {
    "protocol_version": "protocol versions",
    "data_fingerprint": "data",
    "code_version": "code versions",
    "device": "devices",
    "machine": "processor models",  # another CPU or GPU model has other kernels, so other last digits
    "execution": "executions",
}


def load_results(
    out: str | Path = "results",
    include_failed: bool = False,
    problems: list[str] | None = None,
    configs: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """A long DataFrame: one row per (run, selection mode) with U, S, H, the selected epoch and provenance.

    ``deterministic`` is True for runs of a method that ignores the seed. ``tuned`` is True for runs
    whose config ``gzslbench tune`` chose on the validation split (for tables to mark); ``sweep``
    names the sweep that planned the run, if any.

    Failed runs give one row with ``mode`` None and their ``error`` when ``include_failed``;
    unusable record files are reported in ``problems``; ``configs``, when given, receives each
    config_hash's resolved config and its dataset options (as ``-D <option>`` keys, the spelling of
    ``gzslbench run``), from which tables name config variants without reading again.
    """
    rows = []
    for record in iter_records(out, problems):
        if configs is not None:
            options = {f"{OPTION_PREFIX}{key}": value for key, value in (record.get("dataset_options") or {}).items()}
            configs[record["config_hash"]] = {**(record.get("config") or {}), **options}
        base = {
            "method": record["method"],
            "dataset": record["dataset"],
            "config_hash": record["config_hash"],
            "seed": record["seed"],
            "status": record["status"],
            "data_fingerprint": (record.get("data") or {}).get("fingerprint"),
            "code_version": code_label(record),
            "device": record.get("device"),
            "machine": (record.get("env") or {}).get("device_name") or None,  # empty in records before 2026-12
            "execution": execution_label(record),
            "protocol_version": protocol_version(record),
            "tuned": bool(record.get("tuning")),
            "deterministic": record.get("seed_dependent") is False,
            "sweep": record.get("sweep"),
        }
        if record["status"] != "ok":
            if include_failed:
                rows.append({**base, "mode": None, "error": record.get("error")})
            continue
        for mode, values in record["metrics"].items():
            rows.append({**base, "mode": mode, "epoch": values.get("epoch"), **{m: values.get(m) for m in METRICS}})
    columns = ["method", "dataset", "config_hash", "seed", "status", "mode", "epoch", *METRICS, *PROVENANCE_COLUMNS]
    columns += ["tuned", "sweep", "deterministic"]
    return pd.DataFrame(rows, columns=columns + (["error"] if include_failed else []))


def mixed_provenance(frame: pd.DataFrame) -> list[str]:
    """One line per table cell (method, dataset, config) whose seeds differ in protocol, data, code or execution."""
    notes = []
    for (method, dataset, config), group in frame.groupby(["method", "dataset", "config_hash"], sort=True):
        for column, what in PROVENANCE_COLUMNS.items():
            values = sorted({str(v) for v in group[column].dropna().unique()})
            if len(values) > 1:
                notes.append(f"{method} on {dataset} [{config}]: seeds from {len(values)} {what}: {'; '.join(values)}")
    return notes
