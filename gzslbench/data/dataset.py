"""The in-memory form of a GZSL dataset that every adapter returns, and its validation."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gzslbench.core.errors import DataError


@dataclass(frozen=True)
class GZSLData:
    """Features, labels, class attributes and the xlsa17 "proposed split", 0-based.

    Attributes:
        name: registry name of the dataset (e.g. ``cub``, ``synth-cub``).
        features: (N, D) float32 instance features (e.g. ResNet-101, D = 2048).
        labels: (N,) int64 class ids in ``[0, C)``.
        attributes: (C, A) float32 class attribute vectors.
        trainval: indices of training instances (seen classes only).
        test_seen: indices of held-out instances of seen classes.
        test_unseen: indices of instances of unseen classes.
        train: indices of the train part of trainval for validation, or None when the file lacks it.
        val: indices of the validation classes' instances, or None.
        class_names: C class names, or None.
        defaults_from: which real dataset's method defaults apply (``cub``, ``sun``, ``awa1``, ...).
        source: where the data came from (a path, or ``synthetic(...)``), for the run record.
    """

    name: str
    features: np.ndarray
    labels: np.ndarray
    attributes: np.ndarray
    trainval: np.ndarray
    test_seen: np.ndarray
    test_unseen: np.ndarray
    train: np.ndarray | None = None
    val: np.ndarray | None = None
    class_names: list[str] | None = None
    defaults_from: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return int(self.attributes.shape[0])

    @property
    def seen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.trainval])

    @property
    def unseen_classes(self) -> np.ndarray:
        return np.unique(self.labels[self.test_unseen])

    @cached_property
    def fingerprint(self) -> str:
        """A short hash of what a run actually reads: shapes, splits, labels, attributes, sampled features.

        Cheap (it reads at most 64 feature rows), computed once per loaded dataset. Two loads with
        equal fingerprints hold the same data for every practical purpose; a different file, another
        ``custom`` path, other options or an edited split change it.
        """
        digest = hashlib.sha256()
        x = self.features
        rows = np.unique(np.linspace(0, x.shape[0] - 1, num=min(64, x.shape[0])).astype(np.int64))
        parts = [np.asarray(x.shape, dtype=np.int64), np.ascontiguousarray(x[rows], dtype=np.float32)]
        parts += [np.ascontiguousarray(self.labels, dtype=np.int64), np.ascontiguousarray(self.attributes, np.float32)]
        for idx in (self.trainval, self.test_seen, self.test_unseen, self.train, self.val):
            parts.append(np.asarray([-1]) if idx is None else np.ascontiguousarray(idx, dtype=np.int64))
        for part in parts:
            digest.update(str(part.shape).encode())
            digest.update(part.tobytes())
        return digest.hexdigest()[:16]

    def summary(self) -> dict:
        """Counts that identify the dataset's shape in a run record."""
        return {
            "name": self.name,
            "source": self.source,
            "n_instances": int(self.features.shape[0]),
            "feature_dim": int(self.features.shape[1]),
            "attribute_dim": int(self.attributes.shape[1]),
            "n_classes": self.n_classes,
            "n_seen": len(self.seen_classes),
            "n_unseen": len(self.unseen_classes),
            "n_trainval": len(self.trainval),
            "n_test_seen": len(self.test_seen),
            "n_test_unseen": len(self.test_unseen),
        }


