"""LsrGAN on the f-CLSWGAN backbone: its loss terms, class relations, release switches, the joint classifier, config."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from test_methods_learn import BUDGET

import gzslbench
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import METHODS
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.resolve import method_config, plan_specs
from gzslbench.methods.base import RunContext
from gzslbench.methods.gan.losses import centroid_loss, class_means, semantic_margin_loss
from gzslbench.methods.gan.lsrgan import LSRGAN_LOSS_NAMES, ClassRelations, LSRGANSettings
from gzslbench.protocol.splits import make_split

CPU = torch.device("cpu")
TINY_BUDGET: dict[str, Any] = BUDGET["lsrgan"]  # learns synth-tiny in about a second
CHANCE = 100 / 5  # U_restricted on synth-tiny's 5 unseen classes

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_tiny(seed: int = 0, **overrides: Any) -> list[dict[str, float]]:
    """Every candidate's metrics (one per GAN epoch with the joint classifier) of an LsrGAN run on synth-tiny."""
    data = gzslbench.load_dataset("synth-tiny")
    (spec,) = plan_specs(["lsrgan"], ["synth-tiny"], [seed], overrides={**TINY_BUDGET, **overrides}, threads=1)
    return evaluate_split(spec, data, "test", RunContext(seed, CPU))


# ---- loss terms ---------------------------------------------------------------------------------------------------


def test_class_means_average_each_class_and_mark_the_absent_ones():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    means, present = class_means(x, torch.tensor([0, 0, 2]), 3)
    assert torch.equal(means, torch.tensor([[2.0, 3.0], [0.0, 0.0], [10.0, 0.0]]))
    assert present.tolist() == [True, False, True]


def test_centroid_loss_is_the_distance_of_each_batch_class_mean_to_its_centroid_over_all_classes():
    fake = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 4.0]])
    centroids = torch.tensor([[2.0, 4.0], [9.0, 9.0], [0.0, 0.0]])
    # class 0: mean (2, 1), 3 from (2, 4); class 2: mean (0, 4), 4 from (0, 0); class 1 absent; 3 classes in all
    loss = centroid_loss(fake, torch.tensor([0, 0, 2]), centroids)
    assert loss.item() == pytest.approx((3.0 + 4.0) / 3)


def test_semantic_margin_loss_penalises_similarities_outside_the_band_by_hand():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fake = torch.tensor([[1.0, 1.0]])  # one class, mean at 45 degrees: cosine 1/sqrt(2) to both centroids
    neighbours = torch.tensor([[0, 1]])
    rho = 1 / math.sqrt(2)
    # neighbour 0: semantic similarity 0.9, band [0.8, 1.0]: rho is 0.8 - rho below it;
    # neighbour 1: similarity 0.5, band [0.4, 0.6]: rho is rho - 0.6 above it; divided by k = 2
    expected = ((0.8 - rho) ** 2 + (rho - 0.6) ** 2) / 2
    similarity = torch.tensor([[0.9, 0.5]])
    loss = semantic_margin_loss(fake, torch.tensor([0]), 1, centroids, neighbours, similarity, 0.1)
    assert loss.item() == pytest.approx(expected)
    inside = semantic_margin_loss(fake, torch.tensor([0]), 1, centroids, neighbours, torch.full((1, 2), rho), 0.1)
    assert inside.item() == 0.0


