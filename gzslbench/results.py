"""Run records on disk: one JSON file per (dataset, method, config, seed), written atomically.

Layout (browsable, and fixed by the run's inputs so that finished runs can be skipped)::

    <out>/runs/<dataset>/<method>/<config-hash>/seed-<k>.json
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from gzslbench.errors import GZSLBenchError

SCHEMA_VERSION = 1
METRICS = ("U", "S", "H", "ZSL")


def record_path(out: str | Path, dataset: str, method: str, config_hash: str, seed: int) -> Path:
    """Where the record of one run lives under the results folder ``out``."""
    return Path(out) / "runs" / dataset / method / config_hash / f"seed-{seed}.json"


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to a temp file beside ``path`` and rename it: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=False, allow_nan=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None if it is missing or unreadable (e.g. truncated by a crash)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and "status" in record else None


def iter_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every readable run record under ``out`` (a results folder or its ``runs`` sub-folder)."""
    root = Path(out)
    if not root.exists():
        raise GZSLBenchError(f"results folder '{root}' does not exist (run `gzslbench run` first, or pass --results)")
    for path in sorted(root.rglob("seed-*.json")):
        record = read_record(path)
        if record is not None:
            yield record


def load_results(out: str | Path = "results", include_failed: bool = False) -> pd.DataFrame:
    """A long DataFrame: one row per (run, selection mode) with U, S, H, ZSL and the selected epoch."""
    rows = []
    for record in iter_records(out):
        base = {
            "method": record["method"],
            "dataset": record["dataset"],
            "config_hash": record["config_hash"],
            "seed": record["seed"],
            "status": record["status"],
        }
        if record["status"] != "ok":
            if include_failed:
                rows.append({**base, "mode": None, "error": record.get("error")})
            continue
        for mode, values in record["metrics"].items():
            rows.append({**base, "mode": mode, "epoch": values.get("epoch"), **{m: values.get(m) for m in METRICS}})
    columns = ["method", "dataset", "config_hash", "seed", "status", "mode", "epoch", *METRICS]
    return pd.DataFrame(rows, columns=columns + (["error"] if include_failed else []))
