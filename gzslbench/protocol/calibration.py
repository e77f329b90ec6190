"""Calibrated stacking and the seen-unseen accuracy curve (Chao et al., ECCV 2016).

Chao, Changpinyo, Gong and Sha, "An Empirical Study and Analysis of Generalized Zero-Shot
Learning for Object Recognition in the Wild", ECCV 2016. GZSL scores are biased towards the seen
classes; calibrated stacking predicts ``argmax_c score_c - gamma * [c is seen]``. Sweeping
``gamma`` from "everything is seen" to "everything is unseen" traces the seen-unseen curve
(acc_unseen, acc_seen); its area (AUSUC) summarises the trade-off without fixing one gamma.

Usage::

    curve = seen_unseen_curve(seen_scores, seen_y, unseen_scores, unseen_y, seen_classes, unseen_classes)
    area = ausuc(curve)                                   # fraction, 1.0 for a perfect classifier
    gamma = choose_gamma(val_curve)                       # best H on a validation split
    calibrated_h(seen_scores, seen_y, unseen_scores, unseen_y, seen_classes, unseen_classes, gamma)

Scores are (n, K) over all K classes (torch tensors or numpy arrays); labels are class indices
``0..K-1``. Accuracies are per-class mean top-1 over all K classes, as U and S in
:mod:`gzslbench.protocol.metrics`: fractions on the curve, percent in :func:`calibrated_h`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.integrate import trapezoid

from gzslbench.protocol.metrics import gzsl_metrics, harmonic_mean


class SeenUnseenCurve(NamedTuple):
    """One point per constant piece of the calibrated-stacking sweep, in increasing ``gamma``.

    ``acc_seen`` and ``acc_unseen`` are fractions; the first point sends every test sample to
    its best seen class (acc_unseen = 0), the last to its best unseen class (acc_seen = 0).
    ``breakpoints`` are the sorted distinct gammas at which some sample's decision flips.
    """

    gamma: np.ndarray
    acc_seen: np.ndarray
    acc_unseen: np.ndarray
    breakpoints: np.ndarray


def _numpy(a: Any, dtype: type = np.float64) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _torch(a: Any, dtype: torch.dtype) -> torch.Tensor:
    return a.detach().cpu().to(dtype) if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a), dtype=dtype)


def _flip_points(scores: np.ndarray, y: np.ndarray, seen: np.ndarray, unseen: np.ndarray):
    """Per sample: the gamma above which it goes unseen, and its weight in the mean per-class
    accuracy when right before (best seen class) and after (best unseen class) that flip."""
    s_cols, u_cols = scores[:, seen], scores[:, unseen]
    flip = s_cols.max(1) - u_cols.max(1)
    counts = np.bincount(y)
    weight = 1.0 / (counts[y] * np.count_nonzero(counts)) if len(y) else np.zeros(0)
    return flip, weight * (seen[s_cols.argmax(1)] == y), weight * (unseen[u_cols.argmax(1)] == y)


def seen_unseen_curve(
    seen_scores: Any,
    seen_y: Any,
    unseen_scores: Any,
    unseen_y: Any,
    seen_classes: Any,
    unseen_classes: Any,
) -> SeenUnseenCurve:
    """The exact seen-unseen curve of calibrated stacking.

    With ``gamma`` subtracted from the seen-class scores, a sample goes to its best seen class
    while ``gamma < max_seen - max_unseen`` and to its best unseen class above; so the curve is
    piecewise constant with a corner at every sample's flip value, and every piece is reported.
    A piece's ``gamma`` is its midpoint, strictly inside it (the two open end pieces get a gamma
    one span beyond the extreme breakpoint), so applying that gamma reproduces the point whatever
    the tie rule of an argmax.
    """
    seen, unseen = _numpy(seen_classes, np.int64), _numpy(unseen_classes, np.int64)
    seen_flip, seen_right, _ = _flip_points(_numpy(seen_scores), _numpy(seen_y, np.int64), seen, unseen)
    unseen_flip, _, unseen_right = _flip_points(_numpy(unseen_scores), _numpy(unseen_y, np.int64), seen, unseen)
    # A seen test sample can only be right before it flips, an unseen one only after.
    breakpoints, piece = np.unique(np.concatenate([seen_flip, unseen_flip]), return_inverse=True)
    m = len(breakpoints)
    lose = np.bincount(piece[: len(seen_flip)], seen_right, minlength=m)
    gain = np.bincount(piece[len(seen_flip) :], unseen_right, minlength=m)
    acc_seen = np.concatenate([np.cumsum(lose[::-1])[::-1], [0.0]])
    acc_unseen = np.concatenate([[0.0], np.cumsum(gain)])
    if m:
        lo, hi = float(breakpoints[0]), float(breakpoints[-1])
        span = max(hi - lo, abs(lo), abs(hi), 1.0)
        gamma = np.concatenate([[lo - span], (breakpoints[:-1] + breakpoints[1:]) / 2, [hi + span]])
    else:
        gamma = np.zeros(1)
    return SeenUnseenCurve(gamma=gamma, acc_seen=acc_seen, acc_unseen=acc_unseen, breakpoints=breakpoints)


def ausuc(curve: SeenUnseenCurve) -> float:
    """Area under the seen-unseen curve (acc_unseen on x, acc_seen on y), as a fraction.

    The trapezoid rule over every piece of the exact sweep: where one sample flips at a time the
    curve is a staircase and this is its exact area; where several flip at one gamma the two
    neighbouring points are joined by a straight line, as in Chao et al.'s plots.
    """
    return float(trapezoid(curve.acc_seen, curve.acc_unseen))


def calibrated_h(
    seen_scores: Any,
    seen_y: Any,
    unseen_scores: Any,
    unseen_y: Any,
    seen_classes: Any,
    unseen_classes: Any,
    gamma: float,
) -> dict[str, float]:
    """U, S, H in percent after subtracting ``gamma`` from the seen-class scores (gamma = 0: plain U/S/H)."""
    seen = _torch(seen_classes, torch.long)
    calibrated = []
    for scores in (seen_scores, unseen_scores):
        s = _torch(scores, torch.float64).clone()
        s[:, seen] -= gamma
        calibrated.append(s)
    metrics = gzsl_metrics(
        calibrated[0],
        _torch(seen_y, torch.long),
        calibrated[1],
        _torch(unseen_y, torch.long),
        _torch(unseen_classes, torch.long),
    )
    return {"U": metrics["U"], "S": metrics["S"], "H": metrics["H"], "gamma": float(gamma)}


def curve_h(curve: SeenUnseenCurve) -> np.ndarray:
    """The harmonic mean of every point of ``curve`` (fractions)."""
    return np.array([harmonic_mean(u, s) for u, s in zip(curve.acc_unseen, curve.acc_seen, strict=True)])


def choose_gamma(curve: SeenUnseenCurve) -> float:
    """The gamma of the curve's best-H point (the smallest such gamma on ties).

    Pass the curve of a validation split: the chosen gamma is then applied to the test scores
    with :func:`calibrated_h`; choosing it on the test curve would select on test data.
    """
    return float(curve.gamma[int(np.argmax(curve_h(curve)))])
