"""Sweeps: grid parsing, expansion into runs, tags, resume, and one-line errors."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.core.errors import ConfigError, UnknownNameError
from gzslbench.execution import execute as runner
from gzslbench.studies.sweep import grid_points, parse_grid, point_overrides, values_of


def test_axes_lists_logspace_linspace_and_files(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("beta: [1, 2]\nlam: linspace(0, 1, 3)\n")
    grid = parse_grid(["gamma=logspace(-3,1,5)", "beta_c=[1,2,4,8]", str(path)])
    assert grid == {
        "gamma": [0.001, 0.01, 0.1, 1.0, 10.0],
        "beta_c": [1, 2, 4, 8],
        "beta": [1, 2],
        "lam": [0.0, 0.5, 1.0],
    }
    assert parse_grid({"gamma": "logspace(0, 2, 3)"}) == {"gamma": [1.0, 10.0, 100.0]}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("beta=3", "expected a list"),
        ("beta=[]", "empty"),
        ("beta=[1,1]", "appears twice"),
        ("lam=logspace(1,2)", "logspace(start, stop, count)"),
        ("lam=linspace(a,1,3)", "linspace(start, stop, count)"),
        ("lam=logspace(0,1,0)", "count of at least 1"),
        ("beta", "expected key=[values]"),
        ("beta=[1,2", "not a YAML list"),
    ],
)
def test_bad_axes_are_one_line_errors(item, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        parse_grid([item])
    assert "\n" not in str(info.value)


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["beta=[1,2]", "beta=[3]"])


@pytest.mark.parametrize("order", [1, -1])
def test_an_indexed_axis_and_a_whole_list_axis_of_one_key_are_refused_in_either_order(order):
    with pytest.raises(ConfigError, match="'kl_schedule\\[0\\]' and 'kl_schedule' both set kl_schedule"):
        parse_grid(["kl_schedule[0]=[5,7]", "kl_schedule=[[1,0,10]]"][::order])


def test_numbers_in_exponent_notation_are_numbers_as_in_a_config():
    assert parse_grid(["gamma=[1e3,1.5E-2]"]) == {"gamma": [1000.0, 0.015]}
    with pytest.raises(ConfigError, match="appears twice"):
        parse_grid(["gamma=[1e3,1000]"])


@pytest.mark.parametrize("run", [gzslbench.tune, gzslbench.sweep])
def test_an_empty_grid_is_refused_not_read_as_the_whole_search_space(run, tmp_path):
    with pytest.raises(ConfigError, match="the grid is empty"):
        run("eszsl", "synth-tiny", {}, out=tmp_path)
    assert not list(tmp_path.rglob("*.json"))


def test_points_are_the_product_or_a_fixed_random_subset():
    grid = {"a": [1, 2, 3], "b": [10, 20], "c": ["x", "y"]}
    points = grid_points(grid)
    assert len(points) == 12 and points[0] == {"a": 1, "b": 10, "c": "x"} and points[-1] == {"a": 3, "b": 20, "c": "y"}
    sample = grid_points(grid, random=5, random_seed=3)
    assert len(sample) == 5 and all(p in points for p in sample)
    assert len({json.dumps(p) for p in sample}) == 5
    assert sample == grid_points(grid, random=5, random_seed=3)
    assert sample != grid_points(grid, random=5, random_seed=4)
    assert grid_points(grid, random=50) == points


def test_indexed_keys_replace_one_element_of_a_list():
    base = {"kl_schedule": [2.5, 0.0, 93.0], "epochs": 100}
    over = point_overrides({"kl_schedule[0]": 5.0}, {}, base)
    assert over == {"kl_schedule": [5.0, 0.0, 93.0]}
    assert values_of({**base, **over}, ["kl_schedule[0]", "epochs"]) == {"kl_schedule[0]": 5.0, "epochs": 100}
    with pytest.raises(ConfigError, match="has 3 elements, no index 3"):
        point_overrides({"kl_schedule[3]": 1.0}, {}, base)
    with pytest.raises(ConfigError, match="'epochs' is not a list"):
        point_overrides({"epochs[0]": 1}, {}, base)
    with pytest.raises(UnknownNameError, match="kl_schedule"):
        point_overrides({"kl_shedule[0]": 1}, {}, base)


def test_sweep_runs_every_point_and_seed_tagged_and_resumes(tmp_path, monkeypatch):
    grid = ["gamma=[0.1,10]", "lam=logspace(-1,1,3)"]
    records = gzslbench.sweep("eszsl", "synth-tiny", grid, seeds=2, out=tmp_path, name="reg")
    # ESZSL ignores the seed, so each point is trained once, as `run` does
    assert len(records) == 6 and all(r["status"] == "ok" and r["sweep"] == "reg" for r in records)
    configs = {(r["config"]["gamma"], r["config"]["lam"]) for r in records}
    assert configs == {(g, lam) for g in (0.1, 10.0) for lam in (0.1, 1.0, 10.0)}
    assert len(list((tmp_path / "runs").rglob("seed-*.json"))) == 6
    assert len({r["config_hash"] for r in records}) == 6 and {r["seed"] for r in records} == {0}
    assert len({r["metrics"]["last"]["H"] for r in records}) > 1  # the grid changes the runs

    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(runner, "execute", refuse)
    again = gzslbench.sweep("eszsl", "synth-tiny", grid, seeds=2, out=tmp_path, name="reg")
    assert [r["config_hash"] for r in again] == [r["config_hash"] for r in records]
    frame = gzslbench.load_results(tmp_path)
    assert set(frame["sweep"]) == {"reg"} and not frame["tuned"].any()


def test_a_seed_dependent_method_runs_every_point_with_every_seed(tmp_path):
    records = gzslbench.sweep("ale", "synth-tiny", ["lr=[0.1,1]"], seeds=2, out=tmp_path, overrides={"epochs": 1})
    assert sorted((r["config"]["lr"], r["seed"]) for r in records) == [(0.1, 0), (0.1, 1), (1.0, 0), (1.0, 1)]
    assert records[0]["metrics"] != records[1]["metrics"]  # the seeds differ


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_runner = CliRunner()
    return lambda *args: cli_runner.invoke(cli, list(args), catch_exceptions=False)


def test_cli_sweep_random_runs_k_points_and_prints_them(invoke, tmp_path):
    result = invoke(
        "sweep", "-m", "eszsl", "-d", "synth-tiny", "--grid", "gamma=logspace(-2,2,5)", "--grid", "lam=[0.1,1]",
        "--random", "3", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "results" / "runs").rglob("seed-*.json"))) == 3
    assert "gamma" in result.output and "selection on the test set" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "gamma=[1"], "not a YAML list"),
        (["--grid", "gammma=[1,2]"], "did you mean"),
        (["--grid", "gamma=[a,b]"], "expected a number"),
        (["--grid", "gamma=[1,2]", "--random", "0"], "--random must be at least 1"),
        ([], "give the grid with --grid"),
    ],
)
def test_cli_sweep_bad_input_is_one_error_line(invoke, args, message):
    result = CliRunner().invoke(cli, ["sweep", "-m", "eszsl", "-d", "synth-tiny", "-q", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message.lower() in lines[0].lower(), result.output
