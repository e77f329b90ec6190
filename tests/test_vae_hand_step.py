"""The hand-derived VAE step equals autograd on ``CrossModalVAE.loss_terms``, for every combination of parts."""

from __future__ import annotations

import itertools

import pytest
import torch

from gzslbench.core.environment import denormals_flushed, flush_denormals
from gzslbench.methods.base import RunContext
from gzslbench.methods.vae.hand_step import HandStep
from gzslbench.methods.vae.model import BackboneSpec, CrossModalVAE, VAESettings, train_vae, weighted_total

PARTS = list(itertools.product((False, True), (False, True), (False, True)))  # IEM, VSA, cross-reconstruction


def _model(iem: bool, vsa: bool, cross: bool) -> CrossModalVAE:
    spec = BackboneSpec(20, 7, 6, 4, (15, 13), (9, 8), 5, iem, vsa, cross)
    return CrossModalVAE(spec, torch.device("cpu"), torch.Generator().manual_seed(1)).double()


@pytest.mark.parametrize(("iem", "vsa", "cross"), PARTS)
@pytest.mark.parametrize("reparam_scale", ["exp_logvar", "exp_half_logvar"])
@pytest.mark.parametrize("distance_weight", [0.0, 0.7])
def test_hand_step_terms_and_gradients_equal_autograd(iem, vsa, cross, reparam_scale, distance_weight) -> None:
    model = _model(iem, vsa, cross)
    g = torch.Generator().manual_seed(2)
    n = 9
    x, a = torch.rand(n, 20, generator=g, dtype=torch.double), torch.rand(n, 7, generator=g, dtype=torch.double)
    y = torch.randint(6, (n,), generator=g)
    eps = torch.randn(2, n, 4, generator=g, dtype=torch.double)
    perms = torch.stack([torch.randperm(8, generator=g), torch.randperm(8, generator=g)]) if iem else None
    weights = {"kl": 0.3, "distance": distance_weight, "classification": 0.9, "cross_reconstruction": 0.4}
    terms = torch.stack(model.loss_terms(x, a, y, eps, perms, reparam_scale))
    total = weighted_total(terms, weights, cross)
    expected = torch.autograd.grad(total, list(model.parameters()))
    hand_terms = HandStep(model, reparam_scale)(x, a, y, eps, perms, weights)
    torch.testing.assert_close(hand_terms, terms.detach(), rtol=1e-12, atol=1e-12)
    for (name, p), grad in zip(model.named_parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-10, atol=1e-12, msg=f"gradient of {name}")


def test_hand_step_gradients_change_with_a_loss_weight() -> None:
    """The weights reach the gradients: the distance weight moves the encoders' but not the decoders'."""
    model = _model(True, True, False)
    g = torch.Generator().manual_seed(3)
    x, a = torch.rand(9, 20, generator=g, dtype=torch.double), torch.rand(9, 7, generator=g, dtype=torch.double)
    y, eps = torch.randint(6, (9,), generator=g), torch.randn(2, 9, 4, generator=g, dtype=torch.double)
    step = HandStep(model, "exp_logvar")
    grads = []
    for distance in (0.0, 1.0):
        step(x, a, y, eps, None, {"kl": 0.3, "distance": distance, "classification": 0.9, "cross_reconstruction": 0})
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    assert not torch.equal(grads[0]["visual_encoder.mu.weight_t"], grads[1]["visual_encoder.mu.weight_t"])
    assert torch.equal(grads[0]["visual_decoder.out.weight_t"], grads[1]["visual_decoder.out.weight_t"])


def test_a_lone_seed_trains_with_the_hand_step_and_two_seeds_with_autograd_to_the_same_weights() -> None:
    """train_vae's two paths (one seed: hand step; stacked seeds: vmap and autograd) train alike."""
    spec = BackboneSpec(20, 7, 6, 4, (15, 13), (9, 8), 5, True, True, False)
    settings = VAESettings(
        epochs=3, batch_size=10, lr=1e-3, iem_lr=1e-3, vsa_lr=1e-3, kl_schedule=(1.0, 0.0, 2.0),
        distance_schedule=(2.0, 0.0, 2.0), classify_schedule=(1.0, 0.0, 2.0), cross_schedule=(0.0, 0.0, 1.0),
        reparam_scale="exp_logvar", noise="per_sample", iem_shuffle=True, iem_eval_permutation="fresh",
        batch_sampling="randperm",
    )  # fmt: skip
    g = torch.Generator().manual_seed(4)
    x, y, att = torch.rand(40, 20, generator=g), torch.randint(6, (40,), generator=g), torch.rand(6, 7, generator=g)

    def trained(k: int) -> list[CrossModalVAE]:
        models = [CrossModalVAE(spec, torch.device("cpu"), torch.Generator().manual_seed(s)) for s in range(k)]
        ctxs = [RunContext(seed=s, device=torch.device("cpu")) for s in range(k)]
        train_vae(models, x, y, att, settings, ctxs, [torch.Generator().manual_seed(10 + s) for s in range(k)])
        return models

    alone, (stacked, _) = trained(1)[0], trained(2)
    untrained = CrossModalVAE(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    for (name, p), q, p0 in zip(alone.named_parameters(), stacked.parameters(), untrained.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
        assert not torch.equal(p, p0), f"{name} did not train"


def test_flush_denormals_flushes_inside_and_restores_the_callers_mode_after() -> None:
    assert not denormals_flushed()
    with flush_denormals():
        assert denormals_flushed()
        assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0
    assert not denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        with flush_denormals():
            pass
        assert denormals_flushed()  # a caller who flushed keeps flushing
    finally:
        torch.set_flush_denormal(False)
