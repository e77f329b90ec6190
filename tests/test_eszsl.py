"""ESZSL against an independent numpy evaluation of the closed form."""

from __future__ import annotations

import numpy as np
import torch

from gzslbench.methods.base import RunContext
from gzslbench.methods.eszsl import ESZSL
from gzslbench.protocol.selection import evaluate
from gzslbench.protocol.splits import make_split


def test_eszsl_matches_numpy_closed_form(tiny_data):
    split = make_split(tiny_data)
    gamma, lam = 3.0, 0.5
    (scores,) = list(ESZSL().predict(split, {"gamma": gamma, "lam": lam}, RunContext(0, torch.device("cpu"))))
    x = split.train_x.T.astype(np.float64)
    y = -np.ones((x.shape[1], len(split.seen)))
    y[np.arange(x.shape[1]), split.train_y] = 1.0  # seen classes are 0..5 here, so column = label
    s = split.attributes.T.astype(np.float64)[:, split.seen]
    left = np.linalg.inv(x @ x.T + gamma * np.eye(x.shape[0])) @ x @ y @ s.T
    v = left @ np.linalg.inv(s @ s.T + lam * np.eye(len(s)))
    expected = split.test_unseen_x.astype(np.float64) @ v @ split.attributes.T
    np.testing.assert_allclose(scores.unseen.numpy(), expected, rtol=1e-6, atol=1e-9)
    metrics = evaluate(split, scores.seen, scores.unseen)
    assert metrics["S"] > 50 and metrics["U_restricted"] > 100 / 3
