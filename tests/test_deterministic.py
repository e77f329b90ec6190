"""A method whose result does not depend on the seed trains once, and its cells say so instead of "± 0.0"."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.execution import execute
from gzslbench.reports.tables import Cell, Row, Table, render


def test_eszsl_with_three_seeds_trains_once_and_its_cell_is_marked_deterministic(tmp_path, monkeypatch):
    trained: list[list[int]] = []
    real = execute.execute

    def counting(specs, *args, **kwargs):
        trained.append([s.seed for s in specs])
        return real(specs, *args, **kwargs)

    monkeypatch.setattr(execute, "execute", counting)
    result = CliRunner().invoke(
        cli, ["run", "-m", "eszsl", "-d", "synth-tiny", "--seeds", "3", "--results", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert trained == [[0]]
    assert "eszsl does not depend on the seed: trained once, not 3 times" in result.output
    (record,) = [r for r in gzslbench.load_results(tmp_path).itertuples() if r.mode == "last"]
    assert record.deterministic
    table = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    assert "(det.)" in table.output and "±" not in table.output.split("\n- ")[0]
    assert "does not depend on the seed" in table.output


def test_a_second_seed_of_a_seed_independent_method_counts_once_in_tables(tmp_path):
    """`--seed-start 5` after seed 0 writes another record of the same computation: it is not a second seed."""
    gzslbench.run("eszsl", "synth-tiny", out=tmp_path)
    gzslbench.run("eszsl", "synth-tiny", out=tmp_path, seed_start=5)
    assert len(list(tmp_path.rglob("seed-*.json"))) == 2
    table = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    row = next(line for line in table.output.splitlines() if line.startswith("| ESZSL"))
    assert row.split("|")[2].strip() == "1" and "(det.)" in row


def test_seed_dependent_methods_still_run_every_seed(tmp_path):
    records = gzslbench.run("ale", "synth-tiny", seeds=2, out=tmp_path)
    assert [r["seed"] for r in records] == [0, 1] and all(r["seed_dependent"] for r in records)
    table = CliRunner().invoke(cli, ["table", "--results", str(tmp_path)])
    assert "±" in table.output and "(det.)" not in table.output


@pytest.mark.parametrize("text", ["failed", "50% & more_x"])
def test_latex_escapes_text_cells(text):
    table = Table("t", ["Method"], [("D", ["H"])], [(None, [Row(["m"], [Cell(text=text)])])], [], [], {})
    latex = render(table, "latex")
    body = next(line for line in latex.splitlines() if line.startswith("m &"))
    assert "&" not in body.split("m &", 1)[1].replace("\\&", "") and "%" not in body.replace("\\%", "")
