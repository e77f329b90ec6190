"""f-VAEGAN on the GAN backbone: VAE loss terms, adaptive penalty weight, encoder, generation, learning, config, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from test_methods_learn import BUDGET

import gzslbench
from gzslbench.core.errors import ConfigError, UnknownNameError
from gzslbench.core.registry import METHODS
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.resolve import method_config, plan_specs
from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import kl_divergence, reconstruction_loss
from gzslbench.methods.gan.model import (
    FeatureVAEGAN,
    PenaltyWeight,
    VAEGANSettings,
    VAEGANSpec,
    generate_features,
    train_vaegan,
)
from gzslbench.protocol.splits import make_split

CPU = torch.device("cpu")
TINY_BUDGET: dict[str, Any] = BUDGET["f-vaegan"]  # learns synth-tiny in seconds
CHANCE = 100 / 5  # U_restricted on synth-tiny's 5 unseen classes


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**overrides: Any) -> dict[str, Any]:
    return method_config("f-vaegan", "cub", overrides={**TINY_BUDGET, **overrides})


def run_tiny(seed: int = 0, **overrides: Any) -> list[dict[str, float]]:
    """Every classifier epoch's metrics of an f-VAEGAN run on synth-tiny."""
    data = gzslbench.load_dataset("synth-tiny")
    (spec,) = plan_specs(["f-vaegan"], ["synth-tiny"], [seed], overrides={**TINY_BUDGET, **overrides}, threads=1)
    return evaluate_split(spec, data, "test", RunContext(seed, CPU))


def small_vaegan(**spec: Any) -> FeatureVAEGAN:
    shapes = {"feature_dim": 9, "attribute_dim": 4, "noise_dim": 4, "generator_hidden": 16, "critic_hidden": 16}
    return FeatureVAEGAN(
        VAEGANSpec(**{**shapes, "generator_output": "sigmoid", "encoder_hidden": 16, **spec}),
        CPU,
        torch.Generator().manual_seed(0),
    )


# ---- loss terms, penalty weight -----------------------------------------------------------------------------------


def test_kl_is_the_closed_form_summed_over_dimensions_and_averaged_over_rows():
    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=gen, dtype=torch.float64), torch.randn(5, 3, generator=gen).double()
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum() / 5
    assert float(kl_divergence(mu, logvar)) == pytest.approx(float(expected), rel=1e-12)
    assert float(kl_divergence(torch.zeros(4, 2), torch.zeros(4, 2))) == 0.0  # the prior itself


