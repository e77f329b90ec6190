"""Metrics against values computed by hand."""

from __future__ import annotations

import pytest
import torch

from gzslbench.protocol.metrics import gzsl_metrics, harmonic_mean, mean_class_accuracy, per_class_accuracy


def test_per_class_accuracy_by_hand():
    """Class 0: 2/3 right, class 1: 1/1, class 2: 0/2, class 3 absent (dropped)."""
    target = torch.tensor([0, 0, 0, 1, 2, 2])
    pred = torch.tensor([0, 0, 1, 1, 0, 1])
    acc = per_class_accuracy(pred, target, n_classes=4)
    assert acc.tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert mean_class_accuracy(pred, target, 4) == pytest.approx(100 * (2 / 3 + 1 + 0) / 3)


def test_mean_class_accuracy_is_not_instance_accuracy():
    """A big easy class must not dominate: 9/9 right and 0/1 right give 50%, not 90%."""
    target = torch.tensor([0] * 9 + [1])
    pred = torch.zeros(10, dtype=torch.long)
    assert mean_class_accuracy(pred, target, 2) == pytest.approx(50.0)


def test_harmonic_mean():
    assert harmonic_mean(50.0, 50.0) == pytest.approx(50.0)
    assert harmonic_mean(20.0, 80.0) == pytest.approx(32.0)
    assert harmonic_mean(0.0, 0.0) == 0.0


def test_gzsl_metrics_by_hand():
    """Two seen classes (0, 1) and two unseen (2, 3): U, S, H and unseen-only ZSL."""
    seen_scores = torch.tensor([[0.9, 0.1, 0.0, 0.0], [0.1, 0.2, 0.9, 0.0]])  # right, wrong (-> 2)
    seen_target = torch.tensor([0, 1])
    unseen_scores = torch.tensor(
        [
            [0.0, 0.0, 0.5, 0.1],  # class 2, right
            [0.9, 0.0, 0.2, 0.3],  # class 3, GZSL says 0 (wrong); unseen-only says 3 (right)
            [0.0, 0.0, 0.1, 0.4],  # class 3, right
        ]
    )
    unseen_target = torch.tensor([2, 3, 3])
    m = gzsl_metrics(seen_scores, seen_target, unseen_scores, unseen_target, torch.tensor([2, 3]))
    assert m["S"] == pytest.approx(50.0)
    assert m["U"] == pytest.approx(75.0)  # class 2: 1/1, class 3: 1/2
    assert m["H"] == pytest.approx(2 * 75 * 50 / 125)
    assert m["U_restricted"] == pytest.approx(100.0)
