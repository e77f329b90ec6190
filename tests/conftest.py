"""Shared fixtures: a tiny hand-built dataset, a results folder, and the real xlsa17 split files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gzslbench.data import GZSLData, validate

SHARED_XLSA17 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xlsa17-att"


def make_tiny_data(seed: int = 0, n_seen: int = 6, n_unseen: int = 3, per_class: int = 30, dim: int = 16):
    """A small, easy GZSLData: features are a linear image of class attributes plus noise."""
    rng = np.random.default_rng(seed)
    n_classes = n_seen + n_unseen
    att = rng.random((n_classes, 8)).astype(np.float32)
    proj = rng.normal(size=(8, dim)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), per_class)
    feats = (att[labels] @ proj + 0.1 * rng.normal(size=(len(labels), dim))).astype(np.float32)
    idx = np.arange(len(labels))
    seen_idx = idx[labels < n_seen]
    test_seen = np.sort(np.concatenate([seen_idx[labels[seen_idx] == c][: per_class // 5] for c in range(n_seen)]))
    trainval = np.setdiff1d(seen_idx, test_seen)
    train_classes_mask = labels[trainval] < n_seen - 2
    return validate(
        GZSLData(
            name="tiny",
            features=feats,
            labels=labels.astype(np.int64),
            attributes=att,
            trainval=trainval,
            test_seen=test_seen,
            test_unseen=idx[labels >= n_seen],
            train=trainval[train_classes_mask],
            val=trainval[~train_classes_mask],
            defaults_from="cub",
            source="tests.conftest.make_tiny_data",
        ),
        "tiny",
    )


@pytest.fixture
def tiny_data() -> GZSLData:
    return make_tiny_data()


@pytest.fixture
def shared_xlsa17() -> Path:
    """The real xlsa17 att_splits.mat folder beside the checkout; the test skips when it is absent."""
    if not SHARED_XLSA17.is_dir():
        pytest.skip("real xlsa17 split files (../shared/data/xlsa17-att) are not present")
    return SHARED_XLSA17
