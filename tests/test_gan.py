"""The feature-generating GAN family (f-CLSWGAN): losses, the frozen classifier, generation, learning, config."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from test_methods_learn import BUDGET

import gzslbench
import gzslbench.methods.gan.method as gan_method
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import METHODS
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.resolve import method_config, plan_specs
from gzslbench.methods.base import RunContext, TrainingDiverged
from gzslbench.methods.gan.classifier import BatchStream, SoftmaxSettings, pretrain_classifier
from gzslbench.methods.gan.losses import critic_loss, critic_step_gradients, gradient_penalty
from gzslbench.methods.gan.model import FeatureGAN, GANSettings, GANSpec, generate_features, train_gan
from gzslbench.methods.gan.parts import Critic, init_normal_
from gzslbench.protocol.splits import make_split

CPU = torch.device("cpu")
TINY_BUDGET: dict[str, Any] = BUDGET["f-clswgan"]  # learns synth-tiny in seconds
CHANCE = 100 / 5  # U_restricted on synth-tiny's 5 unseen classes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_split():
    return make_split(gzslbench.load_dataset("synth-tiny"))


def tiny_config(**overrides: Any) -> dict[str, Any]:
    return method_config("f-clswgan", "cub", overrides={**TINY_BUDGET, **overrides})


def run_tiny(seed: int = 0, **overrides: Any) -> dict[str, float]:
    """The last classifier epoch's metrics of an f-CLSWGAN run on synth-tiny (shuffled labels: test_methods_learn)."""
    data = gzslbench.load_dataset("synth-tiny")
    (spec,) = plan_specs(["f-clswgan"], ["synth-tiny"], [seed], overrides={**TINY_BUDGET, **overrides}, threads=1)
    return evaluate_split(spec, data, "test", RunContext(seed, CPU))[-1]


# ---- losses -------------------------------------------------------------------------------------------------------