def validate(data: GZSLData, where: str) -> GZSLData:
    """Check shapes, index ranges, split disjointness and finiteness; raise DataError naming ``where``.

    What is valid but suspect (a class whose attributes are all zero) goes to ``data.extra["warnings"]``,
    which every run on the data records and prints.
    """

    def fail(problem: str) -> None:
        raise DataError(f"{where}: {problem}")

    for name in ("features", "labels", "attributes", "trainval", "test_seen", "test_unseen", "train", "val"):
        value = getattr(data, name)
        if not isinstance(value, np.ndarray) and not (value is None and name in ("train", "val")):
            fail(f"'{name}' must be a numpy array, got {type(value).__name__}")
    x, y, att = data.features, data.labels, data.attributes
    for name, values in (("features", x), ("class attributes", att)):
        if not np.issubdtype(values.dtype, np.floating):
            fail(f"{name} must be floating point, got {values.dtype}")
    if x.ndim != 2:
        fail(f"features must be 2-D (instances x dims), got shape {x.shape}")
    if x.shape[1] < 2:
        fail(f"features have {x.shape[1]} dimension(s) per instance (shape {x.shape}); is the matrix transposed?")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        fail(f"labels must be a vector of {x.shape[0]} entries (one per instance), got shape {y.shape}")
    if att.ndim != 2:
        fail(f"class attributes must be 2-D (classes x dims), got shape {att.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        fail(f"labels must be integers, got {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= att.shape[0]):
        fail(f"labels must lie in [0, {att.shape[0]}) (one per attribute row), got [{y.min()}, {y.max()}]")
    if not np.isfinite(x).all():
        fail(f"features contain {int((~np.isfinite(x)).sum())} NaN or infinite values")
    if not np.isfinite(att).all():
        fail("class attributes contain NaN or infinite values")
    n = x.shape[0]
    splits = {"trainval": data.trainval, "test_seen": data.test_seen, "test_unseen": data.test_unseen}
    if data.train is not None:
        splits["train"] = data.train
    if data.val is not None:
        splits["val"] = data.val
    for split_name, idx in splits.items():
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            fail(f"split '{split_name}' must be a vector of integer indices")
        if idx.size == 0:
            fail(f"split '{split_name}' is empty")
        if idx.min() < 0 or idx.max() >= n:
            fail(f"split '{split_name}' has indices outside [0, {n}): [{idx.min()}, {idx.max()}]")
        if np.unique(idx).size != idx.size:
            fail(f"split '{split_name}' repeats instance indices")
    for a, b in [("trainval", "test_seen"), ("trainval", "test_unseen"), ("test_seen", "test_unseen")]:
        if np.intersect1d(splits[a], splits[b]).size:
            fail(f"splits '{a}' and '{b}' share instances")
    seen, unseen = np.unique(y[data.trainval]), np.unique(y[data.test_unseen])
    if np.intersect1d(seen, unseen).size:
        fail(f"{np.intersect1d(seen, unseen).size} unseen classes appear in trainval")
    if np.setdiff1d(np.unique(y[data.test_seen]), seen).size:
        fail("test_seen holds classes that are absent from trainval")
    if data.train is not None and data.val is not None:
        if np.intersect1d(data.train, data.val).size:
            fail("splits 'train' and 'val' share instances")
        if np.intersect1d(np.unique(y[data.train]), np.unique(y[data.val])).size:
            fail("validation classes appear in train")
        for split_name in ("train", "val"):
            outside = np.setdiff1d(splits[split_name], data.trainval).size
            if outside:
                fail(
                    f"split '{split_name}' has {outside} instances outside trainval (validation must not touch "
                    "test instances; restrict it to trainval)"
                )
    unused = np.setdiff1d(np.arange(att.shape[0]), np.unique(y[np.concatenate(list(splits.values()))]))
    if unused.size:
        shown = ", ".join(str(int(c)) for c in unused[:5]) + (", ..." if unused.size > 5 else "")
        fail(f"{unused.size} class(es) have attributes but no instance in any split (rows {shown}; 0-based)")
    if data.class_names is not None and len(data.class_names) != att.shape[0]:
        fail(f"{len(data.class_names)} class names for {att.shape[0]} attribute rows")
    checks = [zero_attributes_warning(att, data.class_names), identical_attributes_warning(att, data.class_names)]
    checks.append(duplicate_names_warning(data.class_names))
    warnings = [w for w in checks if w]
    if warnings:
        data.extra["warnings"] = [*data.extra.get("warnings", []), *warnings]
    data.extra["validated"] = True
    return data


def zero_attributes_warning(attributes: np.ndarray, class_names: list[str] | None = None) -> str | None:
    """A warning naming the classes whose attribute vector is all zeros (nothing tells them apart), or None."""
    zero = np.flatnonzero(~np.any(attributes != 0, axis=1))
    if not zero.size:
        return None
    if zero.size == 1:
        return (
            f"class {_named(zero, class_names)} has an all-zero attribute vector: no attribute tells it apart from "
            "the other classes"
        )
    return (
        f"classes {_named(zero, class_names)} have an all-zero attribute vector: no attribute tells them apart from "
        "the other classes"
    )


def _named(ids: np.ndarray, class_names: list[str] | None) -> str:
    """Up to five classes by name and id (by id without names), and how many more."""
    named = [f"'{class_names[c]}' (id {c})" if class_names else str(c) for c in ids[:5]]
    return ", ".join(named) + (f" and {ids.size - 5} more" if ids.size > 5 else "")


def identical_attributes_warning(attributes: np.ndarray, class_names: list[str] | None = None) -> str | None:
    """A warning naming classes that share one (nonzero) attribute vector: no method can tell them apart, or None."""
    nonzero = np.flatnonzero(np.any(attributes != 0, axis=1))
    _, group, counts = np.unique(attributes[nonzero], axis=0, return_inverse=True, return_counts=True)
    shared = nonzero[counts[group.ravel()] > 1]
    if not shared.size:
        return None
    return (
        f"classes {_named(shared, class_names)} share their attribute vector with another class: nothing tells them "
        "apart"
    )


def duplicate_names_warning(class_names: list[str] | None) -> str | None:
    """A warning naming class names given to more than one class (tables and figures would confuse them), or None."""
    if not class_names:
        return None
    repeated = sorted(name for name, count in Counter(class_names).items() if count > 1)
    if not repeated:
        return None
    return f"class name(s) {', '.join(repr(n) for n in repeated[:5])} name more than one class"
