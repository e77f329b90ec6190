"""One seed's VAE training step with hand-derived gradients: the same loss, less of autograd's overhead.

At the benchmarks' shapes an autograd step of :class:`~gzslbench.methods.vae.model.CrossModalVAE`
spends a third of its time outside the matrix products: recording the graph, some 400 small
dispatched operations, and new gradient buffers every step. :class:`HandStep` computes the loss
terms of ``CrossModalVAE.loss_terms`` and the gradient of their weighted total
(:func:`~gzslbench.methods.vae.model.weighted_total`) in closed form, without a graph, and writes
every gradient into a buffer that lives as long as the step. It equals autograd up to float
rounding for every combination of the backbone's parts (``tests/test_vae_hand_step.py``).

Batched seeds keep autograd (``torch.func.vmap`` over ``loss_terms``), and ``loss_terms`` stays the
definition of the loss: what this module computes is checked against it.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from gzslbench.methods.vae.losses import kl_divergence
from gzslbench.methods.vae.parts import Decoder, Dense, Encoder, InformationEnhancement, LatentClassifier


def _linear(layer: Dense, x: torch.Tensor) -> torch.Tensor:
    return torch.addmm(layer.bias, x, layer.weight_t)


def _linear_backward(
    layer: Dense, x: torch.Tensor, grad: torch.Tensor, input_grad: bool = True, add_to: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Write ``layer``'s weight and bias gradients for output gradient ``grad``; return the input's gradient.

    ``add_to`` (the input gradient of another layer with the same input) receives it in place.
    """
    torch.mm(x.T, grad, out=layer.weight_t.grad)
    torch.sum(grad, 0, out=layer.bias.grad)
    if add_to is not None:
        return add_to.addmm_(grad, layer.weight_t.T)
    return grad @ layer.weight_t.T if input_grad else None


class _EncoderPass:
    """An encoder's (and its IEM gate's) forward values, kept for the backward pass."""

    def __init__(
        self, encoder: Encoder, iem: InformationEnhancement | None, x: torch.Tensor, perm: torch.Tensor | None
    ):
        self.encoder, self.iem, self.x, self.perm = encoder, iem, x, perm
        self.h = torch.relu_(_linear(encoder.hidden, x))
        self.mu0, self.logvar0 = _linear(encoder.mu, self.h), _linear(encoder.logvar, self.h)
        self.mu, self.logvar = self.mu0, self.logvar0
        if iem is not None:
            mixed = torch.cat((self.mu0, self.logvar0), dim=1)
            self.mixed = mixed if perm is None else mixed.index_select(1, perm)
            self.q = torch.relu_(_linear(iem.hidden, self.mixed))
            self.gate = torch.sigmoid_(_linear(iem.out, self.q))
            self.mu, self.logvar = self.gate * self.mu0, self.gate * self.logvar0

    def backward(self, grad_mu: torch.Tensor, grad_logvar: torch.Tensor) -> None:
        if self.iem is not None:
            grad_gate = grad_mu * self.mu0 + grad_logvar * self.logvar0
            grad_mu, grad_logvar = grad_mu * self.gate, grad_logvar * self.gate
            grad_out = grad_gate.mul_(self.gate).mul_(1 - self.gate)
            grad_q = _linear_backward(self.iem.out, self.q, grad_out).mul_(self.q > 0)
            grad_mixed = _linear_backward(self.iem.hidden, self.mixed, grad_q)
            if self.perm is not None:
                grad_mixed = torch.empty_like(grad_mixed).index_copy_(1, self.perm, grad_mixed)
            latent = grad_mu.shape[1]
            grad_mu.add_(grad_mixed[:, :latent])
            grad_logvar.add_(grad_mixed[:, latent:])
        grad_h = _linear_backward(self.encoder.mu, self.h, grad_mu)
        _linear_backward(self.encoder.logvar, self.h, grad_logvar, add_to=grad_h).mul_(self.h > 0)
        _linear_backward(self.encoder.hidden, self.x, grad_h, input_grad=False)