def test_reconstruction_losses_are_sums_over_features_averaged_over_rows():
    gen = torch.Generator().manual_seed(1)
    recon = torch.rand(4, 6, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    x = torch.rand(4, 6, generator=gen, dtype=torch.float64)
    bce = -(x * recon.log() + (1 - x) * (1 - recon).log()).sum() / 4
    assert float(reconstruction_loss(recon, x, "bce")) == pytest.approx(float(bce), rel=1e-12)
    assert float(reconstruction_loss(recon, x, "l2")) == pytest.approx(float((recon - x).pow(2).sum() / 4), rel=1e-12)
    with pytest.raises(ValueError, match="l1"):
        reconstruction_loss(recon, x, "l1")


def test_the_adaptive_penalty_weight_steers_the_deviation_into_its_band():
    """TF-VAEGAN's rule: x1.1 above 1.05, /1.1 below 1.001, unchanged between; the fixed weight never moves."""
    weight = PenaltyWeight(10.0, "adaptive", CPU)
    expected = 10.0
    for deviation, factor in ((2.0, 1.1), (1.02, 1.0), (0.3, 1 / 1.1), (0.0, 1 / 1.1), (1.06, 1.1)):
        weight.update(torch.tensor(deviation))
        expected *= factor
        assert weight.value() == pytest.approx(expected, rel=1e-12)
    assert weight.weight(torch.float32).dtype == torch.float32
    fixed = PenaltyWeight(10.0, "fixed", CPU)
    fixed.update(torch.tensor(5.0))
    assert fixed.weight(torch.float32) == 10.0 and not fixed.adaptive
    with pytest.raises(ValueError, match="gp_schedule"):
        PenaltyWeight(10.0, "cosine", CPU)


# ---- encoder, generation ------------------------------------------------------------------------------------------


def test_generated_features_have_the_requested_classes_counts_and_shapes():
    gan = small_vaegan()
    attributes = torch.rand(6, 4)
    features, labels = generate_features(gan, attributes, torch.tensor([5, 0, 3]), 7, torch.Generator().manual_seed(1))
    assert features.shape == (21, 9) and labels.tolist() == [5] * 7 + [0] * 7 + [3] * 7
    assert ((features > 0) & (features < 1)).all()  # sigmoid output, as the [0, 1]-scaled features
    assert len(torch.unique(features, dim=0)) == 21  # fresh noise per row
    mu, logvar = gan.encoder(torch.rand(5, 9), torch.rand(5, 4))
    assert mu.shape == logvar.shape == (5, 4)  # the latent code is the generator's noise


def _train_tiny(**overrides: Any) -> tuple[FeatureVAEGAN, dict[str, torch.Tensor], RunContext]:
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = tiny_config(epochs=2, **overrides)
    x, y, att = (torch.as_tensor(a) for a in (split.train_x, split.train_y, split.attributes))
    ctx = RunContext(0, CPU)
    gan = FeatureVAEGAN(VAEGANSpec.from_config(config, x.shape[1], att.shape[1]), CPU, ctx.generator(0))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    train_vaegan(gan, x, y, att, VAEGANSettings.from_config(config), ctx, ctx.generator(2))
    return gan, before, ctx


def test_the_encoder_generator_and_critic_all_train():
    gan, before, ctx = _train_tiny()
    for name, value in gan.state_dict().items():
        if name != "critic.out.bias":  # a WGAN critic's output bias has no gradient: both scores shift alike
            assert not torch.equal(value, before[name]), name  # encoder.*, generator.*, critic.*
    assert all(p.requires_grad for p in gan.critic.parameters())  # handed back trainable
    rows = [r for r in ctx.history if r["stage"] == "gan"]
    assert [r["epoch"] for r in rows] == [1, 2]
    expected = {"critic_loss", "wasserstein", "gradient_penalty", "generator_loss", "adversarial", "reconstruction"}
    assert expected | {"kl", "gp_weight"} <= set(rows[0])
    assert rows[-1]["gp_weight"] != 10.0  # the adaptive weight moved


def test_without_vae_terms_and_with_prior_noise_the_encoder_gets_no_signal():
    """The encoder only enters the loss through the VAE terms and the encoded noise: off, it stays as initialised."""
    gan, before, ctx = _train_tiny(
        reconstruction_weight=0.0, kl_weight=0.0, adversarial_noise="prior", gp_schedule="fixed"
    )
    for name, value in gan.state_dict().items():
        if name != "critic.out.bias":
            assert torch.equal(value, before[name]) == name.startswith("encoder."), name
    assert "gp_weight" not in ctx.history[0]  # a fixed weight is not logged


# ---- the method ---------------------------------------------------------------------------------------------------


def test_f_vaegan_learns_the_unseen_classes_from_generated_features():
    """Trained, U and H far above the untrained generator's (epochs=0): unseen accuracy comes from generation."""
    learned = run_tiny()[-1]
    untrained = run_tiny(epochs=0)[-1]
    assert learned["U_restricted"] > 2.5 * CHANCE, learned
    assert learned["U"] > untrained["U"] + 20 and learned["H"] > untrained["H"] + 15, (learned, untrained)


@pytest.mark.parametrize(
    "change",
    [
        {"adversarial_weight": 0.0},  # the GAN term off: a conditional VAE
        {"kl_weight": 0.0},
        {"reconstruction_loss": "l2"},
        {"gp_schedule": "fixed"},
        {"adversarial_noise": "prior"},
    ],
)
def test_a_named_change_changes_the_result(change):
    def metrics(**overrides: Any) -> list[tuple[float, float, float]]:
        return [(r["H"], r["U"], r["S"]) for r in run_tiny(epochs=10, cls_epochs=5, **overrides)]

    assert metrics() != metrics(**change), change


def test_a_run_repeats_itself_and_records_its_stages():
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = tiny_config(epochs=2, cls_epochs=2)
    first, second = RunContext(5, CPU), RunContext(5, CPU)
    a = list(METHODS.get("f-vaegan")().predict(split, config, first))
    b = list(METHODS.get("f-vaegan")().predict(split, config, second))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.seen, y.seen) and torch.equal(x.unseen, y.unseen)
    assert [(r["stage"], r["epoch"]) for r in first.history] == [
        ("gan", 1),
        ("gan", 2),
        ("classifier", 1),
        ("classifier", 2),
    ]
    assert {"gan_s", "gan_epoch_s", "generate_s", "classifier_s"} <= set(first.timings)
    assert "pretrain_s" not in first.timings  # no classification loss, no pre-trained classifier