def test_class_relations_hold_real_centroids_and_the_most_similar_seen_classes():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    y = torch.tensor([0, 0, 2])
    attributes = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])  # class 1 unseen, between the two seen ones
    seen, unseen = torch.tensor([0, 2]), torch.tensor([1])
    rel = ClassRelations.build(x, y, attributes, seen, unseen, neighbours=5)  # more than the 2 seen classes: 2
    assert torch.equal(rel.centroids, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert rel.seen_position.tolist() == [0, -1, 1] and rel.unseen_position.tolist() == [-1, 0, -1]
    assert rel.seen_neighbours.tolist() == [[0, 1], [1, 0]]  # each seen class first, then the other
    assert torch.allclose(rel.seen_similarity, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert rel.unseen_neighbours.tolist() == [[0, 1]] and torch.allclose(
        rel.unseen_similarity, torch.tensor([[0.8, 0.6]])
    )


def test_settings_halve_the_classification_weight_and_gate_the_unseen_step_as_the_release():
    config = method_config("lsrgan", "awa1")
    settings = LSRGANSettings.from_config(config)
    assert settings.cls_weight_halved_after == 15
    assert [settings.cls_weight_at(e) for e in (1, 15, 16)] == [0.001, 0.001, 0.0005]
    assert [settings.unseen_step_in(e) for e in (1, 2)] == [False, True]  # --unseen_start 0: not in the first
    off = LSRGANSettings.from_config({**config, "semantic_weight": 0.0})
    assert not off.unseen_step_in(5)  # the release's `correlation_penalty > 0` test


# ---- the method ---------------------------------------------------------------------------------------------------


def test_lsrgan_learns_the_unseen_classes_and_without_its_unseen_step_it_cannot():
    """The joint classifier learns the unseen classes from generated features only; without the unseen step it never
    sees one and no unseen test image is recognised in the generalized setting."""
    learned = run_tiny()
    assert len(learned) == TINY_BUDGET["epochs"]  # one candidate per GAN epoch
    assert learned[-1]["U_restricted"] > 2.5 * CHANCE and learned[-1]["U"] > 10, learned[-1]
    without = run_tiny(unseen_after=TINY_BUDGET["epochs"])
    assert max(r["U"] for r in without) == 0.0, without[-1]
    assert learned[-1]["H"] > without[-1]["H"] + 10


def test_the_sr_loss_is_logged_only_by_default_and_trains_the_generator_when_asked():
    """The release never back-propagates the SR-loss: its weight and band change nothing (but the unseen step's
    on/off test); with semantic_loss="trained" they change the run."""
    base = run_tiny(epochs=4)
    assert run_tiny(epochs=4, semantic_weight=5.0, epsilon=0.01) == base
    trained = run_tiny(epochs=4, semantic_loss="trained", semantic_weight=5.0, epsilon=0.01)
    assert trained != base


@pytest.mark.parametrize(
    "change",
    [{"unseen_step_gradients": "fresh"}, {"unseen_draw": "test_labels"}, {"centroid_weight": 0.0}],
)
def test_each_release_switch_changes_the_run(change):
    assert run_tiny(epochs=4, **change) != run_tiny(epochs=4)


def test_a_run_logs_every_term_and_repeats_itself():
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    config = method_config("lsrgan", "cub", overrides={**TINY_BUDGET, "epochs": 2, "pretrain_epochs": 2})
    first, second = RunContext(3, CPU), RunContext(3, CPU)
    a = list(METHODS.get("lsrgan")().predict(split, config, first))
    b = list(METHODS.get("lsrgan")().predict(split, config, second))
    assert [s.epoch for s in a] == [1, 2]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.seen, y.seen) and torch.equal(x.unseen, y.unseen)
    gan_rows = [r for r in first.history if r["stage"] == "gan"]
    assert [r["epoch"] for r in gan_rows] == [1, 2]
    assert set(LSRGAN_LOSS_NAMES) <= set(gan_rows[0])
    assert gan_rows[0]["unseen_classification"] == 0.0 < gan_rows[1]["unseen_classification"]
    assert gan_rows[0]["semantic_seen"] > 0.0  # computed and logged although it trains nothing
    assert {"pretrain_s", "gan_s", "gan_epoch_s", "classifier_s"} <= set(first.timings)


def test_the_softmax_final_classifier_scores_after_training_on_generated_features():
    split = make_split(gzslbench.load_dataset("synth-tiny"))
    overrides = {**TINY_BUDGET, "epochs": 2, "final_classifier": "softmax", "syn_num": 7, "cls_epochs": 3}
    config = method_config("lsrgan", "cub", overrides=overrides)
    ctx = RunContext(0, CPU)
    scores = list(METHODS.get("lsrgan")().predict(split, config, ctx))
    assert [s.epoch for s in scores] == [1, 2, 3]  # the final classifier's epochs, not the GAN's
    assert [r["epoch"] for r in ctx.history if r["stage"] == "classifier"] == [1, 2, 3]
    assert scores[0].unseen.shape == (len(split.test_unseen_y), split.n_classes)


# ---- config -------------------------------------------------------------------------------------------------------


def test_per_dataset_defaults_follow_the_release_scripts():
    keys = ("epochs", "lr", "cls_weight", "unseen_cls_weight", "semantic_weight", "epsilon", "syn_num")
    expected = {
        "cub": (40, 1e-4, 0.01, 0.03, 20.0, 0.1, 300),
        "sun": (20, 2e-4, 0.03, 0.01, 10.0, 0.1, 400),
        "awa1": (18, 1e-5, 0.001, 0.1, 20.0, 0.15, 1800),
        "awa2": (18, 1e-5, 0.001, 0.1, 20.0, 0.15, 1800),
        "flo": (40, 1e-4, 0.01, 0.03, 20.0, 0.1, 300),
    }
    for dataset, values in expected.items():
        config = method_config("lsrgan", dataset)
        assert tuple(config[k] for k in keys) == values, dataset
        assert (config["critic_hidden"], config["neighbours"], config["semantic_loss"]) == (4096, 20, "logged")
    cls = METHODS.get("lsrgan")
    assert cls.defaults_for("flo")[1]["dataset"] == "cub" and "no FLO script" in cls.defaults_for("flo")[1]["note"]


def test_config_refuses_unknown_switch_values():
    with pytest.raises(ConfigError, match="semantic_loss"):
        method_config("lsrgan", "cub", overrides={"semantic_loss": "sometimes"})
    with pytest.raises(ConfigError, match="final_classifier"):
        method_config("lsrgan", "cub", overrides={"final_classifier": "svm"})
