"""The ``custom`` dataset: a user's own features, labels, attributes and splits in one ``.npz`` file.

Usage::

    np.savez("mine.npz", features=x, labels=y, attributes=a,
             trainval=tv, test_seen=ts, test_unseen=tu, class_names=np.array(names))
    data = DATASETS.get("custom")().load(path="mine.npz", defaults_from="cub")
    # CLI: --dataset custom --dataset-option path=mine.npz   (or --data-dir mine.npz)

Schema (indices and labels are 0-based, as in numpy; the file is read with ``allow_pickle=False``):

============== =========== ===========================================================
key            shape       meaning
============== =========== ===========================================================
features       (N, D)      float instance features (e.g. ResNet-101, D = 2048)
labels         (N,)        int class id of each instance, in ``[0, C)``
attributes     (C, A)      float class attribute vectors (row c describes class c)
trainval       (n_tv,)     int indices of training instances (seen classes only)
test_seen      (n_ts,)     int indices of held-out seen-class instances
test_unseen    (n_tu,)     int indices of unseen-class instances
train          (n_tr,)     optional: train part of the validation split
val            (n_va,)     optional: instances of the validation classes (give both or neither)
class_names    (C,)        optional: str array of class names
============== =========== ===========================================================

The splits must be disjoint, unseen classes must not appear in ``trainval``, and every array
must be finite. ``defaults_from`` names the real dataset whose method hyper-parameters apply.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gzslbench.core.errors import DataError
from gzslbench.core.registry import register_dataset
from gzslbench.data.dataset import GZSLData, validate
from gzslbench.datasets._arrays import as_integers, as_matrix, check_declared_size, fail
from gzslbench.datasets.base import DatasetAdapter

REQUIRED = ("features", "labels", "attributes", "trainval", "test_seen", "test_unseen")
OPTIONAL = ("train", "val", "class_names")
KNOWN_DEFAULTS = ("cub", "sun", "awa1", "awa2", "apy", "flo")


def resolve_path(data_dir: Path | None, path: Any) -> Path:
    """The ``.npz`` to read: option ``path``, else ``data_dir`` when it names a file."""
    if path not in (None, ""):
        return Path(str(path)).expanduser()
    if data_dir is not None and Path(data_dir).suffix == ".npz":
        return Path(data_dir).expanduser()
    raise DataError(
        "custom: no .npz file given; pass --dataset-option path=FILE.npz (or --data-dir FILE.npz); "
        "see gzslbench.datasets.custom for the schema"
    )


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of ``path``; DataError (one line) when missing, unreadable or holding objects."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a readable .npz file (not a zip archive; write it with numpy.savez)")
    try:
        check_members(path)
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except DataError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise DataError(
                f"{path}: holds an object array; store strings as np.array(names, dtype=str) and numbers as "
                "numeric arrays"
            ) from exc
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from exc
    except MemoryError:
        raise DataError(f"{path}: its arrays do not fit in memory") from None


def check_members(path: Path) -> None:
    """Refuse an array whose ``.npy`` header declares more bytes than its member of the archive holds.

    Only the headers are read; numpy would allocate the declared shape before reading the data.
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                if not dtype.hasobject:  # pickled objects: refused by np.load(allow_pickle=False) below
                    key, available = info.filename.removesuffix(".npy"), info.file_size - member.tell()
                    check_declared_size(path, key, shape, dtype, available)


def load_npz(path: Path, defaults_from: str = "cub", name: str = "custom") -> GZSLData:
    """Read, check and validate a custom ``.npz`` (see the module docstring for the schema)."""
    content = read_npz(path)
    missing = [key for key in REQUIRED if key not in content]
    if missing:
        raise DataError(
            f"{path}: missing key(s) {', '.join(repr(k) for k in missing)}; required: {', '.join(REQUIRED)}"
        )
    features = as_matrix(content["features"], path, "features")
    attributes = as_matrix(content["attributes"], path, "attributes")
    n, n_classes = features.shape[0], attributes.shape[0]
    labels_raw = np.asarray(content["labels"])
    if labels_raw.ndim != 1 or labels_raw.shape[0] != n:
        raise fail(path, "labels", f"must have shape ({n},) (one per row of 'features'), got {labels_raw.shape}")
    labels = as_integers(labels_raw, path, "labels", 0, n_classes, "classes = rows of 'attributes'")
    splits: dict[str, np.ndarray | None] = {}
    for key in ("trainval", "test_seen", "test_unseen", "train", "val"):
        if key in content:
            splits[key] = as_integers(content[key], path, key, 0, n, "instances = rows of 'features'")
        else:
            splits[key] = None
    if (splits["train"] is None) != (splits["val"] is None):
        given = "train" if splits["train"] is not None else "val"
        raise fail(path, given, "is given without its partner: give both 'train' and 'val', or neither")
    class_names = None
    if "class_names" in content:
        raw = np.asarray(content["class_names"])
        if raw.dtype.kind not in "US" or raw.ndim != 1:
            raise fail(path, "class_names", f"must be a 1-D string array, got dtype {raw.dtype}, shape {raw.shape}")
        if raw.shape[0] != n_classes:
            raise fail(path, "class_names", f"has {raw.shape[0]} names but 'attributes' has {n_classes} rows")
        class_names = [str(s) for s in raw]
    ignored = sorted(set(content) - set(REQUIRED) - set(OPTIONAL))
    data = GZSLData(
        name=name,
        features=features,
        labels=labels,
        attributes=attributes,
        trainval=splits["trainval"],
        test_seen=splits["test_seen"],
        test_unseen=splits["test_unseen"],
        train=splits["train"],
        val=splits["val"],
        class_names=class_names,
        defaults_from=defaults_from,
        source=str(path),
        extra={"ignored_keys": ignored} | ({"warnings": [unknown_keys_warning(ignored)]} if ignored else {}),
    )
    return validate(data, str(path))


def unknown_keys_warning(keys: list[str]) -> str:
    """A misspelt optional array (``vals`` for ``val``) is not read: say so rather than run without it."""
    known = ", ".join([*REQUIRED, *OPTIONAL])
    return f"array(s) {', '.join(repr(k) for k in keys)} of the .npz are not read (known: {known})"


@register_dataset("custom")
class Custom(DatasetAdapter):
    """A user's own features from one ``.npz`` file (schema in the module docstring)."""

    name = "custom"
    description = "Your own features: one .npz (features, labels, attributes, splits); option path=FILE.npz."
    defaults_from = "cub"
    options: ClassVar[dict[str, Any]] = {"path": None, "defaults_from": "cub"}

    def load(self, data_dir: Path | None = None, **options: Any) -> GZSLData:
        """Read the ``.npz`` named by option ``path`` (or by ``data_dir``)."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise DataError(f"custom: unknown option(s) {', '.join(unknown)}; known: path, defaults_from")
        defaults_from = str(options.get("defaults_from") or "cub").strip().lower()
        if defaults_from not in KNOWN_DEFAULTS:
            raise DataError(
                f"custom: option defaults_from must be one of {', '.join(KNOWN_DEFAULTS)}, got {defaults_from!r}"
            )
        path = resolve_path(data_dir, options.get("path"))
        return load_npz(path, defaults_from=defaults_from)
