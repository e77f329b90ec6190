"""Loss terms of the conditional WGAN-GP (Gulrajani et al. 2017) as f-CLSWGAN uses them (Eq. 2 and 4), and VAE terms.

Every WGAN term is a batch mean, as in the reference (``criticD_real.mean()``, ``nn.NLLLoss()``).
The VAE terms of f-VAEGAN are sums over feature (or latent) dimensions averaged over the batch, as
TF-VAEGAN's ``loss_fn`` computes them (``size_average=False`` then ``/ x.size(0)``); so is
TF-VAEGAN's semantic decoder loss (:func:`weighted_l1`). FREE's centre loss is :func:`triplet_center_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gzslbench.methods.gan.parts import LEAKY_SLOPE, Critic


def interpolate(real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``alpha * real + (1 - alpha) * fake`` with one ``alpha`` in [0, 1) per row (shape ``(n, 1)``)."""
    return torch.lerp(fake, real, alpha)


def gradient_penalty(
    critic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    attributes: torch.Tensor,
    alpha: torch.Tensor,
    weight: float,
) -> torch.Tensor:
    """``weight * mean_i (||grad_x D(x_i, a_i)||_2 - 1)^2`` at ``x_i`` between real and generated rows (Eq. 2).

    ``x_i = alpha_i * real_i + (1 - alpha_i) * fake_i``; the gradient is taken w.r.t. the features
    only (the attributes condition both sides alike) and built with ``create_graph=True`` so that
    the penalty trains the critic. ``fake`` must not carry the generator's graph (the reference
    passes ``fake.data``).
    """
    x = interpolate(real, fake, alpha).requires_grad_(True)
    scores = critic(x, attributes)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return weight * (grad.norm(2, dim=1) - 1.0).pow(2).mean()


