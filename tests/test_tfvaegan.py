"""TF-VAEGAN on the GAN backbone: decoder loss, feedback, decoder features, equivalence to f-VAEGAN, config, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from test_methods_learn import BUDGET
from test_vaegan import assert_listed_and_shown, run_two_tiny_seeds

import gzslbench
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import METHODS
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.resolve import method_config, plan_specs
from gzslbench.methods.base import RunContext
from gzslbench.methods.gan import method as gan_method
from gzslbench.methods.gan.losses import weighted_l1
from gzslbench.methods.gan.model import (
    FeatureTFVAEGAN,
    TFVAEGANSettings,
    TFVAEGANSpec,
    generate_features,
    train_tfvaegan,
)
from gzslbench.protocol.splits import make_split

CPU = torch.device("cpu")
TINY_BUDGET: dict[str, Any] = BUDGET["tf-vaegan"]  # learns synth-tiny in seconds
CHANCE = 100 / 5  # U_restricted on synth-tiny's 5 unseen classes
# The three additions switched off: what is left is f-VAEGAN.
ALL_OFF: dict[str, Any] = {"decoder_weight": 0.0, "feedback_loop": 1, "decoder_features": "none"}


@pytest.fixture(autouse=True)
def one_thread():
    """Small networks run fastest on one thread, the more so on a shared CPU (as the protocol runs them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_tiny(method: str = "tf-vaegan", seed: int = 0, **overrides: Any) -> list[dict[str, float]]:
    """Every classifier epoch's metrics of a run on synth-tiny at the tiny budget."""
    data = gzslbench.load_dataset("synth-tiny")
    budget = BUDGET[method]
    (spec,) = plan_specs([method], ["synth-tiny"], [seed], overrides={**budget, **overrides}, threads=1)
    return evaluate_split(spec, data, "test", RunContext(seed, CPU))


def metrics(rows: list[dict[str, float]]) -> list[tuple[float, float, float]]:
    return [(r["H"], r["U"], r["S"]) for r in rows]


def small_tfvaegan(generation_weight: float = 0.0, decoder_features: str = "none") -> FeatureTFVAEGAN:
    spec = TFVAEGANSpec(
        feature_dim=9,
        attribute_dim=4,
        noise_dim=4,
        generator_hidden=16,
        critic_hidden=16,
        generator_output="sigmoid",
        encoder_hidden=16,
        decoder_hidden=12,
    )
    return FeatureTFVAEGAN(spec, CPU, torch.Generator().manual_seed(0), generation_weight, decoder_features)


# ---- loss, networks -----------------------------------------------------------------------------------------------


def test_weighted_l1_weights_each_error_by_its_share_of_the_row_norm():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen).double()
    d = pred - target
    expected = sum(float((d[i].abs() ** 3).sum() / d[i].norm()) for i in range(5)) / 5
    assert float(weighted_l1(pred, target)) == pytest.approx(expected, rel=1e-12)
    assert float(weighted_l1(target, target)) == 0.0  # no NaN for an exact row


def test_the_decoder_maps_features_to_unit_embeddings_and_exposes_its_hidden_layer():
    gan = small_tfvaegan()
    a_hat, h = gan.decoder(torch.rand(6, 9))
    assert a_hat.shape == (6, 4) and h.shape == (6, 12)
    assert torch.allclose(a_hat.norm(dim=1), torch.ones(6))
    assert gan.feedback(h).shape == (6, 16)  # the generator's hidden width


def test_feedback_is_used_when_features_are_generated():
    attributes, classes = torch.rand(6, 4), torch.tensor([5, 0, 3])

    def generated(weight: float) -> torch.Tensor:
        return generate_features(small_tfvaegan(weight), attributes, classes, 7, torch.Generator().manual_seed(1))[0]

    plain = generate_features(small_tfvaegan(0.0), attributes, classes, 7, torch.Generator().manual_seed(1))[0]
    gan = small_tfvaegan(0.0)
    noise = gan.noise(21, torch.Generator().manual_seed(1), CPU)
    assert torch.equal(plain, gan.generator(noise, attributes[classes.repeat_interleave(7)]))  # weight 0: no feedback
    # small at initialisation (weights N(0, 0.02^2)), but there
    assert not torch.equal(generated(0.0), generated(1.0))
    assert not torch.equal(generated(1.0), generated(0.5))