# ---- config -------------------------------------------------------------------------------------------------------


def test_per_dataset_defaults_follow_the_tfvaegan_scripts():
    cls = METHODS.get("f-vaegan")
    keys = ("epochs", "lr", "cls_lr", "syn_num", "critic_weight", "adversarial_weight", "adversarial_noise")
    awa = (120, 1e-5, 1e-3, 1800, 10.0, 10.0, "encoded")  # run_awa_tfvaegan.py (AWA2)
    expected = {
        "cub": (300, 1e-4, 1e-3, 300, 10.0, 10.0, "encoded"),
        "sun": (400, 1e-3, 5e-4, 400, 1.0, 1.0, "encoded"),
        "flo": (500, 1e-4, 1e-3, 1200, 10.0, 10.0, "prior"),
        "awa2": awa,
        "awa1": awa,
        "apy": awa,
    }
    for dataset, values in expected.items():
        config = method_config("f-vaegan", dataset)
        assert tuple(config[k] for k in keys) == values, dataset
        fixed = ("batch_size", "critic_iters", "gp_weight", "gp_schedule", "encoder_beta1", "cls_epochs", "noise_size")
        assert tuple(config[k] for k in fixed) == (64, 5, 10.0, "adaptive", 0.9, 25, 0)
    assert cls.defaults_for("awa1")[1]["dataset"] == "awa2" and "no AWA1 script" in cls.defaults_for("awa1")[1]["note"]
    assert set(cls.search_space_for("awa1")) == {"adversarial_weight", "syn_num"}
    assert cls.search_space_for("sun")["adversarial_weight"] == [0.1, 1.0, 10.0]


def test_config_refuses_what_the_reference_cannot_run():
    for key, value in (
        ("gp_schedule", "cosine"),
        ("adversarial_noise", "uniform"),
        ("reconstruction_loss", "l1"),
        ("critic_weight", 0.0),
        ("kl_weight", -1.0),
    ):
        with pytest.raises(ConfigError, match=key):
            method_config("f-vaegan", "cub", overrides={key: value})
    with pytest.raises(UnknownNameError, match="cls_weight"):
        method_config("f-vaegan", "cub", overrides={"cls_weight": 0.01})  # f-CLSWGAN's key, not f-VAEGAN's
    with pytest.raises(ValueError, match="cls_batch_size"):
        tiny_config(syn_num=0)


def run_two_tiny_seeds(invoke, tmp_path: Path, method: str, *settings: str) -> None:
    """``gzslbench run`` of two seeds of ``method`` on synth-tiny for 2 epochs with ``settings``: both records ok."""
    options = [arg for setting in ("epochs=2", "cls_epochs=2", *settings) for arg in ("--set", setting)]
    common = ("-d", "synth-tiny", "--seeds", "2", "--threads", "1", "--n-jobs", "1", "-q")
    result = invoke("run", "-m", method, *common, *options)
    assert result.exit_code == 0, result.output
    records = sorted((tmp_path / "results").rglob("*.json"))
    runs = [json.loads(p.read_text()) for p in records if p.name.startswith("seed")]
    assert sorted(r["seed"] for r in runs) == [0, 1] and all(r["status"] == "ok" for r in runs)
    for record in runs:
        assert record["method"] == method and record["config"]["epochs"] == 2
        assert all(math.isfinite(record["metrics"][mode]["H"]) for mode in ("last", "oracle"))


def assert_listed_and_shown(invoke, method: str, lines: dict[str, tuple[str, ...]]) -> None:
    """``gzslbench list methods`` names ``method``, and ``config -m method -d D`` shows each of ``lines[D]``."""
    assert method in invoke("list", "methods").output
    for dataset, expected in lines.items():
        shown = invoke("config", "-m", method, "-d", dataset)
        assert shown.exit_code == 0 and all(line in shown.output for line in expected), shown.output


def test_the_cli_runs_f_vaegan_end_to_end(invoke, tmp_path: Path):
    widths = ("generator_hidden=64", "critic_hidden=64", "encoder_hidden=64")
    run_two_tiny_seeds(invoke, tmp_path, "f-vaegan", *widths, "syn_num=20")
    assert_listed_and_shown(
        invoke, "f-vaegan", {"awa1": ("awa2 settings for awa1", "epochs = 120", "gp_schedule = 'adaptive'")}
    )
