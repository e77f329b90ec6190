"""Atomic writes: a reader never sees half a file, and a killed writer leaves only a hidden temp file.

Every file gzslbench writes (records, scores, models, search results, baselines) goes through
:func:`atomic_path`. Temp files are named ``.<name>.<random>.tmp`` beside their target, so the
results store can find and clear the ones an interrupted run left.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gzslbench.core.errors import DISK_FULL, DiskFullError, disk_full_message

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside ``path`` for the block to write; renamed onto ``path`` if the block succeeds.

    A failed block removes its temp file; a killed process leaves a hidden ``.<name>.*.tmp``. A full
    disk (or quota) is :class:`~gzslbench.core.errors.DiskFullError`, one line naming ``path``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would keep a shared results folder from the group
        os.close(fd)
    except OSError as exc:
        if _disk_full(exc):
            raise DiskFullError(disk_full_message(path), exc.errno) from exc
        raise
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and _disk_full(exc):
            raise DiskFullError(disk_full_message(path), exc.errno) from exc
        raise


def umask() -> int:
    """The process's umask: read where Linux shows it, else set and put back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _disk_full(exc: OSError) -> bool:
    """A write that failed for want of space (or quota), not already reported as such."""
    return exc.errno in DISK_FULL and not isinstance(exc, DiskFullError)


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as strict JSON (NaN -> null) to ``path`` atomically and durably."""
    with atomic_path(path) as tmp, tmp.open("w") as handle:
        json.dump(finite_or_none(payload), handle, indent=1, sort_keys=False, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
