"""DeViSE: Frome, Corrado, Shlens, Bengio, Dean, Ranzato and Mikolov, "DeViSE: A Deep Visual-Semantic
Embedding Model", NeurIPS 2013.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from gzslbench.core.config import Constraint, Range
from gzslbench.core.registry import register_method
from gzslbench.methods._bilinear import SGD_RANGES, RankingLoss, train_bilinear
from gzslbench.methods.base import Method, RunContext, Scores
from gzslbench.protocol.splits import Split


def hinge_rank_loss(margin: float) -> RankingLoss:
    """DeViSE's loss: sum over the wrong classes c of max(0, margin - F(x, y) + F(x, c))."""

    def loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (margin + scores - scores.gather(1, y[:, None])).scatter(1, y[:, None], 0.0).clamp_min(0).sum(1)

    return loss


@register_method("devise")
class DeViSE(Method):
    """Frome et al., "DeViSE: A Deep Visual-Semantic Embedding Model", NeurIPS 2013.

    A linear map M of image features into the attribute space, scored by dot product t_c^T M x.
    Objective: the mean over training samples of the hinge rank loss, sum over the wrong seen
    classes c of max(0, margin - t_y^T M x + t_c^T M x) (:func:`hinge_rank_loss`); no weight
    penalty. SGD, initialisation and the per-epoch scores are ``_bilinear.train_bilinear``'s.
    Hyper-parameters: ``lr`` (1.0), ``margin`` (1.0), ``epochs`` (20), ``batch_size`` (32).

    The class vectors t_c are the L2-normalised attributes (DeViSE's unit-norm label embeddings;
    for a given image the dot product ranks classes as the paper's cosine similarity does). SGD
    on the hinge rank loss over the seen classes; test scores over all classes after every epoch.

    Defaults: Xian et al. 2018 tune DeViSE's learning rate, margin and epochs on the validation
    split without publishing the values. ``lr=1.0`` and ``margin=1.0`` won on the validation split
    of ``synth-cub`` (``scale=0.25``; H 17.6, against 16.6 with the paper's margin 0.1 at lr 0.1);
    ``--set margin=0.1`` restores the paper's margin, which was set for its own embedding scale.
    Mini-batch SGD as in ALE (``batch_size=1`` is the per-sample setting). Reported GZSL U/S/H
    (Xian et al. 2018): CUB 23.8/53.0/32.8, SUN 16.9/27.4/20.9, AWA1 13.4/68.7/22.4,
    AWA2 17.1/74.7/27.8.
    """

    description = "DeViSE: linear visual-to-attribute map, SGD on a hinge rank loss (Frome et al., NeurIPS 2013)"
    reference = (
        "Frome et al., NeurIPS 2013. https://papers.nips.cc/paper/5204-devise-a-deep-visual-semantic-embedding-model"
    )
    defaults: dict[str, Any] = {"lr": 1.0, "epochs": 20, "batch_size": 32, "margin": 1.0}
    ranges: dict[str, Constraint] = {**SGD_RANGES, "margin": Range(gt=0)}
    search_space: dict[str, list[Any]] = {"lr": [1e-2, 1e-1, 1.0, 10.0], "margin": [0.01, 0.1, 1.0, 10.0]}

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        yield from train_bilinear(split, config, ctx, hinge_rank_loss(config["margin"]), stage="devise")
