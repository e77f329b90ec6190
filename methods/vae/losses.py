"""Loss terms of the cross-modal VAEs and their linear warm-up schedule.

All terms are summed over the batch, as in the reference code (``nn.L1Loss(size_average=False)``
and explicit ``torch.sum``), except the VSA classification NLL, which the reference averages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def l1_sum(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed absolute error (the reference's reconstruction criterion)."""
    return (prediction - target).abs().sum()


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, var: torch.Tensor | None = None) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over samples and dimensions.

    ``var`` may pass an already computed ``exp(logvar)``.
    """
    var = logvar.exp() if var is None else var
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - var)


def wasserstein_distance(
    mu_x: torch.Tensor,
    logvar_x: torch.Tensor,
    mu_a: torch.Tensor,
    logvar_a: torch.Tensor,
    var_x: torch.Tensor | None = None,
    var_a: torch.Tensor | None = None,
) -> torch.Tensor:
    """2-Wasserstein distance between diagonal Gaussians, summed over samples (paper Eq. 4).

    Per sample ``sqrt(||mu_x - mu_a||^2 + ||sigma_x - sigma_a||^2)`` with ``sigma = sqrt(exp(logvar))``,
    computed as the reference does. ``var_*`` may pass already computed ``exp(logvar)``.
    """
    sigma_x = torch.sqrt(logvar_x.exp() if var_x is None else var_x)
    sigma_a = torch.sqrt(logvar_a.exp() if var_a is None else var_a)
    squared = (mu_x - mu_a).pow(2).sum(dim=1) + (sigma_x - sigma_a).pow(2).sum(dim=1)
    return torch.sqrt(squared).sum()


def warmup_weight(schedule: Sequence[float], epoch: int) -> float:
    """Loss weight of 0-based ``epoch`` for ``schedule = [factor, start_epoch, end_epoch]``.

    ``clamp((epoch - start) / (end - start), 0, 1) * factor``: 0 up to ``start``, ``factor`` from
    ``end`` on. The reference writes it as ``min(max(f, 0), factor)`` with ``f`` the unclamped
    ramp times ``factor``, which is the same for a non-negative factor.
    """
    factor, start, end = (float(v) for v in schedule)
    if end <= start:
        return factor if epoch >= start else 0.0
    return min(max((epoch - start) / (end - start), 0.0), 1.0) * factor