@pytest.mark.parametrize(
    ("mode", "extra"), [("embedding_hidden", 4 + 12), ("hidden", 12), ("none", 0)]
)  # fmt: skip
def test_discriminative_features_concatenate_the_decoders_outputs(mode, extra):
    gan = small_tfvaegan(decoder_features=mode)
    x = torch.rand(10, 9)
    features = gan.classifier_features(x, chunk=3)  # chunked as for large splits
    assert features.shape == (10, 9 + extra) == (10, gan.classifier_width())
    assert torch.equal(features[:, :9], x)
    if mode != "none":  # the chunks' own products: a BLAS may round a product of 3 rows unlike one of 10
        assert torch.equal(features[:, -12:], torch.cat([gan.decoder(x[i : i + 3])[1] for i in range(0, 10, 3)]))


# ---- training -----------------------------------------------------------------------------------------------------


def _train_tiny(**overrides: Any) -> tuple[FeatureTFVAEGAN, dict[str, torch.Tensor], RunContext]:
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = method_config("tf-vaegan", "cub", overrides={**TINY_BUDGET, "epochs": 2, **overrides})
    x, y, att = (torch.as_tensor(a) for a in (split.train_x, split.train_y, split.attributes))
    ctx = RunContext(0, CPU)
    gan = FeatureTFVAEGAN(TFVAEGANSpec.from_config(config, x.shape[1], att.shape[1]), CPU, ctx.generator(0))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    train_tfvaegan(gan, x, y, att, TFVAEGANSettings.from_config(config), ctx, ctx.generator(2))
    return gan, before, ctx


def _changed(gan: FeatureTFVAEGAN, before: dict[str, torch.Tensor], prefix: str) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in gan.state_dict().items() if k.startswith(prefix))


def test_decoder_and_feedback_module_train_jointly_and_are_logged():
    gan, before, ctx = _train_tiny()
    assert _changed(gan, before, "decoder.") and _changed(gan, before, "feedback.")
    assert all(p.requires_grad for p in gan.parameters())  # handed back trainable
    rows = [r for r in ctx.history if r["stage"] == "gan"]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"decoder_real", "decoder_generated", "reconstruction", "kl", "gp_weight"} <= set(rows[0])


def test_switched_off_parts_stay_as_initialised():
    gan, before, ctx = _train_tiny(**ALL_OFF)
    assert not _changed(gan, before, "decoder.") and not _changed(gan, before, "feedback.")
    assert "decoder_real" not in ctx.history[0]
    gan, before, _ = _train_tiny(freeze_decoder=True, feedback_loop=1)  # trained on real features only
    assert _changed(gan, before, "decoder.") and not _changed(gan, before, "feedback.")


# ---- the method ---------------------------------------------------------------------------------------------------


def test_tf_vaegan_learns_the_unseen_classes_from_generated_features():
    """Trained, U and H far above the untrained generator's (epochs=0): unseen accuracy comes from generation."""
    learned = run_tiny()[-1]
    untrained = run_tiny(epochs=0)[-1]
    assert learned["U_restricted"] > 2.5 * CHANCE, learned
    assert learned["U"] > untrained["U"] + 20 and learned["H"] > untrained["H"] + 15, (learned, untrained)


@pytest.mark.parametrize("seed", [0, 1])
def test_with_its_three_additions_off_it_is_f_vaegan(seed):
    short = {"epochs": 10, "cls_epochs": 5}
    assert metrics(run_tiny("tf-vaegan", seed, **short, **ALL_OFF)) == metrics(run_tiny("f-vaegan", seed, **short))


@pytest.mark.parametrize(
    "change",
    [
        {"decoder_weight": 1.0},  # the semantic decoder alone (at 0.01 it moves no prediction in 10 tiny epochs)
        {"feedback_loop": 2},  # feedback alone, from an untrained decoder
        {"decoder_features": "hidden"},  # discriminative features alone, from an untrained decoder
    ],
)
def test_each_addition_switched_on_changes_the_result(change):
    short = {"epochs": 10, "cls_epochs": 5}
    assert metrics(run_tiny(**short, **ALL_OFF)) != metrics(run_tiny(**short, **{**ALL_OFF, **change})), change


