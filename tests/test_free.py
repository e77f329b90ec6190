"""FREE on the GAN backbone: the centre loss, the refiner's training, refined features, the method, config and CLI."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from test_methods_learn import BUDGET
from test_tfvaegan import CHANCE, metrics, run_tiny
from test_vaegan import assert_listed_and_shown, run_two_tiny_seeds

import gzslbench
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import METHODS
from gzslbench.execution.resolve import method_config
from gzslbench.methods.base import RunContext
from gzslbench.methods.gan import method as gan_method
from gzslbench.methods.gan.free import FeatureFREE, FREEExtension, FREESettings, FREESpec, train_free
from gzslbench.methods.gan.losses import triplet_center_loss
from gzslbench.methods.gan.parts import FeatureRefiner
from gzslbench.protocol.splits import make_split
from gzslbench.reports.plots import GAN_TERMS

CPU = torch.device("cpu")
TINY_BUDGET: dict[str, Any] = BUDGET["free"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the centre loss ----------------------------------------------------------------------------------------------


def _centre_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    embedding = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    centers = torch.tensor([[0.0, 1.0], [2.0, 2.0], [-1.0, 0.0]])
    return embedding, torch.tensor([0, 1, 2]), centers


def test_centre_loss_with_the_nearest_other_centre_matches_a_hand_computation():
    embedding, labels, centers = _centre_example()
    # squared distances: row 0 to (0,1), (2,2), (-1,0): 1, 8, 1; row 1: 2, 1, 8; row 2: 13, 10, 17
    own, nearest_other = [1.0, 1.0, 17.0], [1.0, 2.0, 10.0]
    margin, w = 3.0, 0.8
    expected = sum(max(0.0, margin + w * d - (1 - w) * o) for d, o in zip(own, nearest_other, strict=True)) / 3
    loss = triplet_center_loss(embedding, labels, centers, margin, w, "nearest", torch.Generator())
    assert loss.item() == pytest.approx(expected)


def test_centre_loss_draws_the_release_random_class_and_its_distinct_variant():
    embedding, labels, centers = _centre_example()
    dist = torch.cdist(embedding, centers).pow(2)
    for other, low in (("random", 0), ("random_distinct", 1)):
        shift = torch.randint(low, 3, (3,), generator=torch.Generator().manual_seed(5))
        picked = dist[torch.arange(3), (labels + shift) % 3]
        expected = torch.relu(2.0 + 0.5 * dist[torch.arange(3), labels] - 0.5 * picked).sum() / 3
        loss = triplet_center_loss(embedding, labels, centers, 2.0, 0.5, other, torch.Generator().manual_seed(5))
        assert loss.item() == pytest.approx(expected.item())
    # the release's draw hits the row's own class one time in C; the distinct variant never does
    rng, many = torch.Generator().manual_seed(0), torch.zeros(3000, 2)
    labels = torch.zeros(3000, dtype=torch.long)
    far = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    same = triplet_center_loss(many, labels, far, 1.0, 0.0, "random", rng) * 3000  # rows drawing class 0 add 1
    assert 800 < same.item() < 1200
    assert triplet_center_loss(many, labels, far, 1.0, 0.0, "random_distinct", rng).item() == 0.0


# ---- the refiner and the centres in training ----------------------------------------------------------------------


def small_free(**kwargs: Any) -> FeatureFREE:
    spec = FREESpec(
        feature_dim=6,
        attribute_dim=4,
        noise_dim=4,
        generator_hidden=8,
        critic_hidden=8,
        generator_output="sigmoid",
        encoder_hidden=8,
        refiner_hidden=5,
    )
    return FeatureFREE(spec, CPU, torch.Generator().manual_seed(0), 3, **kwargs)


def _settings(**overrides: Any) -> FREESettings:
    config = method_config("free", "cub", overrides={**TINY_BUDGET, **overrides})
    return FREESettings.from_config(config)


def test_centre_gradients_accumulate_over_steps_as_in_the_release_unless_fresh():
    x, att = torch.rand(4, 6), torch.rand(4, 4)
    labels, rows = torch.tensor([0, 1, 2, 0]), torch.arange(4)
    grads = {}
    for mode in ("accumulated", "fresh"):
        gan = small_free()
        ext = FREEExtension(gan, _settings(center_gradients=mode), labels, torch.Generator().manual_seed(1), CPU)
        ext.auxiliary_step(rows, x, att)
        first = gan.centers.grad.clone()
        ext.auxiliary_step(rows, x, att)
        grads[mode] = (first, gan.centers.grad.clone())
    first, second = grads["fresh"]
    assert not torch.equal(first, second)  # the centres moved: the second step's gradient differs
    acc_first, acc_second = grads["accumulated"]
    assert torch.equal(acc_first, first)
    assert torch.allclose(acc_second, first + second)


def test_a_frozen_refiner_passes_the_cycle_loss_to_the_generator_without_learning_from_it():
    att = torch.rand(4, 4)
    for freeze in (True, False):
        gan = small_free()
        labels, rng = torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0)
        ext = FREEExtension(gan, _settings(freeze_refiner=freeze), labels, rng, CPU)
        before = {k: v.clone() for k, v in gan.refiner.state_dict().items()}
        fake = gan.generator(torch.randn(4, 4), att)
        loss, terms = ext.generator_terms(fake, att)
        assert len(terms) == 1 and loss.item() == pytest.approx(ext.settings.cycle_weight * terms[0].item())
        ext.zero_grad()
        gan.generator.zero_grad()
        loss.backward()
        ext.step()
        assert gan.generator.out.weight_t.grad.abs().sum() > 0  # the cycle loss trains the generator
        unchanged = all(torch.equal(v, before[k]) for k, v in gan.refiner.state_dict().items())
        assert unchanged == freeze
        assert all(p.requires_grad for p in gan.refiner.parameters())  # handed back trainable


@pytest.mark.parametrize("idle", ["momentum", "none"])
def test_a_frozen_refiner_moves_by_adams_momentum_alone_as_in_the_release_unless_none(idle: str):
    x, att = torch.rand(4, 6), torch.rand(4, 4)
    labels, rows = torch.tensor([0, 1, 2, 0]), torch.arange(4)
    gan = small_free()
    settings = _settings(freeze_refiner=True, idle_refiner_step=idle)
    ext = FREEExtension(gan, settings, labels, torch.Generator().manual_seed(1), CPU)
    ext.auxiliary_step(rows, x, att)  # R's own step on a real batch: its Adam now has momentum
    (beta1, beta2), eps, lr = ext.opt_r.param_groups[0]["betas"], ext.opt_r.param_groups[0]["eps"], settings.refiner_lr
    expected = []
    for param in gan.refiner.parameters():  # Adam's update on a zero gradient, by hand
        state = ext.opt_r.state[param]
        step = float(state["step"]) + 1
        m, v = beta1 * state["exp_avg"], beta2 * state["exp_avg_sq"]
        update = lr * (m / (1 - beta1**step)) / ((v / (1 - beta2**step)).sqrt() + eps)
        expected.append(param.detach() - update)
    before = [param.detach().clone() for param in gan.refiner.parameters()]
    loss, _ = ext.generator_terms(gan.generator(torch.randn(4, 4), att), att)
    ext.zero_grad()
    loss.backward()
    ext.step()
    after = [param.detach() for param in gan.refiner.parameters()]
    if idle == "momentum":
        assert all(torch.allclose(a, e, rtol=0, atol=1e-7) for a, e in zip(after, expected, strict=True))
        assert not all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
    else:
        assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))


def _train_tiny(**overrides: Any) -> tuple[FeatureFREE, dict[str, torch.Tensor], RunContext]:
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = method_config("free", "cub", overrides={**TINY_BUDGET, "epochs": 2, **overrides})
    x, y, att = (torch.as_tensor(a) for a in (split.train_x, split.train_y, split.attributes))
    seen = torch.as_tensor(split.seen)
    index = torch.full((len(att),), -1, dtype=torch.long)
    index[seen] = torch.arange(len(seen))
    ctx = RunContext(0, CPU)
    spec = FREESpec.from_config(config, x.shape[1], att.shape[1])
    gan = FeatureFREE(spec, CPU, ctx.generator(0), len(seen))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    train_free(gan, x, y, index[y], att, FREESettings.from_config(config), ctx, ctx.generator(2))
    return gan, before, ctx


def test_refiner_and_centres_train_and_are_logged():
    gan, before, ctx = _train_tiny()
    for prefix in ("refiner.", "centers", "encoder.", "generator.", "critic."):
        assert any(not torch.equal(v, before[k]) for k, v in gan.state_dict().items() if k.startswith(prefix)), prefix
    rows = [r for r in ctx.history if r["stage"] == "gan"]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"center", "cycle_real", "cycle_generated", "reconstruction", "kl", "gp_weight"} <= set(rows[0])
    assert set(rows[0]) - {"stage", "epoch", "gp_weight"} <= set(GAN_TERMS)  # `plot curves` draws every term
    assert all(math.isfinite(r["center"]) and r["center"] >= 0 for r in rows)
    _, _, ctx = _train_tiny(cycle_weight=0.0)
    assert "cycle_generated" not in ctx.history[0]


# ---- refined features ---------------------------------------------------------------------------------------------


def test_refined_features_are_x_hidden_and_semantic_sampled_or_mean():
    x = torch.rand(10, 6)
    sampled = small_free(feature_rng=torch.Generator().manual_seed(3))
    features = sampled.classifier_features(x)
    assert features.shape == (10, 6 + 5 + 4) == (10, sampled.classifier_width())
    mu, std, h = sampled.refiner(x)
    assert torch.equal(features[:, :6], x) and torch.allclose(features[:, 6:11], h)
    eps = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(features[:, 11:], torch.sigmoid(mu + eps * std))
    again = small_free(feature_rng=torch.Generator().manual_seed(3)).classifier_features(x, chunk=3)
    assert torch.allclose(again, features)  # chunking does not change the draw
    assert not torch.equal(sampled.classifier_features(x), features)  # a second call draws new noise
    mean = small_free(classifier_semantic="mean")
    assert torch.equal(mean.classifier_features(x), mean.classifier_features(x))
    assert torch.allclose(mean.classifier_features(x)[:, 11:], FeatureRefiner.semantic(*mean.refiner(x)[:2], None))
    assert small_free(refined_features="hidden").classifier_features(x).shape == (10, 11)
    assert torch.equal(small_free(refined_features="none").classifier_features(x), x)


def test_the_final_classifier_sees_the_refined_features(monkeypatch):
    widths: list[tuple[int, ...]] = []
    original = gan_method.train_final_classifier

    def spy(train_x, train_y, test_seen_x, test_unseen_x, *args):
        widths.append((train_x.shape[1], test_seen_x.shape[1], test_unseen_x.shape[1]))
        return original(train_x, train_y, test_seen_x, test_unseen_x, *args)

    monkeypatch.setattr(gan_method, "train_final_classifier", spy)
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = method_config("free", "cub", overrides={**TINY_BUDGET, "epochs": 1, "cls_epochs": 1})
    list(METHODS.get("free")().predict(split, config, RunContext(0, CPU)))
    width = split.train_x.shape[1] + config["refiner_hidden"] + split.attributes.shape[1]
    assert widths == [(width, width, width)]


# ---- the method ---------------------------------------------------------------------------------------------------


def test_free_learns_the_unseen_classes_from_generated_features():
    """Trained, U and H far above the untrained generator's (epochs=0): unseen accuracy comes from generation."""
    learned = run_tiny("free")[-1]
    untrained = run_tiny("free", epochs=0)[-1]
    assert learned["U_restricted"] > 2.5 * CHANCE, learned
    assert learned["U"] > untrained["U"] + 15 and learned["H"] > untrained["H"] + 15, (learned, untrained)


