"""Checked conversion of arrays read from a user's file into the dtypes GZSLData holds.

Each helper raises one :class:`~gzslbench.core.errors.DataError` line of the form
``<file>: '<key>' <problem>``, so the user knows which file and which variable to fix.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from gzslbench.core.errors import DataError


def fail(path: Path | str, key: str, problem: str) -> DataError:
    """The one-line error for variable ``key`` of file ``path``."""
    return DataError(f"{path}: '{key}' {problem}")


def check_declared_size(path: Path | str, key: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> None:
    """DataError unless ``available`` bytes can hold an array of ``shape`` and ``dtype`` (its header's claim).

    Called before the array is read, so a damaged header that declares terabytes is refused
    instead of allocated.
    """
    declared = math.prod(shape) * dtype.itemsize
    if declared > available:
        raise fail(
            path,
            key,
            f"declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) but the file holds {available:,} bytes "
            "of it: the file is truncated or corrupt",
        )


def as_matrix(value: Any, path: Path | str, key: str) -> np.ndarray:
    """A finite 2-D float32 array."""
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise fail(path, key, f"must be a 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiub":
        raise fail(path, key, f"must be numeric, got dtype {arr.dtype}")
    bad = int(arr.size - np.isfinite(arr).sum()) if arr.dtype.kind == "f" else 0
    if bad:
        raise fail(path, key, f"contains {bad} NaN or infinite values")
    with np.errstate(over="ignore"):  # counted below
        arr = arr.astype(np.float32, copy=False)
    overflowed = int(arr.size - np.isfinite(arr).sum())
    if overflowed:
        limit = float(np.finfo(np.float32).max)
        raise fail(path, key, f"has {overflowed} values beyond float32's range (magnitude above {limit:.1e})")
    return arr


def as_integers(value: Any, path: Path | str, key: str, base: int, upper: int, what: str) -> np.ndarray:
    """A 0-based int64 vector from ``base``-based integers (any vector shape), each in ``[base, upper + base)``.

    Args:
        value: the stored vector (row, column or flat; integer or integer-valued float).
        path: the file, for the message.
        key: the variable, for the message.
        base: 1 for MATLAB indices, 0 for numpy ones.
        upper: how many valid values there are (instances, or classes).
        what: what ``upper`` counts, for the message (e.g. "instances").
    """
    arr = np.asarray(value)
    if arr.ndim > 2 or (arr.ndim == 2 and min(arr.shape) != 1):
        raise fail(path, key, f"must be a vector, got shape {arr.shape}")
    arr = arr.ravel()
    if arr.size == 0:
        raise fail(path, key, "is empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise fail(path, key, "must hold whole numbers")
    elif arr.dtype.kind not in "iu":
        raise fail(path, key, f"must hold integers, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:  # would wrap to negatives in int64
        raise fail(path, key, f"has values up to {int(arr.max())} but must lie in [{base}, {upper - 1 + base}]")
    out = arr.astype(np.int64) - base
    if out.min() < 0 or out.max() >= upper:
        lo, hi = int(out.min()) + base, int(out.max()) + base
        raise fail(
            path, key, f"has values in [{lo}, {hi}] but must lie in [{base}, {upper - 1 + base}] ({upper} {what})"
        )
    return out
