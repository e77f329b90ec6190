"""Calibrated stacking and AUSUC (Chao et al., ECCV 2016) against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gzslbench.protocol.calibration import ausuc, calibrated_h, choose_gamma, seen_unseen_curve
from gzslbench.protocol.metrics import gzsl_metrics

SEEN, UNSEEN = np.array([0, 1]), np.array([2, 3])


def hand_example():
    """Seen classes 0, 1; unseen 2, 3; one test sample per class.

    Flip gamma (max seen - max unseen) and correctness on each side of it:
    a (y=0): 3 - 2 = 1.0, right while seen;      b (y=1): 2 - 0.5 = 1.5, wrong while seen (says 0);
    c (y=2): 1 - 3 = -2.0, right once unseen;    d (y=3): 2 - 1.5 = 0.5, right once unseen.
    """
    seen_scores = torch.tensor([[3.0, 1.0, 2.0, 0.0], [2.0, 0.0, 0.0, 0.5]])
    unseen_scores = torch.tensor([[1.0, 0.0, 3.0, 0.0], [2.0, 0.0, 0.0, 1.5]])
    return seen_scores, torch.tensor([0, 1]), unseen_scores, torch.tensor([2, 3])


def test_hand_example_curve_area_and_gamma():
    """Breakpoints -2, 0.5, 1, 1.5; each class weighs 1/2; area = 0.5 * 0.5 + 0.5 * 0.5."""
    args = (*hand_example(), SEEN, UNSEEN)
    curve = seen_unseen_curve(*args)
    np.testing.assert_allclose(curve.breakpoints, [-2.0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(curve.acc_unseen, [0.0, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(curve.acc_seen, [0.5, 0.5, 0.5, 0.0, 0.0])
    # Midpoints inside the pieces; the end pieces sit one span (3.5) beyond the extreme breakpoints.
    np.testing.assert_allclose(curve.gamma, [-5.5, -0.75, 0.75, 1.25, 5.0])
    assert ausuc(curve) == pytest.approx(0.5)
    # Best H is at (U, S) = (1, 0.5): H = 2/3, reached for gamma in (0.5, 1).
    assert choose_gamma(curve) == pytest.approx(0.75)
    calibrated = calibrated_h(*args, gamma=0.75)
    assert (calibrated["U"], calibrated["S"], calibrated["H"]) == pytest.approx((100.0, 50.0, 200 / 3))
    plain = calibrated_h(*args, gamma=0.0)  # gamma 0 lies in the piece (-2, 0.5): U = S = 50
    assert (plain["U"], plain["S"], plain["H"]) == pytest.approx((50.0, 50.0, 50.0))


def test_tied_flips_join_points_with_a_straight_line():
    """All four samples flip at gamma = 1: two points joined by a diagonal, area 0.5 (not 0 or 1)."""
    seen_scores = torch.tensor([[3.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 2.0]])  # both right, both flip at 1
    unseen_scores = torch.tensor([[2.0, 0.0, 1.0, 0.0], [0.0, 2.0, 0.0, 1.0]])  # right once unseen, flip at 1
    curve = seen_unseen_curve(seen_scores, torch.tensor([0, 0]), unseen_scores, torch.tensor([2, 3]), SEEN, UNSEEN)
    np.testing.assert_allclose(curve.breakpoints, [1.0])
    np.testing.assert_allclose(curve.acc_seen, [1.0, 0.0])
    np.testing.assert_allclose(curve.acc_unseen, [0.0, 1.0])
    assert ausuc(curve) == pytest.approx(0.5)


def test_perfect_classifier_has_area_one():
    rng = np.random.default_rng(0)
    seen_y, unseen_y = rng.integers(0, 2, 20), rng.integers(2, 4, 20)
    seen_scores, unseen_scores = rng.random((20, 4)), rng.random((20, 4))
    seen_scores[np.arange(20), seen_y] += 5
    unseen_scores[np.arange(20), unseen_y] += 5
    curve = seen_unseen_curve(seen_scores, seen_y, unseen_scores, unseen_y, SEEN, UNSEEN)
    assert ausuc(curve) == pytest.approx(1.0)
    assert curve.acc_seen.max() == pytest.approx(1.0) and curve.acc_unseen.max() == pytest.approx(1.0)


def test_class_independent_scores_have_area_near_zero():
    """Scores equal over classes: always the first seen (or unseen) class, a chance-level triangle."""
    n_seen, n_unseen = 10, 5
    seen, unseen = np.arange(n_seen), np.arange(n_seen, n_seen + n_unseen)
    rng = np.random.default_rng(1)
    seen_y, unseen_y = np.repeat(seen, 4), np.repeat(unseen, 4)
    flat = rng.random((len(seen_y), 1)) * np.ones((1, n_seen + n_unseen))
    flat_u = rng.random((len(unseen_y), 1)) * np.ones((1, n_seen + n_unseen))
    area = ausuc(seen_unseen_curve(flat, seen_y, flat_u, unseen_y, seen, unseen))
    assert area == pytest.approx(0.5 * (1 / n_seen) * (1 / n_unseen))
    # Random scores that ignore the label: near chance as well, far below an informative classifier.
    noise = ausuc(
        seen_unseen_curve(rng.random((400, 15)), rng.integers(0, 10, 400), rng.random((400, 15)),
                          rng.integers(10, 15, 400), seen, unseen)
    )  # fmt: skip
    assert noise < 0.05


def random_problem(seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    seen_y, unseen_y = torch.randint(0, 6, (60,), generator=g), torch.randint(6, 9, (40,), generator=g)
    seen_scores, unseen_scores = torch.randn(60, 9, generator=g), torch.randn(40, 9, generator=g)
    seen_scores[torch.arange(60), seen_y] += 1.0
    unseen_scores[torch.arange(40), unseen_y] += 1.0
    return seen_scores, seen_y, unseen_scores, unseen_y, torch.arange(6), torch.arange(6, 9)


def test_gamma_zero_is_plain_gzsl_metrics():
    seen_scores, seen_y, unseen_scores, unseen_y, seen, unseen = random_problem()
    plain = gzsl_metrics(seen_scores, seen_y, unseen_scores, unseen_y, unseen)
    calibrated = calibrated_h(seen_scores, seen_y, unseen_scores, unseen_y, seen, unseen, gamma=0.0)
    assert {k: calibrated[k] for k in ("U", "S", "H")} == {k: plain[k] for k in ("U", "S", "H")}
    shifted = calibrated_h(seen_scores, seen_y, unseen_scores, unseen_y, seen, unseen, gamma=1.0)
    assert shifted["U"] > plain["U"] and shifted["S"] < plain["S"]


def test_every_curve_point_matches_an_argmax_at_its_gamma():
    """The exact sweep agrees with brute force: calibrated_h at each point's gamma gives its U and S."""
    problem = random_problem(3)
    curve = seen_unseen_curve(*problem)
    assert len(curve.gamma) == len(curve.breakpoints) + 1 == 101  # 100 distinct flips, 101 pieces
    assert np.all(np.diff(curve.acc_unseen) >= 0) and np.all(np.diff(curve.acc_seen) <= 0)
    for gamma, s, u in zip(curve.gamma, curve.acc_seen, curve.acc_unseen, strict=True):
        point = calibrated_h(*problem, gamma=float(gamma))
        assert (point["S"], point["U"]) == pytest.approx((100 * s, 100 * u))
    best = calibrated_h(*problem, gamma=choose_gamma(curve))
    assert best["H"] >= max(calibrated_h(*problem, gamma=float(g))["H"] for g in curve.gamma) - 1e-9
    assert 0.0 < ausuc(curve) < 1.0
