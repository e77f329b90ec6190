"""ALE: Akata, Perronnin, Harchaoui and Schmid, "Label-Embedding for Image Classification", TPAMI 2016.

With ``loss="sje"`` the same model is trained with the structured hinge loss of SJE: Akata, Reed,
Walter, Lee and Schiele, "Evaluation of Output Embeddings for Fine-Grained Image Classification",
CVPR 2015.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch

from gzslbench.core.config import Constraint, OneOf
from gzslbench.core.registry import register_method
from gzslbench.methods._bilinear import SGD_RANGES, RankingLoss, train_bilinear
from gzslbench.methods.base import Method, RunContext, Scores
from gzslbench.protocol.splits import Split

LOSSES = ("warp", "sje")


def weighted_ranking_loss(n_seen: int, device: torch.device) -> RankingLoss:
    """ALE's weighted approximate ranking loss with the 0/1 label loss (TPAMI 2016, Eq. 7).

    For a sample of class y with r violating classes (1 + F(x, c) - F(x, y) > 0), the summed
    hinge over the violators is weighted by beta_r / r, beta_r = 1 + 1/2 + ... + 1/r, which puts
    more weight on the top of the ranking. r is counted exactly over the seen classes.
    """
    beta = torch.cat([torch.zeros(1), torch.cumsum(1.0 / torch.arange(1, n_seen + 1), 0)]).to(device)

    def loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        margins = (1.0 + scores - scores.gather(1, y[:, None])).scatter(1, y[:, None], 0.0)
        violators = (margins > 0).sum(1)
        return beta[violators] / violators.clamp_min(1) * margins.clamp_min(0).sum(1)

    return loss


def structured_hinge_loss(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """SJE's loss: max over classes c of (1[c != y] + F(x, c) - F(x, y)), at least 0."""
    return (1.0 + scores - scores.gather(1, y[:, None])).scatter(1, y[:, None], 0.0).amax(1)


@register_method("ale")
class ALE(Method):
    """Akata, Perronnin, Harchaoui and Schmid, "Label-Embedding for Image Classification", TPAMI 2016.

    Bilinear compatibility F(x, c) = x^T W a_c trained by SGD with a ranking loss over the seen
    classes. Objective: the mean over training samples of ``loss``: ``warp`` (default), ALE's
    rank-weighted hinge, sum over violating classes c of beta_r / r * max(0, 1 + F(x, c) - F(x, y))
    (:func:`weighted_ranking_loss`), or ``sje``, the structured hinge max_c (1[c != y] + F(x, c) -
    F(x, y)) of Akata et al., CVPR 2015 (:func:`structured_hinge_loss`); no weight penalty. SGD,
    initialisation and the per-epoch scores are ``_bilinear.train_bilinear``'s. Hyper-parameters:
    ``lr`` (1.0), ``epochs`` (20), ``batch_size`` (32), ``loss``.

    Scores every class (GZSL) by x^T W a_c with L2-normalised attributes and yields the test
    scores after every epoch, so ``last``, ``val`` and ``oracle`` pick among ``epochs`` candidates.

    Defaults: Xian et al. 2018 tune the learning rate and the number of epochs of ALE on the
    validation split and do not publish the chosen values; ``lr`` and ``epochs`` here were chosen
    on the validation split of ``synth-cub`` (``scale=0.25``; H 18.5 at the last epoch,
    against 14.0 at lr 0.1 and 4.9 at lr 0.01). The papers use per-sample SGD
    (``batch_size=1``); the default mini-batch of 32 trains 10-30x faster on the same loss per
    sample, and ``lr`` is tuned for it. Reported GZSL U/S/H (Xian et al. 2018): CUB
    23.7/62.8/34.4, SUN 21.8/33.1/26.3, AWA1 16.8/76.1/27.5, AWA2 14.0/81.8/23.9.
    """

    description = "ALE: bilinear attribute compatibility, SGD on a weighted ranking loss (Akata et al., TPAMI 2016)"
    reference = "Akata et al., TPAMI 2016. https://doi.org/10.1109/TPAMI.2015.2487986"
    defaults: dict[str, Any] = {"lr": 1.0, "epochs": 20, "batch_size": 32, "loss": "warp"}
    ranges: dict[str, Constraint] = {**SGD_RANGES, "loss": OneOf(LOSSES)}
    search_space: dict[str, list[Any]] = {"lr": [1e-2, 1e-1, 1.0, 10.0], "loss": list(LOSSES)}

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        loss = weighted_ranking_loss(len(split.seen), ctx.device) if config["loss"] == "warp" else structured_hinge_loss
        yield from train_bilinear(split, config, ctx, loss, stage="ale")
