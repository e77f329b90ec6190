"""Every registered method learns: trained on synthetic data, it beats its twin trained on shuffled labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import gzslbench
from gzslbench.execution.execute import evaluate_split
from gzslbench.execution.resolve import plan_specs
from gzslbench.methods.base import RunContext

VAE_BUDGET = {"epochs": 20, "cls_epochs": 10, "lr": 1e-3}
# A budget at which each method learns synth-tiny within a second (defaults where they do already).
BUDGET = {
    "acmr": VAE_BUDGET,
    "dual-vae": VAE_BUDGET,
    "ie-vae": VAE_BUDGET,
    "vsa-vae": VAE_BUDGET,
    "cada-vae": VAE_BUDGET,
    "ale": {"epochs": 2},
    "devise": {"epochs": 2},
    "eszsl": {"gamma": 10.0, "lam": 0.1},  # the defaults were set on ResNet features: H 0 here
    "sae": {},
    # narrow networks, a larger learning rate and classification weight, 30 generated features per unseen class
    "f-clswgan": {
        "epochs": 60,
        "generator_hidden": 256,
        "critic_hidden": 256,
        "lr": 2e-3,
        "cls_weight": 1.0,
        "syn_num": 30,
        "pretrain_epochs": 20,
        "cls_epochs": 10,
    },
    # f-clswgan's networks and learning rate; both classification weights 1 (the scripts' 0.01-0.1 need far more steps)
    "lsrgan": {
        "epochs": 20,
        "generator_hidden": 256,
        "critic_hidden": 256,
        "lr": 2e-3,
        "cls_weight": 1.0,
        "unseen_cls_weight": 1.0,
        "pretrain_epochs": 20,
    },
    # narrow networks, a larger learning rate, 30 generated features per unseen class
    "f-vaegan": {
        "epochs": 60,
        "generator_hidden": 256,
        "critic_hidden": 256,
        "encoder_hidden": 256,
        "lr": 2e-3,
        "syn_num": 30,
        "cls_epochs": 10,
    },
    # f-vaegan's budget with a narrow semantic decoder (an epoch is two passes with feedback on)
    "tf-vaegan": {
        "epochs": 60,
        "generator_hidden": 256,
        "critic_hidden": 256,
        "encoder_hidden": 256,
        "decoder_hidden": 256,
        "lr": 2e-3,
        "syn_num": 30,
        "cls_epochs": 10,
    },
    # f-vaegan's budget with a narrow feature refiner (an epoch is two passes of one critic step each)
    "free": {
        "epochs": 60,
        "generator_hidden": 256,
        "critic_hidden": 256,
        "encoder_hidden": 256,
        "refiner_hidden": 256,
        "lr": 2e-3,
        "syn_num": 30,
        "cls_epochs": 10,
    },
}
CHANCE = 100 / 5  # U_restricted: synth-tiny's 5 unseen classes


def shuffled_training_labels(data):
    """``data`` with the trainval labels permuted: the same features and classes, no signal to learn."""
    labels = data.labels.copy()
    labels[data.trainval] = np.random.default_rng(0).permutation(labels[data.trainval])
    return dataclasses.replace(data, labels=labels)


def test_every_registered_method_has_a_budget():
    assert set(gzslbench.list_methods()) <= set(BUDGET)


@pytest.mark.parametrize("method", sorted(BUDGET))
def test_a_trained_method_beats_its_twin_trained_on_shuffled_labels(method):
    data = gzslbench.load_dataset("synth-tiny")
    (spec,) = plan_specs([method], ["synth-tiny"], [0], overrides=BUDGET[method], threads=1, device="cpu")
    learned = evaluate_split(spec, data, "test", RunContext(0, torch.device("cpu")))[-1]
    twin = evaluate_split(spec, shuffled_training_labels(data), "test", RunContext(0, torch.device("cpu")))[-1]
    assert learned["U_restricted"] > 2 * CHANCE, learned
    assert learned["U_restricted"] > twin["U_restricted"] + 15, (learned, twin)
