"""What a method hands the protocol: the class scores of one candidate model on the test instances."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Scores:
    """Class scores (higher = more likely) of one candidate model on the test instances.

    ``seen`` is (n_test_seen, K) and ``unseen`` is (n_test_unseen, K) over the split's K classes.
    ``epoch`` is the 1-based index of the candidate (e.g. the final-classifier epoch).
    """

    epoch: int
    seen: torch.Tensor
    unseen: torch.Tensor


def scores_problem(scores: object, n_test_seen: int, n_test_unseen: int, n_classes: int) -> str | None:
    """Why ``scores`` cannot be evaluated on a split of these sizes, or None: a method's own mistake, named."""
    if not isinstance(scores, Scores):
        return f"yielded a {type(scores).__name__}, not Scores"
    for part, rows in (("seen", n_test_seen), ("unseen", n_test_unseen)):
        values = getattr(scores, part)
        if not isinstance(values, torch.Tensor) or not values.is_floating_point():
            kind = f"a {values.dtype} tensor" if isinstance(values, torch.Tensor) else f"a {type(values).__name__}"
            return f"{part} scores of epoch {scores.epoch} are {kind}, not a floating-point torch tensor"
        if tuple(values.shape) != (rows, n_classes):
            return (
                f"{part} scores of epoch {scores.epoch} have shape {tuple(values.shape)}, expected ({rows}, "
                f"{n_classes}): a row per test_{part} instance, a column per class"
            )
    return None
