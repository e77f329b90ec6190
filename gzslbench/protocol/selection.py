"""The GZSL evaluation protocol (Xian et al. 2018, proposed split) shared by every method.

* :func:`make_split` prepares what a method sees: training features min-max scaled with a
  scaler fit on the training features only; test sets of seen and unseen classes; all
  candidate classes renumbered ``0..K-1``. ``kind="test"`` is the benchmark split
  (trainval -> test_seen + test_unseen, K = all classes); ``kind="val"`` is the validation
  split (train classes -> held-out train-class instances + validation classes).
* :func:`select` turns a per-epoch metric history into the reported numbers of each
  model-selection mode: ``last`` (fixed epoch count), ``oracle`` (best H on the test set,
  i.e. selection on test data, always labelled so) and ``val`` (epoch chosen on the
  validation split, then read on the test split). :data:`SELECTION_MODES` defines them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gzslbench.core.errors import DataError
from gzslbench.data.dataset import GZSLData
from gzslbench.protocol.calibration import ausuc, calibrated_h, choose_gamma, seen_unseen_curve
from gzslbench.protocol.metrics import gzsl_metrics

if TYPE_CHECKING:
    from gzslbench.methods.base import Scores

PROTOCOL = {"name": "gzsl-proposed-split", "version": 2, "accuracy": "mean per-class top-1, percent"}
# The model-selection modes, defined once: name -> what the reported number is.
SELECTION_MODES: dict[str, str] = {
    "last": "fixed epoch count, last epoch",
    "val": "epoch selected on the validation split (carved from trainval), read on the test split",
    "oracle": "ORACLE: epoch selected on the TEST set (optimistic; the reference ACMR script's max over epochs)",
}
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
        source = "dataset train/val classes (xlsa17 train_loc/val_loc), restricted to trainval"
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


def evaluate(split: Split, seen_scores: torch.Tensor, unseen_scores: torch.Tensor) -> dict[str, float]:
    """U / S / H (and U_restricted) of one candidate's scores on ``split``'s test sets."""
    device = seen_scores.device
    return gzsl_metrics(
        seen_scores,
        torch.as_tensor(split.test_seen_y, device=device),
        unseen_scores,
        torch.as_tensor(split.test_unseen_y, device=device),
        torch.as_tensor(split.unseen, device=device),
    )


def calibrated_metrics(test: tuple[Split, Scores], val: tuple[Split, Scores] | None = None) -> dict[str, float]:
    """AUSUC of the test scores and, given validation scores, the calibrated-stacking U/S/H (Chao et al. 2016).

    The calibration gamma is chosen on the validation split's curve only (best validation H), then
    applied to the test scores; without a validation run there is no H_cs. In percent, like U/S/H.
    """
    split, scores = test
    curve = seen_unseen_curve(
        scores.seen, split.test_seen_y, scores.unseen, split.test_unseen_y, split.seen, split.unseen
    )
    out = {"AUSUC": 100.0 * ausuc(curve)}
    if val is not None:
        vsplit, vscores = val
        gamma = choose_gamma(
            seen_unseen_curve(
                vscores.seen, vsplit.test_seen_y, vscores.unseen, vsplit.test_unseen_y, vsplit.seen, vsplit.unseen
            )
        )
        cs = calibrated_h(
            scores.seen, split.test_seen_y, scores.unseen, split.test_unseen_y, split.seen, split.unseen, gamma
        )
        out.update(U_cs=cs["U"], S_cs=cs["S"], H_cs=cs["H"], gamma_cs=gamma)
    return out


def _best(rows: list[dict], first_epoch: int) -> dict:
    eligible = [r for r in rows if r["epoch"] >= first_epoch]
    if not eligible:
        raise ValueError(f"no evaluated epoch >= {first_epoch} to select from (last epoch: {rows[-1]['epoch']})")
    return max(eligible, key=lambda r: r["H"])  # max() keeps the first of equal values


def select(
    test_rows: list[dict],
    val_rows: Iterable[dict] | None = None,
    oracle_from_epoch: int = 1,
) -> dict[str, dict]:
    """Reported metrics per selection mode from per-epoch rows ``{"epoch", "U", "S", "H", ...}``.

    ``oracle`` picks the best test H among epochs >= ``oracle_from_epoch``: it selects on the
    test set. ``val`` picks the epoch of best validation H and reports the test metrics there.
    """
    if not test_rows:
        raise ValueError("no evaluated epochs to select from")
    out = {"last": dict(test_rows[-1]), "oracle": dict(_best(test_rows, oracle_from_epoch))}
    val_rows = list(val_rows or [])
    if val_rows:
        best_val = _best(val_rows, 1)
        by_epoch = {r["epoch"]: r for r in test_rows}
        if best_val["epoch"] not in by_epoch:
            raise ValueError(f"validation chose epoch {best_val['epoch']}, which the test run did not evaluate")
        out["val"] = {**by_epoch[best_val["epoch"]], "val_H": best_val["H"]}
    return out