class _DecoderPass:
    """A decoder's forward values, kept for the backward pass."""

    def __init__(self, decoder: Decoder, z: torch.Tensor):
        self.decoder, self.z = decoder, z
        self.d = torch.relu_(_linear(decoder.hidden, z))
        self.out = _linear(decoder.out, self.d)

    def backward(self, grad_out: torch.Tensor) -> torch.Tensor:
        grad_d = _linear_backward(self.decoder.out, self.d, grad_out).mul_(self.d > 0)
        return _linear_backward(self.decoder.hidden, self.z, grad_d)


def _classifier_pass(classifier: LatentClassifier, z: torch.Tensor, y: torch.Tensor, weight: float) -> tuple:
    """(mean NLL of ``classifier`` on ``z``, the gradient of ``weight`` times it with respect to ``z``)."""
    log_p = torch.log_softmax(_linear(classifier.fc, z), dim=1)
    nll = -log_p.gather(1, y[:, None]).mean()
    grad_logits = log_p.exp_()
    grad_logits[torch.arange(len(y), device=y.device), y] -= 1
    grad_logits.mul_(weight / len(y))
    return nll, _linear_backward(classifier.fc, z, grad_logits)


class HandStep:
    """The loss terms of one batch, and the gradient of their weighted total written into ``model``'s ``.grad``.

    Gradient buffers are allocated once, here, and overwritten by every call (no ``zero_grad``).
    """

    def __init__(self, model: nn.Module, reparam_scale: str) -> None:
        if reparam_scale not in ("exp_logvar", "exp_half_logvar"):
            raise ValueError(f"unknown reparam_scale {reparam_scale!r}")
        self.model, self.reparam_scale = model, reparam_scale
        for p in model.parameters():
            p.grad = torch.zeros_like(p)

    def _scale(self, logvar: torch.Tensor, var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(noise scale, its derivative with respect to logvar)."""
        if self.reparam_scale == "exp_logvar":
            return var, var
        scale = torch.exp(0.5 * logvar)
        return scale, 0.5 * scale

    @torch.no_grad()
    def __call__(
        self,
        x: torch.Tensor,
        a: torch.Tensor,
        y: torch.Tensor,
        eps: torch.Tensor,
        perms: torch.Tensor | None,
        weights: Mapping[str, float],
    ) -> torch.Tensor:
        """The (5,) unweighted loss terms of one batch in ``LOSS_NAMES`` order; the gradients in ``.grad``.

        The gradients are those of ``weighted_total(terms, weights, ...)``, the loss autograd minimises.
        """
        m = self.model
        n = x.shape[0]
        cross = m.spec.use_cross_reconstruction
        enc_x = _EncoderPass(m.visual_encoder, m.visual_iem, x, None if perms is None else perms[0])
        enc_a = _EncoderPass(m.attribute_encoder, m.attribute_iem, a, None if perms is None else perms[1])
        mu_x, logvar_x, mu_a, logvar_a = enc_x.mu, enc_x.logvar, enc_a.mu, enc_a.logvar
        var_x, var_a = logvar_x.exp(), logvar_a.exp()
        (scale_x, dscale_x), (scale_a, dscale_a) = self._scale(logvar_x, var_x), self._scale(logvar_a, var_a)
        z_x, z_a = mu_x + scale_x * eps[0], mu_a + scale_a * eps[1]
        if cross:
            dec_x = _DecoderPass(m.visual_decoder, torch.cat((z_x, z_a)))
            dec_a = _DecoderPass(m.attribute_decoder, torch.cat((z_a, z_x)))
        else:
            dec_x, dec_a = _DecoderPass(m.visual_decoder, z_x), _DecoderPass(m.attribute_decoder, z_a)
        diff_x, diff_a = dec_x.out.view(-1, n, x.shape[1]) - x, dec_a.out.view(-1, n, a.shape[1]) - a
        abs_x, abs_a = diff_x.abs().sum((1, 2)), diff_a.abs().sum((1, 2))
        reconstruction = abs_x[0] + abs_a[0]
        cross_reconstruction = abs_x[1] + abs_a[1] if cross else reconstruction.new_zeros(())
        grad_x_hat, grad_a_hat = diff_x.sign_(), diff_a.sign_()
        if cross:
            grad_x_hat[1] *= weights["cross_reconstruction"]
            grad_a_hat[1] *= weights["cross_reconstruction"]
        grad_zin_x = dec_x.backward(grad_x_hat.view(-1, x.shape[1]))
        grad_zin_a = dec_a.backward(grad_a_hat.view(-1, a.shape[1]))
        grad_z_x, grad_z_a = grad_zin_x[:n], grad_zin_a[:n]
        if cross:
            grad_z_x, grad_z_a = grad_z_x + grad_zin_a[n:], grad_z_a + grad_zin_x[n:]

        classification = reconstruction.new_zeros(())
        if m.visual_classifier is not None and m.attribute_classifier is not None:
            classification = self._vsa(z_x, z_a, y, weights["classification"], grad_z_x, grad_z_a)

        kl_weight = weights["kl"]
        kl = kl_divergence(mu_x, logvar_x, var_x) + kl_divergence(mu_a, logvar_a, var_a)
        grad_mu_x = grad_z_x + kl_weight * mu_x
        grad_mu_a = grad_z_a + kl_weight * mu_a
        grad_logvar_x = grad_z_x * eps[0] * dscale_x + 0.5 * kl_weight * (var_x - 1)
        grad_logvar_a = grad_z_a * eps[1] * dscale_a + 0.5 * kl_weight * (var_a - 1)

        sigma_x, sigma_a = var_x.sqrt(), var_a.sqrt()
        mu_gap, sigma_gap = mu_x - mu_a, sigma_x - sigma_a
        per_sample = (mu_gap.pow(2).sum(1) + sigma_gap.pow(2).sum(1)).sqrt_()
        distance = per_sample.sum()
        distance_weight = weights["distance"]
        if distance_weight > 0:
            coefficient = (distance_weight / per_sample)[:, None]
            grad_mu_gap, grad_sigma_gap = coefficient * mu_gap, coefficient * sigma_gap
            grad_mu_x += grad_mu_gap
            grad_mu_a -= grad_mu_gap
            grad_logvar_x += 0.5 * grad_sigma_gap * sigma_x
            grad_logvar_a -= 0.5 * grad_sigma_gap * sigma_a

        enc_x.backward(grad_mu_x, grad_logvar_x)
        enc_a.backward(grad_mu_a, grad_logvar_a)
        return torch.stack((reconstruction, kl, distance, classification, cross_reconstruction))

    def _vsa(
        self,
        z_x: torch.Tensor,
        z_a: torch.Tensor,
        y: torch.Tensor,
        weight: float,
        grad_z_x: torch.Tensor,
        grad_z_a: torch.Tensor,
    ) -> torch.Tensor:
        """VSA's classification term (:func:`~gzslbench.methods.vae.parts.vsa_reweight`, then both latent classifiers).

        Adds ``weight`` times its gradient to ``grad_z_x`` and ``grad_z_a`` in place.
        """
        m = self.model
        s = torch.softmax(z_a.unsqueeze(2) * z_x.unsqueeze(1), dim=2)  # s[b, j, i]
        both = torch.stack((z_x, z_a), dim=1)
        aligned = torch.bmm(both, s)
        nll_x, grad_aligned_x = _classifier_pass(m.visual_classifier, aligned[:, 0], y, weight)
        nll_a, grad_aligned_a = _classifier_pass(m.attribute_classifier, aligned[:, 1], y, weight)
        grad_aligned = torch.stack((grad_aligned_x, grad_aligned_a), dim=1)
        grad_both = torch.bmm(grad_aligned, s.transpose(1, 2))
        grad_s = torch.bmm(both.transpose(1, 2), grad_aligned)
        grad_t = grad_s.sub_((grad_s * s).sum(2, keepdim=True)).mul_(s)
        grad_z_x += grad_both[:, 0] + (grad_t * z_a.unsqueeze(2)).sum(1)
        grad_z_a += grad_both[:, 1] + torch.bmm(grad_t, z_x.unsqueeze(2)).squeeze(2)
        return nll_x + nll_a