@pytest.mark.parametrize(
    ("base", "change"),
    [
        ({}, {"freeze_decoder": True}),
        ({}, {"feedback_generation_weight": 0.0}),
        ({}, {"decoder_features": "hidden"}),
        ({"adversarial_noise": "prior"}, {"prior_feedback": "own"}),
    ],
)
def test_a_named_switch_changes_the_result(base, change):
    short = {"epochs": 6, "cls_epochs": 5}
    assert metrics(run_tiny(**short, **base)) != metrics(run_tiny(**short, **base, **change)), change


@pytest.mark.parametrize("mode", ["embedding_hidden", "hidden"])
def test_the_final_classifier_sees_features_widened_by_the_decoder(monkeypatch, mode):
    """Its input width is feature_dim + decoder hidden (+ attribute_dim with the reference's a_hat), train and test."""
    widths: list[tuple[int, ...]] = []
    original = gan_method.train_final_classifier

    def spy(train_x, train_y, test_seen_x, test_unseen_x, *args):
        widths.append((train_x.shape[1], test_seen_x.shape[1], test_unseen_x.shape[1]))
        return original(train_x, train_y, test_seen_x, test_unseen_x, *args)

    monkeypatch.setattr(gan_method, "train_final_classifier", spy)
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    overrides = {**TINY_BUDGET, "epochs": 1, "cls_epochs": 1, "decoder_features": mode}
    config = method_config("tf-vaegan", "cub", overrides=overrides)
    list(METHODS.get("tf-vaegan")().predict(split, config, RunContext(0, CPU)))
    width = split.train_x.shape[1] + config["decoder_hidden"]
    if mode == "embedding_hidden":
        width += split.attributes.shape[1]
    assert widths == [(width, width, width)]


# ---- config -------------------------------------------------------------------------------------------------------


def test_per_dataset_defaults_follow_the_tfvaegan_scripts():
    cls = METHODS.get("tf-vaegan")
    keys = ("epochs", "lr", "syn_num", "adversarial_noise", "decoder_weight", "freeze_decoder")
    keys += ("feedback_weight", "feedback_generation_weight", "feedback_lr", "decoder_lr")
    awa = (120, 1e-5, 1800, "encoded", 0.1, True, 0.01, 0.01, 1e-4, 1e-4)  # run_awa_tfvaegan.py (AWA2)
    expected = {
        "cub": (300, 1e-4, 300, "encoded", 0.01, False, 1.0, 1.0, 1e-5, 1e-4),
        "sun": (400, 1e-3, 400, "encoded", 0.01, False, 0.1, 0.01, 1e-4, 1e-4),
        "flo": (500, 1e-4, 1200, "prior", 0.01, False, 0.5, 0.5, 1e-5, 1e-4),
        "awa2": awa,
        "awa1": awa,
        "apy": awa,
    }
    for dataset, values in expected.items():
        config = method_config("tf-vaegan", dataset)
        assert tuple(config[k] for k in keys) == values, dataset
        fixed = ("feedback_loop", "decoder_hidden", "decoder_features", "prior_feedback", "gp_schedule")
        assert tuple(config[k] for k in fixed) == (2, 4096, "embedding_hidden", "reconstruction", "adaptive")
    assert cls.defaults_for("awa1")[1]["dataset"] == "awa2" and "no AWA1 script" in cls.defaults_for("awa1")[1]["note"]
    assert set(cls.search_space) == {"decoder_weight", "feedback_generation_weight"}


def test_config_refuses_what_the_reference_cannot_run():
    for key, value in (
        ("feedback_loop", 3),
        ("decoder_features", "attributes"),
        ("prior_feedback", "critic"),
        ("freeze_decoder", "yes"),
        ("feedback_weight", -1.0),
        ("decoder_weight", -0.1),
        ("decoder_lr", 0.0),
    ):
        with pytest.raises(ConfigError, match=key):
            method_config("tf-vaegan", "cub", overrides={key: value})


def test_the_cli_runs_tf_vaegan_end_to_end(invoke, tmp_path: Path):
    widths = ("generator_hidden=64", "critic_hidden=64", "encoder_hidden=64", "decoder_hidden=64")
    run_two_tiny_seeds(invoke, tmp_path, "tf-vaegan", *widths, "syn_num=20")
    assert_listed_and_shown(
        invoke, "tf-vaegan", {"cub": ("feedback_weight = 1.0",), "awa1": ("freeze_decoder = True",)}
    )
