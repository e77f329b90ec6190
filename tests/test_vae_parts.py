"""Unit tests of the cross-modal VAE parts against hand or numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from gzslbench.methods.vae.classifier import (
    ClassifierSettings,
    SoftmaxClassifier,
    per_class_indices,
    with_ones,
)
from gzslbench.methods.vae.losses import kl_divergence, l1_sum, warmup_weight, wasserstein_distance
from gzslbench.methods.vae.model import (
    BackboneSpec,
    CrossModalVAE,
    FusedAMSGrad,
    VAESettings,
    backbone_spec,
    batch_indices,
    epoch_weights,
    make_optimizer,
)
from gzslbench.methods.vae.parts import (
    Encoder,
    InformationEnhancement,
    draw_noise,
    init_linear_,
    random_permutations,
    reparameterize,
    vsa_reweight,
)
from gzslbench.methods.vae.registry import ACMR, CADAVAE

CPU = torch.device("cpu")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_spec(**flags: bool) -> BackboneSpec:
    base = {"use_iem": True, "use_vsa": True, "use_cross_reconstruction": False}
    return BackboneSpec(
        visual_dim=12,
        attribute_dim=5,
        n_classes=4,
        latent=3,
        visual_hidden=(7, 6),
        attribute_hidden=(6, 5),
        iem_hidden=4,
        **{**base, **flags},
    )


# ---------------------------------------------------------------- losses and schedules


def test_kl_matches_closed_form() -> None:
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    # KL(N(mu, s^2) || N(0, 1)) per dim = 0.5 * (s^2 + mu^2 - 1 - log s^2)
    expected = np.sum(0.5 * (np.exp(logvar) + mu**2 - 1 - logvar))
    got = kl_divergence(torch.tensor(mu), torch.tensor(logvar))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_wasserstein_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    mx, lx, ma, la = (rng.normal(size=(5, 3)) for _ in range(4))
    per_sample = np.sqrt(((mx - ma) ** 2).sum(1) + ((np.exp(lx / 2) - np.exp(la / 2)) ** 2).sum(1))
    got = wasserstein_distance(*(torch.tensor(v) for v in (mx, lx, ma, la)))
    assert got.item() == pytest.approx(per_sample.sum(), rel=1e-12)
    same = wasserstein_distance(*(torch.tensor(v) for v in (mx, lx, mx, lx)))
    assert same.item() == 0.0


def test_l1_sum_is_a_sum() -> None:
    a, b = torch.tensor([[1.0, -2.0], [0.5, 0.0]]), torch.zeros(2, 2)
    assert l1_sum(a, b).item() == 3.5


@pytest.mark.parametrize(
    ("schedule", "epoch", "expected"),
    [
        ([2.555, 0, 93], 0, 0.0),
        ([2.555, 0, 93], 93, 2.555),
        ([2.555, 0, 93], 99, 2.555),
        ([8.21, 7, 22], 6, 0.0),
        ([8.21, 7, 22], 7, 0.0),
        ([8.21, 7, 22], 10, 8.21 * 3 / 15),
        ([8.21, 7, 22], 22, 8.21),
        ([2.37, 21, 75], 48, 2.37 * 27 / 54),
    ],
)
def test_warmup_ramp(schedule: list[float], epoch: int, expected: float) -> None:
    assert warmup_weight(schedule, epoch) == pytest.approx(expected, abs=1e-12)
    factor, start, end = schedule
    reference = min(max((epoch - start) / (end - start) * factor, 0), factor)
    assert warmup_weight(schedule, epoch) == pytest.approx(reference, abs=1e-12)


def test_epoch_weights_use_every_schedule() -> None:
    settings = VAESettings.from_config(ACMR.defaults)
    w = epoch_weights(settings, 22)
    assert w == pytest.approx(
        {"kl": 2.555 * 22 / 93, "distance": 8.21, "classification": 310.5, "cross_reconstruction": 2.37 * 1 / 54}
    )


# ---------------------------------------------------------------- init, reparameterisation, noise


def test_init_is_xavier_half_gain_and_deterministic() -> None:
    enc_a, enc_b = Encoder(30, 20, 4, CPU), Encoder(30, 20, 4, CPU)
    init_linear_(enc_a, gen(3))
    init_linear_(enc_b, gen(3))
    bound = 0.5 * math.sqrt(6 / (30 + 20))
    assert enc_a.hidden.weight.abs().max() <= bound
    assert enc_a.hidden.weight.abs().max() > 0.9 * bound
    assert torch.equal(enc_a.hidden.bias, torch.zeros(20))
    assert torch.equal(enc_a.hidden.weight, enc_b.hidden.weight)


def test_reparam_scale_changes_only_the_noise_magnitude() -> None:
    mu = torch.tensor([[0.5, -1.0, 2.0]])
    logvar = torch.tensor([[0.2, -0.4, 1.0]])
    eps = torch.tensor([[0.7]])
    z_ref = reparameterize(mu, logvar, eps, "exp_logvar")
    z_txt = reparameterize(mu, logvar, eps, "exp_half_logvar")
    assert torch.allclose(z_ref - mu, torch.exp(logvar) * 0.7)
    assert torch.allclose(z_txt - mu, torch.exp(logvar / 2) * 0.7)
    assert torch.equal(reparameterize(mu, logvar, torch.zeros(1, 1), "exp_logvar"), mu)
    with pytest.raises(ValueError):
        reparameterize(mu, logvar, eps, "std")


def test_noise_per_sample_vs_per_dim() -> None:
    per_sample = draw_noise(5, 3, "per_sample", gen(), CPU)
    per_dim = draw_noise(5, 3, "per_dim", gen(), CPU)
    assert per_sample.shape == (5, 1)
    assert per_dim.shape == (5, 3)
    mu, logvar = torch.zeros(5, 3), torch.zeros(5, 3)
    z = reparameterize(mu, logvar, per_sample, "exp_logvar")
    assert torch.equal(z, per_sample.expand(5, 3))  # one scalar broadcast over the latent dims
    assert not torch.equal(per_dim[:, 0], per_dim[:, 1])
    assert draw_noise(2, 3, "per_sample", gen(), CPU, leading=(4, 2)).shape == (4, 2, 2, 1)


def test_random_permutations_are_permutations() -> None:
    perms = random_permutations(6, 10, gen(), CPU, leading=(3,))
    assert perms.shape == (3, 6, 10)
    assert torch.equal(perms.sort(dim=-1).values, torch.arange(10).expand(3, 6, 10))
    assert len({tuple(p.tolist()) for p in perms.reshape(-1, 10)}) > 1


# ---------------------------------------------------------------- IEM and VSA


def _numpy_gate(iem: InformationEnhancement, mixed: np.ndarray) -> np.ndarray:
    w1, b1 = iem.hidden.weight.detach().double().numpy(), iem.hidden.bias.detach().double().numpy()
    w2, b2 = iem.out.weight.detach().double().numpy(), iem.out.bias.detach().double().numpy()
    h = np.maximum(mixed @ w1.T + b1, 0)
    return 1 / (1 + np.exp(-(h @ w2.T + b2)))


def test_iem_gates_mu_and_logvar_with_the_same_gate() -> None:
    iem = InformationEnhancement(3, 4, CPU)
    init_linear_(iem, gen(1))
    nn.init.uniform_(iem.hidden.bias, -0.3, 0.3, generator=gen(2))
    mu, logvar = torch.randn(5, 3, generator=gen(4)), torch.randn(5, 3, generator=gen(5))
    g_mu, g_lv = iem(mu, logvar, None)
    gate = _numpy_gate(iem, np.concatenate([mu.double().numpy(), logvar.double().numpy()], 1))
    assert np.allclose(g_mu.detach().numpy(), gate * mu.numpy(), atol=1e-6)
    assert np.allclose(g_lv.detach().numpy(), gate * logvar.numpy(), atol=1e-6)
    # no shuffle: deterministic
    again_mu, _ = iem(mu, logvar, None)
    assert torch.equal(g_mu, again_mu)


def test_iem_shuffle_permutes_the_channels() -> None:
    iem = InformationEnhancement(3, 4, CPU)
    init_linear_(iem, gen(1))
    mu, logvar = torch.randn(5, 3, generator=gen(4)), torch.randn(5, 3, generator=gen(5))
    perm = torch.tensor([5, 0, 3, 1, 4, 2])
    g_mu, _ = iem(mu, logvar, perm)
    mixed = np.concatenate([mu.numpy(), logvar.numpy()], 1)[:, perm.numpy()]
    assert np.allclose(g_mu.detach().numpy(), _numpy_gate(iem, mixed.astype(np.float64)) * mu.numpy(), atol=1e-6)
    unshuffled, _ = iem(mu, logvar, None)
    assert not torch.allclose(g_mu, unshuffled)
    identity, _ = iem(mu, logvar, torch.arange(6))
    assert torch.equal(identity, unshuffled)


def test_vsa_softmax_over_first_index_and_reweighting() -> None:
    rng = np.random.default_rng(2)
    zx, za = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    got_x, got_a = vsa_reweight(torch.tensor(zx), torch.tensor(za))
    for b in range(4):
        r = np.outer(zx[b], za[b])  # r[i, j] = zx_i * za_j
        soft = np.exp(r) / np.exp(r).sum(axis=0, keepdims=True)  # each column normalised over i
        assert np.allclose(soft.sum(axis=0), 1.0)
        assert np.allclose(got_x[b].numpy(), soft @ zx[b])
        assert np.allclose(got_a[b].numpy(), soft @ za[b])


# ---------------------------------------------------------------- backbone


def test_switches_build_exactly_the_named_parts() -> None:
    full = CrossModalVAE(tiny_spec(), CPU, gen())
    assert full.visual_iem is not None and full.visual_classifier is not None
    plain = CrossModalVAE(tiny_spec(use_iem=False, use_vsa=False), CPU, gen())
    assert plain.visual_iem is None and plain.attribute_classifier is None
    groups = full.parameter_groups(1.0, 2.0, 3.0)
    assert [g["lr"] for g in groups] == [1.0, 2.0, 3.0]
    assert len(plain.parameter_groups(1.0, 2.0, 3.0)) == 1
    n_full = sum(p.numel() for g in groups for p in g["params"])
    assert n_full == sum(p.numel() for p in full.parameters())


def test_visual_hidden_switch() -> None:
    config = {**ACMR.defaults, **ACMR.dataset_defaults["cub"]}
    assert backbone_spec(config, 2048, 312, 200).visual_hidden == (1560, 1665)
    assert backbone_spec({**config, "visual_hidden": "paper"}, 2048, 312, 200).visual_hidden == (1560, 1680)
    assert backbone_spec(CADAVAE.defaults, 2048, 312, 200).visual_hidden == (1560, 1660)


def test_loss_terms_match_hand_computation_including_cross_reconstruction() -> None:
    torch.manual_seed(0)
    model = CrossModalVAE(tiny_spec(use_iem=False, use_vsa=False, use_cross_reconstruction=True), CPU, gen(7))
    x, a = torch.rand(4, 12, generator=gen(1)), torch.rand(4, 5, generator=gen(2))
    y = torch.tensor([0, 1, 2, 1])
    eps = torch.randn(2, 4, 1, generator=gen(3))
    terms = model.loss_terms(x, a, y, eps, None, "exp_logvar")
    mu_x, lv_x = model.visual_encoder(x)
    mu_a, lv_a = model.attribute_encoder(a)
    z_x, z_a = mu_x + lv_x.exp() * eps[0], mu_a + lv_a.exp() * eps[1]
    rec = (model.visual_decoder(z_x) - x).abs().sum() + (model.attribute_decoder(z_a) - a).abs().sum()
    cross = (model.visual_decoder(z_a) - x).abs().sum() + (model.attribute_decoder(z_x) - a).abs().sum()
    kl = kl_divergence(mu_x, lv_x) + kl_divergence(mu_a, lv_a)
    dist = wasserstein_distance(mu_x, lv_x, mu_a, lv_a)
    for got, want in zip(terms, [rec, kl, dist, torch.tensor(0.0), cross], strict=True):
        assert got.item() == pytest.approx(want.item(), rel=1e-5)
    no_cross = CrossModalVAE(tiny_spec(use_iem=False, use_vsa=False), CPU, gen(7))
    assert no_cross.loss_terms(x, a, y, eps, None, "exp_logvar")[4].item() == 0.0


def test_vsa_classification_term_is_mean_nll_of_both_classifiers() -> None:
    model = CrossModalVAE(tiny_spec(use_iem=False), CPU, gen(7))
    x, a = torch.rand(4, 12, generator=gen(1)), torch.rand(4, 5, generator=gen(2))
    y = torch.tensor([0, 3, 2, 1])
    eps = torch.zeros(2, 4, 1)
    cls = model.loss_terms(x, a, y, eps, None, "exp_logvar")[3]
    zx, za = vsa_reweight(model.visual_encoder(x)[0], model.attribute_encoder(a)[0])
    lp_x = torch.log_softmax(model.visual_classifier.fc(zx), 1)
    lp_a = torch.log_softmax(model.attribute_classifier.fc(za), 1)
    want = -(lp_x[torch.arange(4), y].mean() + lp_a[torch.arange(4), y].mean())
    assert cls.item() == pytest.approx(want.item(), rel=1e-5)


def test_batch_indices_draw_fresh_batches() -> None:
    idx = batch_indices(100, 50, 3, "randperm", gen(), CPU)
    assert idx.shape == (3, 50)
    assert all(len(set(row.tolist())) == 50 for row in idx)  # distinct within a batch
    assert not torch.equal(idx[0].sort().values, idx[1].sort().values)
    with_repl = batch_indices(10, 50, 2, "randint", gen(), CPU)
    assert with_repl.shape == (2, 50) and with_repl.max() < 10
    assert batch_indices(20, 50, 2, "randperm", gen(), CPU).shape == (2, 20)


# ---------------------------------------------------------------- final classifier


def test_per_class_indices_tile_in_data_order() -> None:
    labels = np.array([2, 0, 2, 1, 0, 2])
    idx = per_class_indices(labels, np.array([0, 1, 2]), 5)
    assert idx.tolist() == [1, 4, 1, 4, 1, 3, 3, 3, 3, 3, 0, 2, 5, 0, 2]
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5]
    big = per_class_indices(np.repeat(np.arange(4), [3, 250, 7, 1]), np.arange(4), 200)
    assert np.bincount(np.repeat(np.arange(4), [3, 250, 7, 1])[big]).tolist() == [200] * 4
    unseen = np.array([7, 9])
    rows = per_class_indices(unseen, unseen, 390)
    assert np.bincount(unseen[rows]).tolist()[7:] == [390, 0, 390]


@pytest.mark.parametrize("fused", [True, False])
def test_hand_written_classifier_step_matches_torch_adam(fused: bool) -> None:
    settings = ClassifierSettings(epochs=1, lr=5e-3, beta1=0.3, batch_size=8, drop_last=True)
    clf = SoftmaxClassifier(5, 6, settings, CPU, [gen(0)])
    clf.fused = fused
    linear = nn.Linear(5, 6)
    with torch.no_grad():
        linear.weight.copy_(clf.weight[0])
        linear.bias.copy_(clf.bias[0])
    opt = torch.optim.Adam(linear.parameters(), lr=5e-3, betas=(0.3, 0.999), foreach=False)
    z = torch.randn(40, 5, generator=gen(1))
    y = torch.randint(6, (40,), generator=gen(2))
    order = torch.randperm(40, generator=gen(3))
    loss = clf.train_epoch(with_ones(z)[None], y, order[None])
    losses = []
    for k in range(5):
        rows = order[k * 8 : (k + 1) * 8]
        opt.zero_grad()
        nll = nn.functional.nll_loss(torch.log_softmax(linear(z[rows]), 1), y[rows])
        nll.backward()
        opt.step()
        losses.append(nll.item())
    assert clf.steps == 5
    assert torch.allclose(clf.weight[0], linear.weight, atol=1e-6, rtol=1e-5)
    assert torch.allclose(clf.bias[0], linear.bias, atol=1e-6, rtol=1e-5)
    assert loss.item() == pytest.approx(np.mean(losses), rel=1e-5)


def test_classifier_drop_last_and_partial_batches() -> None:
    z1, y = with_ones(torch.randn(20, 3, generator=gen(1))), torch.randint(4, (20,), generator=gen(2))
    drop = SoftmaxClassifier(3, 4, ClassifierSettings(1, 1e-3, 0.5, 8, True), CPU, [gen()])
    drop.train_epoch(z1[None], y, torch.arange(20)[None])
    assert drop.steps == 2
    keep = SoftmaxClassifier(3, 4, ClassifierSettings(1, 1e-3, 0.5, 8, False), CPU, [gen()])
    keep.train_epoch(z1[None], y, torch.arange(20)[None])
    assert keep.steps == 3


def test_fused_amsgrad_matches_torch_adam() -> None:
    model_a = CrossModalVAE(tiny_spec(), CPU, gen(0))
    model_b = CrossModalVAE(tiny_spec(), CPU, gen(0))
    ours = make_optimizer(model_a.parameter_groups(1e-2, 3e-3, 5e-2), CPU)
    assert isinstance(ours, FusedAMSGrad)
    theirs = torch.optim.Adam(model_b.parameter_groups(1e-2, 3e-3, 5e-2), amsgrad=True, fused=True)
    x, a, y = torch.rand(6, 12, generator=gen(1)), torch.rand(6, 5, generator=gen(2)), torch.arange(6) % 4
    for k in range(4):
        eps = torch.randn(2, 6, 1, generator=gen(10 + k))
        perms = random_permutations(2, 6, gen(20 + k), CPU)
        for model, opt in ((model_a, ours), (model_b, theirs)):
            opt.zero_grad(set_to_none=True)
            torch.stack(model.loss_terms(x, a, y, eps, perms, "exp_logvar")).sum().backward()
            opt.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-5)
