"""End-to-end tests of the five registered cross-modal VAE methods on the tiny dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from conftest import make_tiny_data

from gzslbench.core.registry import METHODS
from gzslbench.methods.base import RunContext, Scores, TrainingDiverged
from gzslbench.methods.vae.method import EvalPermutations, encode_for_classifier
from gzslbench.methods.vae.model import CrossModalVAE, VAESettings, backbone_spec
from gzslbench.protocol.splits import Split, make_split

VAE_METHODS = ("acmr", "dual-vae", "ie-vae", "vsa-vae", "cada-vae")
TINY = {
    "epochs": 2,
    "cls_epochs": 2,
    "visual_encoder_hidden": 24,
    "visual_decoder_hidden": 24,
    "attribute_encoder_hidden": 16,
    "attribute_decoder_hidden": 16,
    "iem_hidden": 8,
    "latent_size": 6,
    "seen_samples": 20,
    "unseen_samples": 15,
    "batch_size": 16,
}


@pytest.fixture(scope="module")
def split() -> Split:
    return make_split(make_tiny_data(), "test")


def tiny_config(name: str, **overrides: Any) -> dict[str, Any]:
    cls = METHODS.get(name)
    return {**cls.defaults, **cls.dataset_defaults.get("cub", {}), **TINY, **overrides}


def run(name: str, split: Split, seed: int = 0, **overrides: Any) -> tuple[list[Scores], RunContext]:
    ctx = RunContext(seed=seed, device=torch.device("cpu"))
    scores = [entry for (entry,) in METHODS.get(name)().predict_seeds(split, tiny_config(name, **overrides), [ctx])]
    for entry in scores:
        if isinstance(entry, TrainingDiverged):
            raise entry
    return scores, ctx


@pytest.mark.parametrize("name", VAE_METHODS)
def test_registered_with_complete_defaults(name: str) -> None:
    cls = METHODS.get(name)
    assert cls.description and cls.reference and "exp_logvar" in (cls.__doc__ or "")
    assert set(cls.dataset_defaults) == {"cub", "sun", "awa1", "awa2"}
    for dataset, values in cls.dataset_defaults.items():
        unknown = set(values) - set(cls.defaults)
        assert not unknown, f"{dataset}: {unknown}"
        for key, value in values.items():
            assert type(value) is type(cls.defaults[key]), key
    for key in ("epochs", "cls_epochs", "batch_size", "latent_size", "kl_schedule", "distance_schedule"):
        assert key in cls.defaults
    assert cls.defaults["epochs"] == 100 and cls.defaults["batch_size"] == 50 and cls.defaults["latent_size"] == 64


def test_reference_defaults_per_dataset() -> None:
    acmr, cada = METHODS.get("acmr"), METHODS.get("cada-vae")
    assert acmr.defaults["oracle_from_epoch"] == 2 and cada.defaults["oracle_from_epoch"] == 1
    assert [acmr.dataset_defaults[d]["unseen_samples"] for d in ("cub", "sun", "awa1", "awa2")] == [390, 410, 460, 480]
    assert [acmr.dataset_defaults[d]["cls_epochs"] for d in ("cub", "sun", "awa1", "awa2")] == [50, 50, 50, 300]
    assert [cada.dataset_defaults[d]["cls_epochs"] for d in ("cub", "sun", "awa1", "awa2")] == [23, 21, 33, 29]
    flags = {n: tuple(METHODS.get(n).defaults[f] for f in ("use_iem", "use_vsa")) for n in VAE_METHODS}
    assert flags == {
        "acmr": (True, True),
        "dual-vae": (False, False),
        "ie-vae": (True, False),
        "vsa-vae": (False, True),
        "cada-vae": (False, False),
    }
    assert METHODS.get("cada-vae").defaults["use_cross_reconstruction"] is True
    assert not any(METHODS.get(n).defaults["use_cross_reconstruction"] for n in VAE_METHODS[:4])


@pytest.mark.parametrize("name", VAE_METHODS)
def test_runs_end_to_end(name: str, split: Split) -> None:
    scores, ctx = run(name, split)
    assert [s.epoch for s in scores] == [1, 2]
    for s in scores:
        assert s.seen.shape == (len(split.test_seen_y), split.n_classes)
        assert s.unseen.shape == (len(split.test_unseen_y), split.n_classes)
        assert torch.isfinite(s.seen).all() and torch.isfinite(s.unseen).all()
    vae_rows = [r for r in ctx.history if r["stage"] == "vae"]
    cls_rows = [r for r in ctx.history if r["stage"] == "classifier"]
    assert [r["epoch"] for r in vae_rows] == [1, 2] and [r["epoch"] for r in cls_rows] == [1, 2]
    for key in ("reconstruction", "kl", "distance", "classification", "cross_reconstruction", "total"):
        assert key in vae_rows[0]
    assert (vae_rows[0]["cross_reconstruction"] > 0) == (name == "cada-vae")
    assert (vae_rows[0]["classification"] > 0) == (name in ("acmr", "vsa-vae"))
    assert {"vae_s", "vae_epoch_s", "encode_s", "classifier_s"} <= set(ctx.timings)


def test_same_seed_same_scores_and_other_seed_differs(split: Split) -> None:
    first, _ = run("acmr", split, seed=3)
    second, _ = run("acmr", split, seed=3)
    other, _ = run("acmr", split, seed=4)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a.seen, b.seen) and torch.equal(a.unseen, b.unseen)
    assert not torch.equal(first[-1].unseen, other[-1].unseen)


def test_quirk_switches_run(split: Split) -> None:
    scores, _ = run(
        "acmr",
        split,
        reparam_scale="exp_half_logvar",
        noise="per_dim",
        visual_hidden="reference",
        iem_shuffle=False,
        iem_eval_permutation="fixed",
        batch_sampling="randint",
        cls_drop_last=False,
    )
    assert len(scores) == 2
    with pytest.raises(ValueError, match="noise"):
        run("acmr", split, noise="sometimes")


def test_nan_features_raise_training_diverged(split: Split) -> None:
    bad_x = split.train_x.copy()
    bad_x[0] = np.nan
    bad = Split(**{**split.__dict__, "train_x": bad_x})
    with pytest.raises(TrainingDiverged):
        run("dual-vae", bad, epochs=1, batch_sampling="randint", batch_size=200)


def test_exploding_loss_raises_training_diverged(split: Split) -> None:
    with pytest.raises(TrainingDiverged):
        run("cada-vae", split, epochs=3, lr=1e6, kl_schedule=[1e30, 0.0, 1.0])


def _encode(split: Split, seed: int, **overrides: Any) -> tuple[torch.Tensor, ...]:
    config = tiny_config("acmr", **overrides)
    spec = backbone_spec(config, split.feature_dim, split.attributes.shape[1], split.n_classes)
    model = CrossModalVAE(spec, torch.device("cpu"), torch.Generator().manual_seed(0))
    with torch.no_grad():
        return encode_for_classifier(
            model, split, config, VAESettings.from_config(config), torch.Generator().manual_seed(seed)
        )


def test_classifier_material_counts_and_noise(split: Split) -> None:
    train_z, train_y, seen_z, unseen_z = _encode(split, 0)
    counts = np.bincount(train_y.numpy(), minlength=split.n_classes)
    assert (counts[split.seen] == 20).all() and (counts[split.unseen] == 15).all()
    assert train_z.shape == (20 * len(split.seen) + 15 * len(split.unseen), 6)
    unseen_rows = train_z[train_y == int(split.unseen[0])]
    assert not torch.allclose(unseen_rows[0], unseen_rows[1])  # same class vector, different noise
    assert seen_z.shape == (len(split.test_seen_y), 6) and unseen_z.shape == (len(split.test_unseen_y), 6)


def test_iem_permutation_policy_at_evaluation(split: Split) -> None:
    fresh_a, fresh_b = _encode(split, 1)[2], _encode(split, 2)[2]
    assert not torch.allclose(fresh_a, fresh_b)  # a new permutation per call: stochastic test latents
    plain_a, plain_b = _encode(split, 1, iem_shuffle=False)[2], _encode(split, 2, iem_shuffle=False)[2]
    assert torch.equal(plain_a, plain_b)
    settings = VAESettings.from_config(tiny_config("acmr", iem_eval_permutation="fixed"))
    fixed = EvalPermutations(True, settings, 6, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(fixed("visual"), fixed("visual")) and torch.equal(fixed("attribute"), fixed("attribute"))
    assert sorted(fixed("visual").tolist()) == list(range(12))
    fresh = EvalPermutations(
        True, VAESettings.from_config(tiny_config("acmr")), 6, torch.Generator().manual_seed(0), torch.device("cpu")
    )
    assert not all(torch.equal(fresh("visual"), fresh("visual")) for _ in range(3))
    off = EvalPermutations(False, settings, 6, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert off("visual") is None