def critic_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, penalty: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, wasserstein)``: the critic minimises ``E[D(fake)] - E[D(real)] + penalty``.

    ``wasserstein = E[D(real)] - E[D(fake)]`` is the critic's estimate of the Wasserstein distance
    (the reference prints it as ``Wasserstein_dist``).
    """
    wasserstein = real_scores.mean() - fake_scores.mean()
    return penalty - wasserstein, wasserstein.detach()


RECONSTRUCTION_LOSSES = ("bce", "l2")


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """The VAE's -log p(x | z, a) up to constants: summed over feature dimensions, averaged over rows.

    ``"bce"`` is TF-VAEGAN's binary cross-entropy of sigmoid outputs against the [0, 1]-scaled
    real features (the log clamped at -100 by torch, as in the reference's ``F.binary_cross_entropy``);
    ``"l2"`` the squared error, a Gaussian decoder's term.
    """
    if kind == "bce":
        total = F.binary_cross_entropy(recon, x, reduction="sum")
    elif kind == "l2":
        total = (recon - x).pow(2).sum()
    else:
        raise ValueError(f"reconstruction loss {kind!r} is not one of {RECONSTRUCTION_LOSSES}")
    return total / len(x)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over latent dimensions, averaged over rows (TF-VAEGAN's ``KLD``)."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp()) / len(mu)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """TF-VAEGAN's ``WeightedL1`` (decoder loss): ``mean_i sum_j |d_ij|^3 / ||d_i||``, ``d = pred - target``.

    An L1 error whose terms are weighted by their share of the row's squared error, so the
    largest errors of each row dominate. A row with no error contributes 0 (the reference's
    division would give NaN there).
    """
    d = pred - target
    norm = d.norm(dim=1, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny)
    return (d.pow(2) * d.abs() / norm).sum() / len(d)


# How FREE's triplet-centre loss picks the other class of a row: a random class, possibly the row's own (the
# release on CUB, SUN and FLO), a random class other than the row's own, or the nearest other centre (AWA1, AWA2, APY).
CENTER_OTHERS = ("random", "random_distinct", "nearest")


def triplet_center_loss(
    embedding: torch.Tensor,
    labels: torch.Tensor,
    centers: torch.Tensor,
    margin: float,
    incenter_weight: float,
    other: str,
    rng: torch.Generator,
) -> torch.Tensor:
    """FREE's self-adaptive margin centre loss: ``mean_i max(0, margin + w * d_i,own - (1 - w) * d_i,other)``.

    ``d_i,c`` is the squared Euclidean distance of row ``i`` of ``embedding`` to ``centers[c]``,
    ``labels`` index the rows of ``centers`` and ``w`` is ``incenter_weight``. The other class
    (``CENTER_OTHERS``): ``"random"`` is the release's ``(y + randint(C)) mod C``, which is the
    row's own class one time in ``C``; ``"random_distinct"`` draws among the other ``C - 1``;
    ``"nearest"`` takes the nearest other centre. Gradients reach the rows and the centres.
    """
    n, n_classes = len(embedding), len(centers)
    dist = embedding.pow(2).sum(1, keepdim=True) + centers.pow(2).sum(1) - 2.0 * embedding @ centers.T
    own = dist.gather(1, labels.unsqueeze(1)).squeeze(1)
    if other == "nearest":
        others = dist.masked_fill(F.one_hot(labels, n_classes).bool(), torch.inf).min(dim=1).values
    elif other in ("random", "random_distinct"):
        low = 1 if other == "random_distinct" else 0
        shift = torch.randint(low, n_classes, (n,), generator=rng, device=labels.device)
        others = dist.gather(1, ((labels + shift) % n_classes).unsqueeze(1)).squeeze(1)
    else:
        raise ValueError(f"center_other {other!r} is not one of {CENTER_OTHERS}")
    return torch.relu(margin + incenter_weight * own - (1.0 - incenter_weight) * others).sum() / n


def classification_loss(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Paper Eq. 4's L_CLS: mean negative log-likelihood of the generated rows' classes under the frozen classifier."""
    return torch.nn.functional.nll_loss(log_probs, labels)


@dataclass(frozen=True)
class CriticStep:
    """The terms of one critic step (0-d tensors without graph): loss, Wasserstein estimate, weighted penalty.

    ``deviation`` is the unweighted ``mean_i (||g_i|| - 1)^2``, which TF-VAEGAN's adaptive penalty
    weight steers by.
    """

    loss: torch.Tensor
    wasserstein: torch.Tensor
    penalty: torch.Tensor
    deviation: torch.Tensor


@torch.no_grad()
def critic_step_gradients(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    attributes: torch.Tensor,
    alpha: torch.Tensor,
    weight: float | torch.Tensor,
) -> CriticStep:
    """Write into ``critic``'s ``.grad`` the gradient of the WGAN-GP critic loss, derived by hand, and return its terms.

    The loss is :func:`critic_loss` with :func:`gradient_penalty`: ``mean D(fake) - mean D(real)
    + weight * mean_i (||g_i|| - 1)^2``, ``g_i = grad_x D(x_hat_i, a_i)``. For the one-hidden-layer
    critic ``D(x, a) = w2 . lrelu(W_x^T x + W_a^T a + b1) + b2`` the input gradient is
    ``g_i = W_x (w2 * s_i)`` with ``s_i`` the LeakyReLU slopes (1 or 0.2) at ``x_hat_i``: piecewise
    constant in the parameters, so the penalty reaches only ``W_x`` and ``w2``
    (``dP/dW_x = sum_i r_i (w2 * s_i)^T`` and ``dP/dw2 = sum_i s_i * (W_x^T r_i)`` with
    ``r_i = dP/dg_i``). That is what autograd's double backward computes (``tests/test_gan.py``
    checks it), without its passes through the zero gradient of the slopes, and the feature block
    of ``W``'s gradient is one product over the real, generated and penalty rows together.
    ``weight`` may be a 0-d tensor (an adaptive weight kept on the device, read without a sync).
    """
    n, dim = len(real), critic.feature_dim
    w = critic.hidden.weight_t  # (dim + attribute_dim, hidden): feature rows, then attribute rows
    w_x, w_a = w[:dim], w[dim:]
    w2 = critic.out.weight_t[:, 0]
    a_term = torch.addmm(critic.hidden.bias, attributes, w_a)
    rows = torch.cat((real, fake, interpolate(real, fake, alpha)))
    h = torch.addmm(a_term.repeat(3, 1), rows, w_x)
    slope = torch.where(h > 0, h.new_ones(()), h.new_full((), LEAKY_SLOPE))
    act = (h[: 2 * n] * slope[: 2 * n]).view(2, n, -1)
    mean_act = act.mean(dim=1)  # mean hidden activation of the real and of the generated rows
    wasserstein = (mean_act[0] - mean_act[1]) @ w2
    v = slope[2 * n :] * w2  # (n, hidden): w2 * s_i at the penalty rows
    g = v @ w_x.T  # (n, dim): the critic's input gradients
    norm = g.norm(dim=1)
    deviation = (norm - 1.0).pow(2).mean()
    penalty = weight * deviation
    r = g * ((2.0 * weight / n) * (norm - 1.0) / norm.clamp_min(torch.finfo(g.dtype).tiny)).unsqueeze(1)
    # dL/dh of the real (-1/n) and generated (+1/n) rows' scores
    d_h = slope[: 2 * n].view(2, n, -1) * (w2 / n)
    d_h[0].neg_()
    d_h = d_h.view(2 * n, -1)
    grad_w = torch.empty_like(w)
    torch.mm(torch.cat((rows[: 2 * n], r)).T, torch.cat((d_h, v)), out=grad_w[:dim])
    torch.mm(attributes.T, d_h[:n] + d_h[n:], out=grad_w[dim:])
    critic.hidden.weight_t.grad = grad_w
    critic.hidden.bias.grad = d_h.sum(dim=0)
    critic.out.weight_t.grad = ((mean_act[1] - mean_act[0]) + (slope[2 * n :] * (r @ w_x)).sum(dim=0)).unsqueeze(1)
    critic.out.bias.grad = torch.zeros_like(critic.out.bias)
    return CriticStep(penalty - wasserstein, wasserstein, penalty, deviation)


def class_means(x: torch.Tensor, labels: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(means, present)``: the mean row of ``x`` per class ``0..n_classes-1`` and which classes have a row.

    A class without rows gets a zero mean and ``present`` False; gradients flow to the rows.
    """
    counts = torch.bincount(labels, minlength=n_classes)
    sums = x.new_zeros(n_classes, x.shape[1]).index_add_(0, labels, x)
    return sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype), counts > 0


def centroid_loss(fake: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """LsrGAN's Euclidean term: ``sum_c ||mean_c(fake) - centroid_c|| / n_classes`` over the batch's classes.

    ``labels`` index the rows of ``centroids`` (the real seen class means); a class absent from
    the batch adds nothing, and the sum is divided by the number of all seen classes, as the
    reference's ``Euclidean_loss *= 1.0 / data.ntrain_class``.
    """
    means, present = class_means(fake, labels, len(centroids))
    return torch.linalg.vector_norm(means[present] - centroids[present], dim=1).sum() / len(centroids)


def semantic_margin_loss(
    fake: torch.Tensor,
    labels: torch.Tensor,
    n_classes: int,
    centroids: torch.Tensor,
    neighbours: torch.Tensor,
    similarity: torch.Tensor,
    epsilon: float,
) -> torch.Tensor:
    """LsrGAN's SR-loss: keep the visual similarity of each generated class to its semantic neighbours within epsilon.

    For each class ``c`` of the batch (``labels`` in ``0..n_classes-1``) and each of its ``k``
    neighbours ``j = neighbours[c, i]`` (rows of ``centroids``, the real seen class means):
    ``rho = cos(mean_c(fake), centroids[j])`` should lie in ``similarity[c, i] +- epsilon``;
    ``max(0, rho - s - epsilon)^2 + max(0, s - epsilon - rho)^2`` is summed over classes and
    neighbours and divided by ``k``, as the reference's ``Correlation_loss / opt.Neighbours``.
    """
    means, present = class_means(fake, labels, n_classes)
    rho = torch.einsum(
        "cd,ckd->ck", F.normalize(means[present], dim=1), F.normalize(centroids, dim=1)[neighbours[present]]
    )
    s = similarity[present]
    margin = torch.relu(rho - s - epsilon).pow(2) + torch.relu(s - epsilon - rho).pow(2)
    return margin.sum() / neighbours.shape[1]
