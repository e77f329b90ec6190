"""Reading MATLAB ``.mat`` files, classic (scipy) or v7.3 (HDF5, via h5py), as plain numpy arrays.

Usage::

    variables = read_mat(Path("CUB/att_splits.mat"))
    att = variables["att"]  # MATLAB orientation (attr_dim x C) whatever the file version

Every failure to read becomes one :class:`~gzslbench.core.errors.DataError` line naming the file, so a
truncated download never surfaces as a scipy or h5py traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io

from gzslbench.core.errors import DataError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_mat(path: Path) -> dict[str, Any]:
    """The variables of a MATLAB file, in MATLAB orientation; cell arrays of strings as lists.

    Raises:
        DataError: the file is missing or is not a readable MATLAB file.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        raw = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy refers v7.3 files to an HDF5 reader
        return _read_hdf5(path)
    except Exception as exc:  # scipy raises many types on corrupt input
        if h5py.is_hdf5(str(path)):
            return _read_hdf5(path)
        raise DataError(f"{path}: not a readable MATLAB file ({_first_line(exc)})") from exc
    return {key: _from_scipy(value) for key, value in raw.items() if not key.startswith("__")}


def _from_scipy(value: Any) -> Any:
    """Cell arrays of strings become lists of str; numeric arrays pass through."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [_cell_string(item) for item in value.ravel(order="F")]
    return value


def _cell_string(item: Any) -> str:
    arr = np.asarray(item)
    if arr.size == 0:
        return ""
    if arr.dtype.kind in "US":
        return str(arr.ravel()[0])
    if arr.dtype == object:
        return _cell_string(arr.ravel()[0])
    return str(arr.ravel()[0])


def _read_hdf5(path: Path) -> dict[str, Any]:
    try:
        with h5py.File(str(path), "r") as f:
            out: dict[str, Any] = {}
            for key, node in f.items():
                if key.startswith("#") or not isinstance(node, h5py.Dataset):
                    continue
                out[key] = _from_hdf5(f, node)
            return out
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError ... on corrupt input
        raise DataError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({_first_line(exc)})") from exc


def _from_hdf5(f: h5py.File, node: h5py.Dataset) -> Any:
    """HDF5 stores MATLAB arrays transposed; references are cells, uint16 'char' arrays strings."""
    if h5py.check_dtype(ref=node.dtype) is not None:
        refs = np.asarray(node[()]).T.ravel(order="F")
        return [_hdf5_string(f[ref]) for ref in refs]
    if node.attrs.get("MATLAB_class", b"") in (b"char", "char"):
        return _hdf5_string(node)
    return np.asarray(node[()]).T


def _hdf5_string(node: h5py.Dataset) -> str:
    codes = np.asarray(node[()]).ravel()
    if codes.dtype.kind not in "iu":
        return str(codes[0]) if codes.size else ""
    return "".join(chr(int(c)) for c in codes)
