"""The six datasets of the xlsa17 GZSL benchmark release (Xian et al. 2018): CUB, SUN, AWA1, AWA2, APY, FLO.

Usage::

    from gzslbench.core.registry import DATASETS

    data = DATASETS.get("cub")().load()           # $GZSLBENCH_DATA, else default_data_dir()
    data = DATASETS.get("cub")().load(Path("~/xlsa17"))

Each dataset folder holds ``res101.mat`` (``features``: 2048 x N ResNet-101 features, ``labels``:
N x 1, 1-based) and ``att_splits.mat`` (``att``: attr_dim x C; 1-based ``trainval_loc``,
``test_seen_loc``, ``test_unseen_loc`` and, in most copies, ``train_loc`` / ``val_loc``;
``allclasses_names`` except in FLO). The data root may hold the folders directly
(``<root>/CUB``), keep the release layout (``<root>/xlsa17/data/CUB``), or be the dataset
folder itself. The root is the ``data_dir`` argument, else ``$GZSLBENCH_DATA``, else
:func:`default_data_dir`.

The first load converts the files to a validated, memory-mapped copy under the cache (see
:mod:`gzslbench.datasets._cache`); later loads open it in milliseconds. Cached arrays are
read-only: index them (which copies) rather than writing into them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gzslbench.core.errors import DataError
from gzslbench.core.registry import register_dataset
from gzslbench.data.dataset import GZSLData, validate
from gzslbench.data.location import DATA_ENV, data_root
from gzslbench.datasets._arrays import as_integers, as_matrix, fail
from gzslbench.datasets._cache import cache_key, load_arrays, save_arrays
from gzslbench.datasets._matfile import read_mat
from gzslbench.datasets.base import DatasetAdapter

FEATURES_FILE = "res101.mat"
SPLITS_FILE = "att_splits.mat"
REQUIRED_SPLITS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
HOW_TO_GET = (
    "download the xlsa17 release (res101.mat + att_splits.mat per dataset) from the GZSL benchmark page "
    "of Xian et al. 2018, 'Zero-Shot Learning - A Comprehensive Evaluation of the Good, the Bad and the "
    f"Ugly', unpack it there, or pass --data-dir DIR / set {DATA_ENV}=DIR"
)


def candidate_folders(root: Path, folder: str) -> list[Path]:
    """Places a dataset folder may be, in the order they are tried."""
    places = [root / folder, root / "xlsa17" / "data" / folder, root / "data" / folder]
    if root.name.upper() == folder.upper():
        places.insert(0, root)
    return places


def find_folder(root: Path, folder: str) -> Path:
    """The first candidate holding both files; DataError saying where it looked and how to get the data."""
    places = candidate_folders(root, folder)
    for place in places:
        if (place / FEATURES_FILE).is_file() and (place / SPLITS_FILE).is_file():
            return place
    for place in places:
        have = [name for name in (FEATURES_FILE, SPLITS_FILE) if (place / name).is_file()]
        if have:
            missing = FEATURES_FILE if have == [SPLITS_FILE] else SPLITS_FILE
            raise DataError(f"{place / missing}: file not found ({have[0]} is there); {HOW_TO_GET}")
    looked = ", ".join(str(p) for p in places)
    raise DataError(f"{folder} data not found: looked for {FEATURES_FILE} and {SPLITS_FILE} in {looked}; {HOW_TO_GET}")


def convert(folder: Path) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """Read and check the two files of ``folder``: 0-based int64 indices, float32 arrays, (N, D) features."""
    res_path, att_path = folder / FEATURES_FILE, folder / SPLITS_FILE
    res, splits = read_mat(res_path), read_mat(att_path)
    for path, content, keys in [(res_path, res, ("features", "labels")), (att_path, splits, ("att", *REQUIRED_SPLITS))]:
        missing = [k for k in keys if k not in content]
        if missing:
            raise DataError(f"{path}: missing variable(s) {', '.join(repr(k) for k in missing)}")

    features = as_matrix(res["features"], res_path, "features")
    labels_raw = np.asarray(res["labels"])
    n = features.shape[1]
    if labels_raw.size != n:
        raise fail(res_path, "labels", f"has {labels_raw.size} entries but 'features' has {n} columns")
    att = as_matrix(splits["att"], att_path, "att")
    n_classes = att.shape[1]
    labels = as_integers(labels_raw, res_path, "labels", 1, n_classes, f"classes = columns of {att_path.name} 'att'")

    arrays = {
        "features": np.ascontiguousarray(features.T),
        "labels": labels,
        "attributes": np.ascontiguousarray(att.T),
    }
    if ("train_loc" in splits) != ("val_loc" in splits):
        have, missing = ("train_loc", "val_loc") if "train_loc" in splits else ("val_loc", "train_loc")
        raise fail(att_path, missing, f"is missing while '{have}' is there: give both or neither")
    for key in (*REQUIRED_SPLITS, "train_loc", "val_loc"):
        if key in splits:
            arrays[key.removesuffix("_loc")] = as_integers(splits[key], att_path, key, 1, n, "instances")

    names = splits.get("allclasses_names")
    if names is not None:
        if not isinstance(names, list):
            names = [str(x) for x in np.asarray(names).ravel()]
        if len(names) != n_classes:
            raise fail(att_path, "allclasses_names", f"has {len(names)} names but 'att' has {n_classes} columns")
    return arrays, names


def to_data(
    name: str, defaults_from: str, folder: Path, arrays: dict[str, np.ndarray], names: Any, cache: str
) -> GZSLData:
    """The GZSLData of converted ``arrays``; ``extra["cache"]`` records hit / written / off / unwritable.

    The release's ``train_loc``/``val_loc`` index all images of the seen classes, test_seen
    included; they are restricted to ``trainval`` here so that validation never touches a test
    image, and ``extra["validation_restricted"]`` says how many indices each lost.
    """
    train, val, dropped = arrays.get("train"), arrays.get("val"), {}
    if train is not None and val is not None:
        trainval = arrays["trainval"]
        dropped = {
            "train_loc": int(np.setdiff1d(train, trainval).size),
            "val_loc": int(np.setdiff1d(val, trainval).size),
        }
        train, val = np.intersect1d(train, trainval), np.intersect1d(val, trainval)
    return GZSLData(
        name=name,
        features=arrays["features"],
        labels=arrays["labels"],
        attributes=arrays["attributes"],
        trainval=arrays["trainval"],
        test_seen=arrays["test_seen"],
        test_unseen=arrays["test_unseen"],
        train=train,
        val=val,
        class_names=list(names) if names is not None else None,
        defaults_from=defaults_from,
        source=str(folder),
        extra={"cache": cache, "validation_restricted": dropped},
    )


def release_width_warning(attributes: np.ndarray, name: str, release: tuple[int, int] | None) -> str | None:
    """A warning when the release's classes ``release = (classes, width)`` come with attributes of another width.

    Not an error: other class embeddings in the same layout (CUB's 1024-d sentence embeddings) are
    in use, but their numbers do not compare with results on the release's attributes.
    """
    if release is None or attributes.shape[0] != release[0] or attributes.shape[1] == release[1]:
        return None
    return (
        f"{attributes.shape[1]}-d class attributes, where the xlsa17 release of {name} has {release[1]}-d: "
        "results do not compare with those on the release's attributes"
    )


def load_folder(
    folder: Path, name: str, defaults_from: str, use_cache: bool = True, release: tuple[int, int] | None = None
) -> GZSLData:
    """Load one xlsa17 dataset folder, through the converted-copy cache unless ``use_cache`` is False.

    ``release`` is the xlsa17 release's (classes, attribute width) for this dataset (see :func:`release_width_warning`).
    """
    res_path, att_path = folder / FEATURES_FILE, folder / SPLITS_FILE
    if use_cache:
        key = cache_key(res_path, att_path)
        hit = load_arrays(key)
        if hit is not None:  # written only after full validation, and unchanged since (its digests match)
            arrays, meta = hit
            data = to_data(name, defaults_from, folder, arrays, meta.get("class_names"), "hit")
            data.extra["validated"] = True  # when it was converted
            return with_warnings(data, meta.get("warnings"))
    arrays, names = convert(folder)
    data = validate(to_data(name, defaults_from, folder, arrays, names, "off"), str(att_path))
    width_warning = release_width_warning(data.attributes, name, release)
    warnings = [*data.extra.get("warnings", []), *([width_warning] if width_warning else [])] or None
    data = with_warnings(data, warnings)
    if not use_cache:
        return data
    sources = [str(res_path), str(att_path)]
    save_arrays(key, arrays, {"class_names": names, "sources": sources, "warnings": warnings})
    reopened = load_arrays(key)  # serve the memory-mapped copy, so the in-memory one can be freed
    if reopened is None:
        return with_warnings(to_data(name, defaults_from, folder, arrays, names, "unwritable"), warnings)
    return with_warnings(to_data(name, defaults_from, folder, reopened[0], names, "written"), warnings)


def with_warnings(data: GZSLData, warnings: list[str] | None) -> GZSLData:
    """``data`` carrying the warnings its validation gave (a cache hit is not validated again)."""
    if warnings:
        data.extra["warnings"] = list(warnings)
    return data


def parse_cache_option(name: str, options: dict[str, Any]) -> bool:
    """The ``cache`` option as a bool (CLI strings accepted); DataError on unknown options."""
    unknown = sorted(set(options) - {"cache"})
    if unknown:
        raise DataError(f"{name}: unknown option(s) {', '.join(unknown)}; known: cache")
    value = options.get("cache", True)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
            raise DataError(f"{name}: option cache must be true or false, got {value!r}")
        return lowered in {"1", "true", "yes", "on"}
    return bool(value)


class XLSA17Adapter(DatasetAdapter):
    """Base of the xlsa17 adapters: ``folder`` names the dataset's folder in the release."""

    folder: ClassVar[str] = ""
    release: ClassVar[tuple[int, int] | None] = None  # the release's (classes, attribute width)
    options: ClassVar[dict[str, Any]] = {"cache": True}

    def load(self, data_dir: Path | None = None, **options: Any) -> GZSLData:
        """Find the folder under the data root and load it (converted-copy cache unless cache=false)."""
        use_cache = parse_cache_option(self.name, options)
        folder = find_folder(data_root(data_dir), self.folder)
        return load_folder(folder, self.name, self.defaults_from, use_cache=use_cache, release=self.release)


@register_dataset("cub")
class CUB(XLSA17Adapter):
    name = "cub"
    folder = "CUB"
    release = (200, 312)
    defaults_from = "cub"
    description = "CUB-200-2011 birds (xlsa17): 200 classes, 150 seen / 50 unseen, 312-d attributes."


@register_dataset("sun")
class SUN(XLSA17Adapter):
    name = "sun"
    folder = "SUN"
    release = (717, 102)
    defaults_from = "sun"
    description = "SUN scene attributes (xlsa17): 717 classes, 645 seen / 72 unseen, 102-d attributes."


@register_dataset("awa1")
class AWA1(XLSA17Adapter):
    name = "awa1"
    folder = "AWA1"
    release = (50, 85)
    defaults_from = "awa1"
    description = "Animals with Attributes 1 (xlsa17): 50 classes, 40 seen / 10 unseen, 85-d attributes."


@register_dataset("awa2")
class AWA2(XLSA17Adapter):
    name = "awa2"
    folder = "AWA2"
    release = (50, 85)
    defaults_from = "awa2"
    description = "Animals with Attributes 2 (xlsa17): 50 classes, 40 seen / 10 unseen, 85-d attributes."


@register_dataset("apy")
class APY(XLSA17Adapter):
    name = "apy"
    folder = "APY"
    release = (32, 64)
    defaults_from = "apy"
    description = "aPascal & aYahoo (xlsa17): 32 classes, 20 seen / 12 unseen, 64-d attributes."


@register_dataset("flo")
class FLO(XLSA17Adapter):
    name = "flo"
    folder = "FLO"
    release = (102, 1024)
    defaults_from = "flo"
    description = "Oxford Flowers 102 (xlsa17): 102 classes, 82 seen / 20 unseen, 1024-d text embeddings."
