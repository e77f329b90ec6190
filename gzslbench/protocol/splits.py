"""The GZSL splits (Xian et al. 2018, proposed split): what a method trains on and is tested on.

:func:`make_split` prepares what a method sees: training features min-max scaled with a scaler
fit on the training features only; test sets of seen and unseen classes; all candidate classes
renumbered ``0..K-1``. ``kind="test"`` is the benchmark split (trainval -> test_seen +
test_unseen, K = all classes); ``kind="val"`` is the validation split (train classes ->
held-out train-class instances + validation classes), carved from trainval only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gzslbench.core.errors import DataError
from gzslbench.data.dataset import GZSLData

VAL_SEEN_HOLDOUT = 0.2  # share of each train class's instances held out as seen validation data
VAL_CLASS_SHARE = 1 / 3  # share of seen classes used as validation classes when the file has no val_loc
SPLIT_SEED = 0  # fixed: the validation split is part of the protocol, not of a run's seed


@dataclass(frozen=True)
class Split:
    """Scaled features and renumbered labels of one train/evaluate problem."""

    kind: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_seen_x: np.ndarray
    test_seen_y: np.ndarray
    test_unseen_x: np.ndarray
    test_unseen_y: np.ndarray
    attributes: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    class_ids: np.ndarray
    defaults_from: str

    @property
    def n_classes(self) -> int:
        return int(self.attributes.shape[0])

    @property
    def feature_dim(self) -> int:
        return int(self.train_x.shape[1])


def minmax_scale(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array to [0, 1] per dimension with the min and range of ``train`` only."""
    lo = train.min(axis=0)
    span = train.max(axis=0) - lo
    span[span == 0] = 1.0
    return [((a - lo) / span).astype(np.float32) for a in (train, *others)]


@dataclass(frozen=True)
class ValidationSplit:
    """The validation problem's instance indices, all inside ``trainval``, and how they were made."""

    train: np.ndarray
    held_out: np.ndarray
    unseen: np.ndarray
    provenance: dict[str, Any]


def validation_split(data: GZSLData) -> ValidationSplit:
    """(train, held-out seen, unseen-val) indices of the validation split, carved from ``trainval``.

    Uses the dataset's ``train``/``val`` class partition when it has one (the xlsa17 ``train_loc``
    / ``val_loc``, which adapters restrict to ``trainval``), else makes validation classes of a
    third of the seen classes. ``VAL_SEEN_HOLDOUT`` of each train class's instances become the
    seen-validation set; a class too small to give one instance keeps all of its instances and
    is named in the provenance. Deterministic: it never depends on a run's seed.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    y = data.labels
    if data.train is not None and data.val is not None:
        train = np.intersect1d(data.train, data.trainval)
        val = np.intersect1d(data.val, data.trainval)
        source = "the dataset's train/val class partition (in xlsa17 files: train_loc/val_loc), restricted to trainval"
    else:
        seen = data.seen_classes
        n_val = max(1, round(len(seen) * VAL_CLASS_SHARE))
        val_classes = rng.choice(seen, size=n_val, replace=False)
        in_val = np.isin(y[data.trainval], val_classes)
        train, val = data.trainval[~in_val], data.trainval[in_val]
        source = f"derived: {n_val} of {len(seen)} seen classes drawn as validation classes (seed {SPLIT_SEED})"
    held_out, too_small = [], []
    for c in np.unique(y[train]):
        members = train[y[train] == c]
        k = int(len(members) * VAL_SEEN_HOLDOUT)
        if k >= 1 and len(members) - k >= 1:
            held_out.append(rng.choice(members, size=k, replace=False))
        else:
            too_small.append(int(c))
    held = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    train = np.setdiff1d(train, held)
    if not held.size or not val.size or not train.size:
        raise DataError(f"{data.name}: too few trainval instances to carve a validation split")
    used = np.concatenate([train, held, val])
    if np.intersect1d(used, data.test_seen).size or np.intersect1d(used, data.test_unseen).size:
        raise DataError(f"{data.name}: the validation split would use test instances")
    provenance = {
        "source": source,
        "carved_from": "trainval",
        "seen_holdout_share": VAL_SEEN_HOLDOUT,
        "split_seed": SPLIT_SEED,
        "n_val_train": len(train),
        "n_val_seen": len(held),
        "n_val_unseen": len(val),
        "n_train_classes": len(np.unique(y[train])),
        "n_val_classes": len(np.unique(y[val])),
        "classes_without_seen_validation": too_small,
    }
    return ValidationSplit(train, held, np.sort(val), provenance)


def make_split(data: GZSLData, kind: str = "test") -> Split:
    """Prepare the benchmark (``test``) or validation (``val``) problem of ``data``."""
    if kind == "test":
        train, test_seen, test_unseen = data.trainval, data.test_seen, data.test_unseen
    elif kind == "val":
        val = validation_split(data)
        train, test_seen, test_unseen = val.train, val.held_out, val.unseen
    else:
        raise ValueError(f"unknown split kind {kind!r}")
    y = data.labels
    seen_global, unseen_global = np.unique(y[train]), np.unique(y[test_unseen])
    class_ids = np.arange(data.n_classes) if kind == "test" else np.union1d(seen_global, unseen_global)
    local = np.full(data.n_classes, -1, dtype=np.int64)
    local[class_ids] = np.arange(len(class_ids))
    train_x, seen_x, unseen_x = minmax_scale(data.features[train], data.features[test_seen], data.features[test_unseen])
    return Split(
        kind=kind,
        train_x=train_x,
        train_y=local[y[train]],
        test_seen_x=seen_x,
        test_seen_y=local[y[test_seen]],
        test_unseen_x=unseen_x,
        test_unseen_y=local[y[test_unseen]],
        attributes=data.attributes[class_ids].astype(np.float32),
        seen=local[seen_global],
        unseen=local[unseen_global],
        class_ids=class_ids,
        defaults_from=data.defaults_from,
    )
