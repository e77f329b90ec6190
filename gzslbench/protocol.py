"""The GZSL evaluation protocol (Xian et al. 2018, proposed split) shared by every method.

* :func:`make_split` prepares what a method sees: training features min-max scaled with a
  scaler fit on the training features only; test sets of seen and unseen classes; all
  candidate classes renumbered ``0..K-1``. ``kind="test"`` is the benchmark split
  (trainval -> test_seen + test_unseen, K = all classes); ``kind="val"`` is the validation
  split (train classes -> held-out train-class instances + validation classes).
* :func:`select` turns a per-epoch metric history into the reported numbers of each
  model-selection mode: ``last`` (fixed epoch count), ``oracle`` (best H on the test set,
  i.e. selection on test data, always labelled so) and ``val`` (epoch chosen on the
  validation split, then read on the test split).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from gzslbench.data import GZSLData
from gzslbench.metrics import gzsl_metrics

PROTOCOL = {"name": "gzsl-proposed-split", "version": 1, "accuracy": "mean per-class top-1, percent"}
SELECTION_MODES = ("last", "val", "oracle")
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


def validation_indices(data: GZSLData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, held-out seen, unseen-val) instance indices of the validation split.

    Uses the file's train_loc / val_loc when present; otherwise picks a third of the seen
    classes as validation classes. Deterministic: it never depends on a run's seed.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    y = data.labels
    if data.train is not None and data.val is not None:
        train, val = data.train, data.val
    else:
        seen = data.seen_classes
        n_val = max(1, round(len(seen) * VAL_CLASS_SHARE))
        val_classes = rng.choice(seen, size=n_val, replace=False)
        in_val = np.isin(y[data.trainval], val_classes)
        train, val = data.trainval[~in_val], data.trainval[in_val]
    held_out = []
    for c in np.unique(y[train]):
        members = train[y[train] == c]
        k = int(len(members) * VAL_SEEN_HOLDOUT)
        if len(members) - k >= 1 and k >= 1:
            held_out.append(rng.choice(members, size=k, replace=False))
    held = np.sort(np.concatenate(held_out)) if held_out else np.array([], dtype=np.int64)
    return np.setdiff1d(train, held), held, np.sort(val)


def make_split(data: GZSLData, kind: str = "test") -> Split:
    """Prepare the benchmark (``test``) or validation (``val``) problem of ``data``."""
    if kind == "test":
        train, test_seen, test_unseen = data.trainval, data.test_seen, data.test_unseen
    elif kind == "val":
        train, test_seen, test_unseen = validation_indices(data)
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
    """U / S / H / ZSL of one candidate's scores on ``split``'s test sets."""
    device = seen_scores.device
    return gzsl_metrics(
        seen_scores,
        torch.as_tensor(split.test_seen_y, device=device),
        unseen_scores,
        torch.as_tensor(split.test_unseen_y, device=device),
        torch.as_tensor(split.unseen, device=device),
    )


def _best(rows: list[dict], first_epoch: int) -> dict:
    eligible = [r for r in rows if r["epoch"] >= first_epoch] or rows
    return max(eligible, key=lambda r: r["H"])  # max() keeps the first of equal values


def select(
    test_rows: list[dict],
    val_rows: Iterable[dict] | None = None,
    oracle_from_epoch: int = 1,
) -> dict[str, dict]:
    """Reported metrics per selection mode from per-epoch rows ``{"epoch", "U", "S", "H", "ZSL"}``.

    ``oracle`` picks the best test H among epochs >= ``oracle_from_epoch``: it selects on the
    test set. ``val`` picks the epoch of best validation H and reports the test metrics there.
    """
    if not test_rows:
        raise ValueError("no evaluated epochs to select from")
    out = {"last": dict(test_rows[-1]), "oracle": dict(_best(test_rows, oracle_from_epoch))}
    val_rows = list(val_rows or [])
    if val_rows:
        epoch = _best(val_rows, 1)["epoch"]
        by_epoch = {r["epoch"]: r for r in test_rows}
        chosen = by_epoch.get(epoch, test_rows[-1])
        out["val"] = {**chosen, "val_H": _best(val_rows, 1)["H"]}
    return out
