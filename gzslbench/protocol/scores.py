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
