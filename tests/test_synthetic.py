"""Synthetic datasets: real-like shapes and counts, determinism, options, and a GZSL that is hard but learnable."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from gzslbench.core.errors import DataError
from gzslbench.core.registry import DATASETS
from gzslbench.datasets import synthetic
from gzslbench.protocol.splits import make_split

SHAPES = {  # attribute dim, seen, unseen, train classes, val classes
    "synth-cub": (312, 150, 50, 100, 50),
    "synth-sun": (102, 645, 72, 580, 65),
    "synth-awa1": (85, 40, 10, 27, 13),
    "synth-awa2": (85, 40, 10, 27, 13),
    "synth-tiny": (16, 10, 5, 7, 3),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_shapes_at_small_scale(name: str) -> None:
    """Classes, dims and validation classes match the real dataset; every split is non-empty per class."""
    data = DATASETS.get(name)().load(scale=0.02)
    att_dim, n_seen, n_unseen, n_train, n_val = SHAPES[name]
    assert data.attributes.shape == (n_seen + n_unseen, att_dim)
    assert data.features.shape[1] == (64 if name == "synth-tiny" else 2048)
    assert (len(data.seen_classes), len(data.unseen_classes)) == (n_seen, n_unseen)
    assert len(np.unique(data.labels[data.train])) == n_train and len(np.unique(data.labels[data.val])) == n_val
    assert np.array_equal(np.unique(data.labels[data.test_seen]), data.seen_classes)
    assert np.bincount(data.labels[data.test_seen]).max() >= synthetic.MIN_PER_SPLIT
    assert data.features.dtype == np.float32 and data.features.min() >= 0
    np.testing.assert_allclose(np.linalg.norm(data.attributes, axis=1), 1.0, rtol=1e-5)
    assert data.attributes.min() >= 0 and (data.attributes < 0.01).mean() > 0.2  # sparse-ish, like the real ones
    assert data.defaults_from == DATASETS.get(name).defaults_from
    assert data.source == f"synthetic({name}, scale=0.02, seed=0)"


def test_full_scale_counts_of_synth_cub() -> None:
    """At scale 1 the instance counts are the real CUB ones."""
    summary = DATASETS.get("synth-cub")().load().summary()
    assert (summary["n_instances"], summary["n_trainval"], summary["n_test_seen"], summary["n_test_unseen"]) == (
        11788,
        7057,
        1764,
        2967,
    )


def test_full_scale_counts_match_specs() -> None:
    """The spec table holds the published counts of every look-alike."""
    totals = {n: s.n_trainval + s.n_test_seen + s.n_test_unseen for n, s in synthetic.SPECS.items()}
    assert totals["synth-cub"] == 11788 and totals["synth-sun"] == 14340
    assert totals["synth-awa1"] == 30475 and totals["synth-awa2"] == 37322


def test_scale_shrinks_counts_proportionally() -> None:
    data = DATASETS.get("synth-awa1")().load(scale=0.1)
    assert abs(len(data.trainval) - 1983) <= 1 and abs(len(data.test_unseen) - 568) <= 1


def test_deterministic_in_seed() -> None:
    a = DATASETS.get("synth-tiny")().load(seed=3)
    b = DATASETS.get("synth-tiny")().load(seed="3")
    c = DATASETS.get("synth-tiny")().load(seed=4)
    for field in ("features", "labels", "attributes", "trainval", "test_seen", "test_unseen", "train", "val"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.features, c.features) and not np.array_equal(a.attributes, c.attributes)


DATA_DIGEST = """
import hashlib
from gzslbench.core.registry import DATASETS
data = DATASETS.get("synth-cub")().load(scale=0.05)
print(hashlib.sha256(data.features.tobytes()).hexdigest())
"""


def test_the_data_do_not_depend_on_the_blas_threads_of_the_process_that_draws_them() -> None:
    """A command's worker processes (one BLAS thread each) and the caller (several) must draw the same data."""
    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        out = subprocess.run([sys.executable, "-c", DATA_DIGEST], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


@pytest.mark.parametrize(
    "options", [{"scale": 0}, {"scale": 1.5}, {"scale": "x"}, {"seed": -1}, {"seed": 1.5}, {"n": 1}]
)
def test_bad_options(options: dict) -> None:
    with pytest.raises(DataError) as info:
        DATASETS.get("synth-tiny")().load(**options)
    assert str(info.value).startswith("synth-tiny: ") and "\n" not in str(info.value)


def test_options_declared() -> None:
    assert DATASETS.get("synth-cub").options == {"scale": 1.0, "seed": 0}


def _per_class_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[truth == c] == c) for c in np.unique(truth)]))


def _eszsl(name: str, scale: float) -> tuple[float, float, float, float]:
    """ESZSL closed form (Romera-Paredes & Torr 2015): U, S, ZSL accuracy and chance over all classes."""
    split = make_split(DATASETS.get(name)().load(scale=scale))
    x, seen = split.train_x.astype(np.float64), split.seen
    y = -np.ones((len(x), len(seen)))
    y[np.arange(len(x)), np.searchsorted(seen, split.train_y)] = 1
    att = split.attributes.astype(np.float64)
    s = att[seen]
    v = np.linalg.solve(x.T @ x + 10 * np.eye(x.shape[1]), x.T @ y @ s) @ np.linalg.inv(
        s.T @ s + 0.1 * np.eye(s.shape[1])
    )
    seen_scores, unseen_scores = split.test_seen_x @ v @ att.T, split.test_unseen_x @ v @ att.T
    u = _per_class_accuracy(unseen_scores.argmax(1), split.test_unseen_y)
    acc_s = _per_class_accuracy(seen_scores.argmax(1), split.test_seen_y)
    zsl = _per_class_accuracy(split.unseen[unseen_scores[:, split.unseen].argmax(1)], split.test_unseen_y)
    return u, acc_s, zsl, 1 / split.n_classes


@pytest.mark.parametrize(("name", "scale"), [("synth-tiny", 1.0), ("synth-cub", 0.15)])
def test_genuinely_hard_but_learnable(name: str, scale: float) -> None:
    """A linear model: seen accuracy high, unseen above chance but lower (seen bias), ZSL well above chance."""
    u, s, zsl, chance = _eszsl(name, scale)
    n_unseen = len(DATASETS.get(name)().load(scale=scale).unseen_classes)
    assert s > u > 2 * chance
    assert s < 0.99
    assert zsl > 2 / n_unseen
