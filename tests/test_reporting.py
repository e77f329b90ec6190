"""Aggregation over seeds and the statistics behind the tables, against numbers computed by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from gzslbench.core.errors import GZSLBenchError
from gzslbench.results.frame import aggregate, ci_halfwidth, not_below_best


def _frame(rows):
    base = {"config_hash": "h", "status": "ok", "mode": "last", "epoch": 1, "U_restricted": 0.0}
    return pd.DataFrame([{**base, **row} for row in rows])


ROWS = [
    {"method": "a", "dataset": "d", "seed": 0, "U": 30.0, "S": 60.0, "H": 40.0},
    {"method": "a", "dataset": "d", "seed": 1, "U": 40.0, "S": 60.0, "H": 50.0},
    {"method": "b", "dataset": "d", "seed": 0, "U": 10.0, "S": 90.0, "H": 18.0},
]


def test_mean_std_ci_and_seed_count():
    stats = aggregate(_frame(ROWS)).set_index("method")
    assert stats.loc["a", "H_mean"] == pytest.approx(45.0)
    assert stats.loc["a", "H_std"] == pytest.approx(7.0711, abs=1e-4)  # sample std of 40, 50
    assert stats.loc["a", "H_ci"] == pytest.approx(12.706 * 7.0711 / 2**0.5, abs=1e-2)  # t(0.975, 1) = 12.706
    assert stats.loc["a", "n"] == 2 and stats.loc["b", "n"] == 1
    assert pd.isna(stats.loc["b", "H_std"]) and pd.isna(stats.loc["b", "H_ci"])
    assert stats.loc["a", "H_values"] == (40.0, 50.0)


def test_failed_runs_are_counted_not_averaged_and_other_modes_are_left_out():
    rows = [*ROWS, {"method": "a", "dataset": "d", "seed": 2, "U": 0.0, "S": 0.0, "H": 0.0, "status": "failed"}]
    rows.append({"method": "a", "dataset": "d", "seed": 0, "U": 99.0, "S": 99.0, "H": 99.0, "mode": "oracle"})
    rows.append({"method": "c", "dataset": "d", "seed": 0, "status": "failed", "mode": None})
    stats = aggregate(_frame(rows)).set_index("method")
    assert stats.loc["a", "H_mean"] == pytest.approx(45.0) and stats.loc["a", "n"] == 2
    assert stats.loc["a", "failed"] == 1 and stats.loc["b", "failed"] == 0
    assert stats.loc["c", "n"] == 0 and stats.loc["c", "failed"] == 1 and pd.isna(stats.loc["c", "H_mean"])
    with pytest.raises(GZSLBenchError, match="no finished runs"):
        aggregate(_frame(ROWS), mode="val")


def test_ci_halfwidth_uses_the_t_distribution():
    assert ci_halfwidth(2.0, 3) == pytest.approx(4.3027 * 2.0 / 3**0.5, abs=1e-3)
    assert ci_halfwidth(2.0, 1) != ci_halfwidth(2.0, 1)  # NaN: one seed has no interval


def test_welch_marks_only_methods_not_significantly_below_the_best():
    values = {"best": [50.0, 51.0, 52.0], "close": [49.0, 52.0, 50.5], "far": [30.0, 31.0, 29.0], "one": [40.0]}
    assert not_below_best(values) == {"best", "close"}  # a single seed below the best cannot be tested
    assert not_below_best({"x": [1.0, 1.0], "y": [1.0, 1.0], "z": [0.5, 0.5]}) == {"x", "y"}


def test_a_best_of_one_value_is_the_best_and_the_others_are_tested_against_it():
    """A method that ignores the seed (or one seed) with the highest H is the best that the others must reach."""
    values = {"det": [40.0], "close": [39.0, 40.0, 40.5], "far": [3.8, 1.3, 6.2], "other": [20.0]}
    assert not_below_best(values) == {"det", "close"}
