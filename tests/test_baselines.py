"""The classic baselines SAE, ALE (and its SJE loss), DeViSE and ESZSL's grid, on synth-tiny."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.core.errors import ConfigError
from gzslbench.methods.ale import structured_hinge_loss, weighted_ranking_loss
from gzslbench.methods.base import RunContext
from gzslbench.methods.devise import hinge_rank_loss
from gzslbench.methods.sae import solve_symmetric_sylvester
from gzslbench.protocol.selection import evaluate
from gzslbench.protocol.splits import make_split

NEW = ("sae", "ale", "devise")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def split():
    return make_split(gzslbench.load_dataset("synth-tiny"))


def predict(split, method: str, seed: int = 0, **overrides):
    cls = gzslbench.get_method(method)
    config = {**cls.defaults, **overrides}
    cls.check_config(config)
    return list(cls().predict(split, config, RunContext(seed, torch.device("cpu"))))


@pytest.mark.parametrize("method", NEW)
def test_learns_on_synth_tiny(split, method):
    """Both U and S far above chance (15 classes: 6.7%) at the defaults' last candidate."""
    chance = 100 / split.n_classes
    last = predict(split, method)[-1]
    metrics = evaluate(split, last.seen, last.unseen)
    assert metrics["U"] > 2 * chance and metrics["S"] > 7 * chance, metrics


@pytest.mark.parametrize(
    ("method", "change"),
    [("sae", {"direction": "f2s"}), ("sae", {"lam": 50.0}), ("ale", {"loss": "sje"}), ("devise", {"margin": 0.1})],
)
def test_named_config_changes_the_scores(split, method, change):
    short = {} if method == "sae" else {"epochs": 3}
    base, changed = predict(split, method, **short)[-1], predict(split, method, **short, **change)[-1]
    assert not torch.allclose(base.unseen, changed.unseen)


@pytest.mark.parametrize("method", ["ale", "devise"])
def test_sgd_methods_depend_on_the_seed_only(split, method):
    """Same seed: identical scores; another seed: another initialisation and order, other scores."""
    first, again, other = (predict(split, method, seed=s, epochs=2) for s in (0, 0, 1))
    assert [c.epoch for c in first] == [1, 2]
    assert torch.equal(first[-1].unseen, again[-1].unseen)
    assert not torch.allclose(first[-1].unseen, other[-1].unseen)


def test_sae_ignores_the_seed(split):
    assert torch.equal(predict(split, "sae", seed=0)[0].unseen, predict(split, "sae", seed=7)[0].unseen)


def test_sae_solves_its_sylvester_equation():
    """The eigendecomposition solver agrees with scipy's Bartels-Stewart on a well-posed problem."""
    rng = np.random.default_rng(0)
    s, x, lam = rng.random((5, 40)), rng.random((8, 40)), 0.7
    a, b, q = s @ s.T, lam * x @ x.T, (1 + lam) * s @ x.T
    ours = solve_symmetric_sylvester(*(torch.as_tensor(m) for m in (a, b, q))).numpy()
    np.testing.assert_allclose(ours, scipy.linalg.solve_sylvester(a, b, q), rtol=1e-8, atol=1e-10)


def test_ranking_losses_by_hand():
    """Scores (2, 1.5, 0, 3), true class 0: margins 1 + s_c - 2 = (0.5, -1, 2) for classes 1, 2, 3."""
    scores, y = torch.tensor([[2.0, 1.5, 0.0, 3.0]]), torch.tensor([0])
    # ALE: two violators, weight (1 + 1/2) / 2 on the hinge sum 2.5.
    assert weighted_ranking_loss(4, torch.device("cpu"))(scores, y).item() == pytest.approx(0.75 * 2.5)
    assert structured_hinge_loss(scores, y).item() == pytest.approx(2.0)  # SJE: the largest violation
    assert hinge_rank_loss(1.0)(scores, y).item() == pytest.approx(2.5)  # DeViSE: the plain sum
    assert hinge_rank_loss(0.1)(scores, y).item() == pytest.approx(1.1)  # only class 3 violates: 0.1 + 1
    no_violation = torch.tensor([[5.0, 1.0, 0.0, 2.0]])
    assert weighted_ranking_loss(4, torch.device("cpu"))(no_violation, y).item() == 0.0


def test_per_epoch_candidates_feed_every_selection_mode(tmp_path):
    (record,) = gzslbench.run("ale", "synth-tiny", out=tmp_path, overrides={"epochs": 4}, validate=True, device="cpu")
    assert record["status"] == "ok", record.get("error")
    assert [row["epoch"] for row in record["history"]["test"]] == [1, 2, 3, 4]
    assert [row["stage"] for row in record["history"]["train"]] == ["ale"] * 4
    assert set(record["metrics"]) == {"last", "oracle", "val"}


@pytest.mark.parametrize(
    ("method", "override", "message"),
    [
        ("sae", {"lam": 0.0}, "'lam' = 0.0 is out of range"),
        ("sae", {"direction": "up"}, "'direction' = 'up' is out of range"),
        ("ale", {"lr": -1.0}, "'lr' = -1.0 is out of range"),
        ("ale", {"loss": "hinge"}, "'loss' = 'hinge' is out of range"),
        ("devise", {"margin": 0.0}, "'margin' = 0.0 is out of range"),
        ("devise", {"epochs": 0}, "'epochs' = 0 is out of range"),
        ("eszsl", {"gamma": -1.0}, "'gamma' = -1.0 is out of range"),
    ],
)
def test_out_of_range_config_is_a_user_error(tmp_path, method, override, message):
    with pytest.raises(ConfigError, match=message):
        gzslbench.run(method, "synth-tiny", out=tmp_path, overrides=override)


def test_listed_with_search_spaces():
    result = CliRunner().invoke(cli, ["list", "methods"], catch_exceptions=False)
    assert all(f"\n{name} " in "\n" + result.output for name in NEW)
    eszsl = gzslbench.get_method("eszsl")
    assert eszsl.search_space == {
        "gamma": [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3],
        "lam": eszsl.search_space["gamma"],
    }
    assert eszsl.defaults == {"gamma": 1000.0, "lam": 1.0}
    for name in NEW:
        cls = gzslbench.get_method(name)
        assert cls.search_space and set(cls.search_space) <= set(cls.defaults)
        for key, values in cls.search_space.items():  # every grid value passes the method's own check
            for value in values:
                cls.check_config({**cls.defaults, key: value})