def test_gradient_penalty_of_a_linear_critic_is_its_closed_form():
    """D(x, a) = x.w + a.u has input gradient w at every point: the penalty is lambda (||w|| - 1)^2 whatever alpha."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=gen, dtype=torch.float64, requires_grad=True)
    u = torch.randn(3, generator=gen, dtype=torch.float64)
    real, fake = (torch.rand(4, 6, generator=gen, dtype=torch.float64) for _ in range(2))
    att, alpha = (
        torch.rand(4, 3, generator=gen, dtype=torch.float64),
        torch.rand(4, 1, generator=gen, dtype=torch.float64),
    )
    penalty = gradient_penalty(lambda x, a: x @ w + a @ u, real, fake, att, alpha, 10.0)
    norm = float(w.detach().norm())
    assert float(penalty.detach()) == pytest.approx(10.0 * (norm - 1.0) ** 2, rel=1e-12)
    (grad,) = torch.autograd.grad(penalty, w)  # create_graph: the penalty trains the critic
    assert torch.allclose(grad, 20.0 * (norm - 1.0) * w.detach() / norm, rtol=1e-12)


def test_gradient_penalty_of_the_critic_in_its_linear_region():
    """With every hidden unit active the critic is linear in x: grad_x D = W_x w2 for every row."""
    critic = Critic(5, 2, 4, CPU).double()
    init_normal_(critic, torch.Generator().manual_seed(1), std=0.3)
    with torch.no_grad():
        critic.hidden.bias.fill_(100.0)  # pre-activations far above 0 for inputs in [0, 1)
    real, fake, att = torch.rand(3, 5, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64), torch.rand(3, 2)
    alpha = torch.rand(3, 1, dtype=torch.float64)
    input_grad = critic.hidden.weight_t[:5].detach() @ critic.out.weight_t[:, 0].detach()
    expected = 10.0 * (float(input_grad.norm()) - 1.0) ** 2
    penalty = gradient_penalty(critic, real, fake, att.double(), alpha, 10.0).detach()
    assert float(penalty) == pytest.approx(expected, rel=1e-12)


def test_the_hand_derived_critic_step_equals_autograds_double_backward():
    """critic_step_gradients writes the gradients of critic_loss + gradient_penalty, LeakyReLU kinks included."""
    critic = Critic(7, 3, 11, CPU).double()
    init_normal_(critic, torch.Generator().manual_seed(2), std=0.5)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        critic.hidden.bias.normal_(generator=gen)  # about half the units negative
    real, fake = (
        torch.rand(5, 7, generator=gen, dtype=torch.float64),
        torch.rand(5, 7, generator=gen, dtype=torch.float64),
    )
    att, alpha = (
        torch.rand(5, 3, generator=gen, dtype=torch.float64),
        torch.rand(5, 1, generator=gen, dtype=torch.float64),
    )
    penalty = gradient_penalty(critic, real, fake, att, alpha, 10.0)
    loss, wasserstein = critic_loss(critic(real, att), critic(fake, att), penalty)
    expected = torch.autograd.grad(loss, list(critic.parameters()))
    step = critic_step_gradients(critic, real, fake, att, alpha, 10.0)
    assert float(step.loss) == pytest.approx(float(loss.detach()), rel=1e-12)
    assert float(step.wasserstein) == pytest.approx(float(wasserstein.detach()), rel=1e-12)
    assert float(step.penalty) == pytest.approx(float(penalty.detach()), rel=1e-12)
    for (name, param), grad in zip(critic.named_parameters(), expected, strict=True):
        assert torch.allclose(param.grad, grad, rtol=1e-10, atol=1e-12), name


# ---- classifier, generation ---------------------------------------------------------------------------------------


def test_batch_stream_visits_every_row_once_per_pass_across_batch_boundaries():
    stream = BatchStream(10, 4, torch.Generator().manual_seed(0), CPU)
    rows = stream.take(5).reshape(-1)  # 20 rows = two passes; batch 3 straddles them
    assert rows.shape == (20,)
    assert sorted(rows[:10].tolist()) == list(range(10)) and sorted(rows[10:].tolist()) == list(range(10))
    assert stream.take(1).shape == (1, 4)


def test_the_pretrained_classifier_stays_frozen_while_the_gan_trains():
    split = tiny_split()
    config = tiny_config(epochs=2)
    x, y = torch.as_tensor(split.train_x), torch.as_tensor(split.train_y)
    seen_y = torch.as_tensor(np.searchsorted(split.seen, split.train_y))
    ctx = RunContext(0, CPU)
    classifier = pretrain_classifier(
        x, seen_y, len(split.seen), SoftmaxSettings.pretrained(config), ctx, ctx.generator(1)
    )
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    assert not any(p.requires_grad for p in classifier.parameters())
    gan = FeatureGAN(GANSpec.from_config(config, x.shape[1], split.attributes.shape[1]), CPU, ctx.generator(0))
    generator_before = [p.detach().clone() for p in gan.generator.parameters()]
    attributes = torch.as_tensor(split.attributes)
    train_gan(gan, classifier, x, y, seen_y, attributes, GANSettings.from_config(config), ctx, ctx.generator(2))
    for key, value in classifier.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None and not p.requires_grad for p in classifier.parameters())
    assert not any(torch.equal(a, b) for a, b in zip(generator_before, gan.generator.parameters(), strict=True))
    assert all(p.requires_grad for p in gan.critic.parameters())  # handed back trainable
    gan_rows = [r for r in ctx.history if r["stage"] == "gan"]
    assert [r["epoch"] for r in gan_rows] == [1, 2]
    assert {"critic_loss", "generator_loss", "classification", "wasserstein", "gradient_penalty"} <= set(gan_rows[0])


def test_generated_features_have_the_requested_classes_counts_and_shapes():
    spec = GANSpec(feature_dim=9, attribute_dim=4, noise_dim=4, generator_hidden=16, critic_hidden=16)
    gan = FeatureGAN(spec, CPU, torch.Generator().manual_seed(0))
    attributes = torch.rand(6, 4)
    features, labels = generate_features(gan, attributes, torch.tensor([5, 0, 3]), 7, torch.Generator().manual_seed(1))
    assert features.shape == (21, 9) and labels.tolist() == [5] * 7 + [0] * 7 + [3] * 7
    assert (features >= 0).all()  # ReLU output, like ResNet features
    assert len(torch.unique(features, dim=0)) == 21  # fresh noise per row
    small_chunks, _ = generate_features(
        gan, attributes, torch.tensor([5, 0, 3]), 7, torch.Generator().manual_seed(1), 4
    )
    assert torch.allclose(small_chunks, features, rtol=0, atol=1e-6)  # the same noise, whatever the chunk size


def test_the_final_classifier_trains_on_real_seen_plus_syn_num_generated_unseen(monkeypatch):
    seen_args = {}
    real_stage = gan_method.train_final_classifier

    def spy(train_x, train_y, *args, **kwargs):
        seen_args.update(train_x=train_x, train_y=train_y, settings=args[3])
        return real_stage(train_x, train_y, *args, **kwargs)

    monkeypatch.setattr(gan_method, "train_final_classifier", spy)
    split = tiny_split()
    method = METHODS.get("f-clswgan")()
    scores = list(method.predict(split, tiny_config(epochs=1, cls_epochs=3, syn_num=11), RunContext(0, CPU)))
    assert [s.epoch for s in scores] == [1, 2, 3]
    assert scores[0].seen.shape == (len(split.test_seen_y), split.n_classes)
    assert scores[0].unseen.shape == (len(split.test_unseen_y), split.n_classes)
    n_train = len(split.train_y)
    y = seen_args["train_y"].numpy()
    assert seen_args["train_x"].shape == (n_train + 11 * len(split.unseen), split.feature_dim)
    assert np.array_equal(y[:n_train], split.train_y)
    counts = np.bincount(y[n_train:], minlength=split.n_classes)
    assert counts[split.unseen].tolist() == [11] * len(split.unseen) and counts.sum() == 11 * len(split.unseen)
    assert seen_args["settings"].batch_size == 11  # cls_batch_size=0: the reference's batch = syn_num


# ---- the method ---------------------------------------------------------------------------------------------------


def test_f_clswgan_learns_the_unseen_classes_from_generated_features():
    """U_restricted far above chance; without generated features (syn_num=0) no unseen test image is recognised."""
    learned = run_tiny()
    assert learned["U_restricted"] > 2.5 * CHANCE, learned
    assert learned["U"] > 25 and learned["H"] > 20, learned
    without = run_tiny(syn_num=0, cls_batch_size=30)
    assert without["U"] == 0.0, without
    assert learned["U"] > without["U"] + 25 and learned["U_restricted"] > without["U_restricted"] + 25


def test_a_run_repeats_itself_and_logs_every_stage():
    split = tiny_split()
    config = tiny_config(epochs=2, cls_epochs=2, pretrain_epochs=2)
    first, second = RunContext(5, CPU), RunContext(5, CPU)
    a = list(METHODS.get("f-clswgan")().predict(split, config, first))
    b = list(METHODS.get("f-clswgan")().predict(split, config, second))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.seen, y.seen) and torch.equal(x.unseen, y.unseen)
    stages = [(r["stage"], r["epoch"]) for r in first.history]
    assert stages == [("pretrain", 1), ("pretrain", 2), ("gan", 1), ("gan", 2), ("classifier", 1), ("classifier", 2)]
    assert {"pretrain_s", "gan_s", "gan_epoch_s", "generate_s", "classifier_s"} <= set(first.timings)


def test_the_generator_minimises_the_adversarial_loss_plus_cls_weight_times_the_classifiers_nll():
    """The logged terms add up with the weight's sign, and a larger weight drives the classifier's NLL down."""
    nll = {}
    for weight in (0.0, 10.0):
        ctx = RunContext(0, CPU)
        list(METHODS.get("f-clswgan")().predict(tiny_split(), tiny_config(cls_weight=weight, cls_epochs=1), ctx))
        rows = [r for r in ctx.history if r["stage"] == "gan"]
        for row in rows:
            expected = row["adversarial"] + weight * row["classification"]
            assert row["generator_loss"] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        nll[weight] = rows[-1]["classification"]
    assert nll[10.0] < 0.5 * nll[0.0], nll


def test_a_non_finite_loss_stops_the_run_as_diverged():
    split = tiny_split()
    bad = split.train_x.copy()
    bad[0, 0] = np.inf
    broken = dataclasses.replace(split, train_x=bad)
    with pytest.raises(TrainingDiverged, match="gan epoch 1: non-finite"):
        list(METHODS.get("f-clswgan")().predict(broken, tiny_config(pretrain_epochs=0, epochs=1), RunContext(0, CPU)))


# ---- config -------------------------------------------------------------------------------------------------------


def test_per_dataset_defaults_follow_the_reference_scripts():
    cls = METHODS.get("f-clswgan")
    expected = {
        "cub": (56, 1e-4, 0.01, 300),
        "sun": (40, 2e-4, 0.01, 400),
        "awa1": (30, 1e-5, 0.01, 1800),
        "flo": (80, 1e-4, 0.1, 1200),
        "awa2": (30, 1e-5, 0.01, 1800),  # AWA1's script: the nearest
        "apy": (30, 1e-5, 0.01, 1800),
    }
    for dataset, values in expected.items():
        config = method_config("f-clswgan", dataset)
        assert tuple(config[k] for k in ("epochs", "lr", "cls_weight", "syn_num")) == values, dataset
        fixed = ("batch_size", "critic_iters", "gp_weight", "cls_epochs")
        assert tuple(config[k] for k in fixed) == (64, 5, 10, 25)
    assert cls.defaults_for("awa2")[1]["dataset"] == "awa1" and "no script" in cls.defaults_for("awa2")[1]["note"]
    assert set(cls.search_space_for("awa2")) == {"cls_weight", "syn_num"}


def test_config_refuses_what_the_reference_cannot_run():
    with pytest.raises(ConfigError, match="epochs"):
        method_config("f-clswgan", "cub", overrides={"epochs": 1_000_000})
    with pytest.raises(ConfigError, match="generator_batch"):
        method_config("f-clswgan", "cub", overrides={"generator_batch": "random"})
    with pytest.raises(ValueError, match="cls_batch_size"):
        tiny_config(syn_num=0)
    assert tiny_config(noise_size=0)["noise_size"] == 0  # 0: the attribute size


def test_generator_batch_fresh_draws_its_own_batch_and_still_learns_to_run():
    split = tiny_split()
    config = tiny_config(epochs=1, cls_epochs=1, pretrain_epochs=1, generator_batch="fresh")
    (scores,) = METHODS.get("f-clswgan")().predict(split, config, RunContext(0, CPU))
    assert torch.isfinite(scores.seen).all() and torch.isfinite(scores.unseen).all()
