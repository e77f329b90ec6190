"""SGD training of a bilinear compatibility ``F(x, c) = x^T W a_c``, shared by ALE and DeViSE.

The methods differ only in their ranking loss over the seen classes; this module owns the rest:
seeded initialisation and shuffling, mini-batch SGD, a history row per epoch, and test scores
over all classes after every epoch (the candidates for the ``last`` / ``val`` / ``oracle`` modes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch

from gzslbench.core.config import Constraint, Range
from gzslbench.methods.base import RunContext, Scores
from gzslbench.protocol.splits import Split

# (scores over the seen classes (B, z), true column (B,)) -> per-sample loss (B,)
RankingLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

STREAM_INIT, STREAM_SHUFFLE = 0, 1


def unit_rows(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """Class attribute vectors L2-normalised per class (xlsa17's are already; synthetic or custom may not be)."""
    t = torch.as_tensor(a, dtype=torch.float32, device=device)
    return torch.nn.functional.normalize(t, dim=1)


# Valid values of the keys every SGD-trained bilinear baseline shares.
# Upper bounds only catch typos (epochs=1e12 would train until killed): far above the reference 20 epochs
# and batches of 32, and a batch above any dataset's size.
SGD_RANGES: dict[str, Constraint] = {
    "lr": Range(gt=0),
    "epochs": Range(ge=1, le=100_000),
    "batch_size": Range(ge=1, le=100_000),
}


def train_bilinear(
    split: Split, config: Mapping[str, Any], ctx: RunContext, loss_fn: RankingLoss, stage: str
) -> Iterator[Scores]:
    """Plain SGD on the mean ``loss_fn`` of each mini-batch; yields test scores after every epoch.

    ``batch_size=1`` is per-sample SGD, the setting of the original papers. W starts from
    N(0, 1/d) with the run's seed; the class attributes are L2-normalised per class.
    """
    dev = ctx.device
    x = torch.as_tensor(split.train_x, dtype=torch.float32, device=dev)
    att = unit_rows(split.attributes, dev)
    seen = torch.as_tensor(split.seen, device=dev)
    column = torch.full((split.n_classes,), -1, dtype=torch.long, device=dev)
    column[seen] = torch.arange(len(seen), device=dev)
    y = column[torch.as_tensor(split.train_y, device=dev)]
    att_seen = att[seen]
    test_seen = torch.as_tensor(split.test_seen_x, dtype=torch.float32, device=dev)
    test_unseen = torch.as_tensor(split.test_unseen_x, dtype=torch.float32, device=dev)

    d, n, batch = x.shape[1], x.shape[0], int(config["batch_size"])
    w = torch.empty(d, att.shape[1], device=dev)
    w.normal_(0.0, 1.0 / math.sqrt(d), generator=ctx.generator(STREAM_INIT))
    w.requires_grad_(True)
    optimiser = torch.optim.SGD([w], lr=config["lr"])
    shuffle = ctx.generator(STREAM_SHUFFLE)
    for epoch in range(1, int(config["epochs"]) + 1):
        with ctx.timer("train_s"):
            total = torch.zeros((), device=dev)
            order = torch.randperm(n, generator=shuffle, device=dev)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                per_sample = loss_fn(x[idx] @ w @ att_seen.T, y[idx])
                optimiser.zero_grad(set_to_none=True)
                per_sample.mean().backward()
                optimiser.step()
                total += per_sample.detach().sum()
        ctx.log(stage, epoch, loss=float(total) / n)
        with ctx.timer("predict_s"), torch.no_grad():
            compat = w @ att.T
            yield Scores(epoch=epoch, seen=test_seen @ compat, unseen=test_unseen @ compat)
