"""Aggregation over seeds and the rendered tables, against numbers computed by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from gzslbench.errors import GZSLBenchError
from gzslbench.reporting import aggregate, render


def _frame(rows):
    base = {"config_hash": "h", "status": "ok", "mode": "last", "epoch": 1, "U_restricted": 0.0}
    return pd.DataFrame([{**base, **row} for row in rows])


ROWS = [
    {"method": "a", "dataset": "d", "seed": 0, "U": 30.0, "S": 60.0, "H": 40.0},
    {"method": "a", "dataset": "d", "seed": 1, "U": 40.0, "S": 60.0, "H": 50.0},
    {"method": "b", "dataset": "d", "seed": 0, "U": 10.0, "S": 90.0, "H": 18.0},
]


def test_mean_std_and_seed_count():
    stats = aggregate(_frame(ROWS)).set_index("method")
    assert stats.loc["a", "H_mean"] == pytest.approx(45.0)
    assert stats.loc["a", "H_std"] == pytest.approx(7.0711, abs=1e-4)  # sample std of 40, 50
    assert stats.loc["a", "n"] == 2 and stats.loc["b", "n"] == 1


def test_markdown_and_latex_cells():
    stats = aggregate(_frame(ROWS))
    markdown = render(stats, "markdown")
    assert "45.0 ± 7.1" in markdown and "| b " in markdown and "18.0 " in markdown and "18.0 ±" not in markdown
    assert "fixed epoch count" in markdown
    latex = render(stats, "latex", mode="oracle")
    assert "45.0 $\\pm$ 7.1" in latex and latex.startswith("% ") and "ORACLE" in latex


def test_failed_runs_and_other_modes_are_left_out():
    rows = [*ROWS, {"method": "a", "dataset": "d", "seed": 2, "U": 0.0, "S": 0.0, "H": 0.0, "status": "failed"}]
    rows.append({"method": "a", "dataset": "d", "seed": 0, "U": 99.0, "S": 99.0, "H": 99.0, "mode": "oracle"})
    stats = aggregate(_frame(rows)).set_index("method")
    assert stats.loc["a", "H_mean"] == pytest.approx(45.0) and stats.loc["a", "n"] == 2
    with pytest.raises(GZSLBenchError, match="no finished runs"):
        aggregate(_frame(ROWS), mode="val")
