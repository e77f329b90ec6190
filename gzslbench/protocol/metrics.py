"""GZSL metrics: per-class accuracy (ACA), U, S, H and U_restricted, vectorised in torch.

``U_restricted`` is the unseen accuracy of the GZSL model's scores restricted to the unseen
classes. It is NOT the ZSL accuracy that papers report: the reference codes train a separate
unseen-only classifier for that. Its name keeps it from being compared with published ZSL numbers.
"""

from __future__ import annotations

import torch


def per_class_accuracy(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Top-1 accuracy of every class present in ``target`` (absent classes are dropped)."""
    total = torch.bincount(target, minlength=n_classes)
    correct = torch.bincount(target[pred == target], minlength=n_classes)
    present = total > 0
    return correct[present].double() / total[present].double()


def mean_class_accuracy(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> float:
    """ACA: the mean over classes of per-class top-1 accuracy, in percent."""
    return 100.0 * float(per_class_accuracy(pred, target, n_classes).mean())


def harmonic_mean(u: float, s: float) -> float:
    """H = 2US / (U + S), and 0 when both are 0."""
    return 2 * u * s / (u + s) if (u + s) > 0 else 0.0


def gzsl_metrics(
    seen_scores: torch.Tensor,
    seen_target: torch.Tensor,
    unseen_scores: torch.Tensor,
    unseen_target: torch.Tensor,
    unseen_classes: torch.Tensor,
) -> dict[str, float]:
    """U, S, H (classification over all classes) and U_restricted (argmax over unseen classes only), in %."""
    n_classes = seen_scores.shape[1]
    s = mean_class_accuracy(seen_scores.argmax(1), seen_target, n_classes)
    u = mean_class_accuracy(unseen_scores.argmax(1), unseen_target, n_classes)
    restricted_pred = unseen_classes[unseen_scores[:, unseen_classes].argmax(1)]
    return {
        "U": u,
        "S": s,
        "H": harmonic_mean(u, s),
        "U_restricted": mean_class_accuracy(restricted_pred, unseen_target, n_classes),
    }