# Long enough for every switch to move a prediction (at 6 epochs the tiny classifier ignores the centres).
SWITCH_BUDGET = {"epochs": 20, "cls_epochs": 5}


@functools.cache
def base_metrics() -> list[tuple[float, float, float]]:
    return metrics(run_tiny("free", **SWITCH_BUDGET))


@pytest.mark.parametrize(
    "change",
    [
        {"center_weight": 0.0},
        {"cycle_weight": 0.1},
        {"center_other": "nearest"},
        {"center_gradients": "fresh"},
        {"refined_features": "none"},
        {"classifier_semantic": "mean"},
        {"passes": 1},
    ],
)
def test_a_named_switch_changes_the_result(change):
    assert base_metrics() != metrics(run_tiny("free", **SWITCH_BUDGET, **change)), change


def test_a_seed_repeats_exactly():
    short = {"epochs": 3, "cls_epochs": 3}
    assert metrics(run_tiny("free", 1, **short)) == metrics(run_tiny("free", 1, **short))


# ---- config -------------------------------------------------------------------------------------------------------


def test_per_dataset_defaults_follow_the_release_scripts():
    keys = (
        "epochs",
        "lr",
        "cls_lr",
        "critic_iters",
        "batch_size",
        "syn_num",
        "critic_weight",
        "adversarial_noise",
        "center_margin",
        "incenter_weight",
        "cycle_weight",
        "freeze_refiner",
        "center_other",
    )
    expected = {
        "cub": (501, 1e-4, 1e-3, 1, 64, 700, 10.0, "encoded", 200.0, 0.8, 0.001, False, "random"),  # run_cub.py
        "sun": (601, 2e-4, 5e-4, 1, 512, 300, 1.0, "encoded", 120.0, 0.8, 0.1, False, "random"),  # run_sun.py
        "awa1": (301, 1e-5, 1e-3, 1, 64, 4600, 10.0, "encoded", 50.0, 0.1, 0.001, True, "nearest"),  # run_awa1.py
        "awa2": (401, 1e-5, 1e-3, 1, 64, 4600, 10.0, "encoded", 50.0, 0.5, 0.001, True, "nearest"),  # run_awa2.py
        "flo": (501, 1e-4, 1e-3, 5, 256, 2400, 10.0, "prior", 200.0, 0.8, 0.001, False, "random"),  # run_flo.py
    }
    expected["apy"] = expected["awa2"]
    for dataset, values in expected.items():
        config = method_config("free", dataset)
        assert tuple(config[k] for k in keys) == values, dataset
        assert (config["passes"], config["refiner_hidden"], config["center_weight"]) == (2, 4096, 0.5)
        assert config["center_gradients"] == "accumulated" and config["classifier_semantic"] == "sampled"


@pytest.mark.parametrize(
    ("key", "value"),
    [("center_other", "farthest"), ("incenter_weight", 1.5), ("passes", 0), ("classifier_semantic", "median")],
)
def test_bad_values_are_refused(key, value):
    with pytest.raises(ConfigError, match=key):
        method_config("free", "cub", overrides={key: value})


def test_cli_runs_free_and_shows_its_config(invoke, tmp_path: Path):
    widths = ("generator_hidden=64", "critic_hidden=64", "encoder_hidden=64", "refiner_hidden=64")
    run_two_tiny_seeds(invoke, tmp_path, "free", *widths, "syn_num=20")
    assert_listed_and_shown(invoke, "free", {"cub": ("center_other = 'random'",), "awa2": ("incenter_weight = 0.5",)})
