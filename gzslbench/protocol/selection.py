"""Scores to reported numbers: U / S / H of a candidate, and the model-selection modes.

:func:`select` turns a per-epoch metric history into the reported numbers of each mode: ``last``
(fixed epoch count), ``oracle`` (best H on the test set, i.e. selection on test data, always
labelled so) and ``val`` (epoch chosen on the validation split, then read on the test split).
:data:`SELECTION_MODES` defines them; :func:`best_epoch` is the one rule for "best".
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from gzslbench.protocol.calibration import ausuc, calibrated_h, choose_gamma, seen_unseen_curve
from gzslbench.protocol.metrics import gzsl_metrics
from gzslbench.protocol.scores import Scores
from gzslbench.protocol.splits import Split

PROTOCOL = {"name": "gzsl-proposed-split", "version": 2, "accuracy": "mean per-class top-1, percent"}
# The model-selection modes, defined once: name -> what the reported number is.
SELECTION_MODES: dict[str, str] = {
    "last": "fixed epoch count, last epoch",
    "val": "epoch selected on the validation split (carved from trainval), read on the test split",
    "oracle": "ORACLE: epoch selected on the TEST set (optimistic; the reference ACMR script's max over epochs)",
}


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


def best_epoch(rows: list[dict], first_epoch: int = 1) -> dict:
    """The row of best H among epochs >= ``first_epoch``; the first of equal values."""
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
    out = {"last": dict(test_rows[-1]), "oracle": dict(best_epoch(test_rows, oracle_from_epoch))}
    val_rows = list(val_rows or [])
    if val_rows:
        best_val = best_epoch(val_rows, 1)
        by_epoch = {r["epoch"]: r for r in test_rows}
        if best_val["epoch"] not in by_epoch:
            raise ValueError(f"validation chose epoch {best_val['epoch']}, which the test run did not evaluate")
        out["val"] = {**by_epoch[best_val["epoch"]], "val_H": best_val["H"]}
    return out
