"""Selection on validation: the choice, the records it leaves, resume, and that no test data is read."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.core.errors import ConfigError
from gzslbench.execution import execute as runner
from gzslbench.methods.base import RunContext, TrainingDiverged
from gzslbench.methods.eszsl import ESZSL
from gzslbench.protocol import splits as protocol
from gzslbench.protocol.selection import evaluate
from gzslbench.protocol.splits import make_split
from gzslbench.studies import tuning
from gzslbench.studies.sweep import expand, parse_grid

GRID = ["gamma=[0.01,1,100]", "lam=[0.1,1,10]"]


def _val_h(data, gamma: float, lam: float) -> float:
    """Validation H of ESZSL computed outside the tuning code."""
    split = make_split(data, "val")
    (scores,) = ESZSL().predict(split, {"gamma": gamma, "lam": lam}, RunContext(0, torch.device("cpu")))
    return evaluate(split, scores.seen, scores.unseen)["H"]


def test_tune_chooses_the_best_validation_point_and_records_it(tmp_path):
    result = gzslbench.tune("eszsl", "synth-tiny", GRID, seeds=2, out=tmp_path)
    data = gzslbench.load_dataset("synth-tiny")
    expected = [_val_h(data, p["values"]["gamma"], p["values"]["lam"]) for p in result.points]
    assert [p["val_H"] for p in result.points] == pytest.approx(expected)
    assert result.chosen_index == int(np.argmax(expected))
    assert len(set(expected)) > 1
    assert {k: result.chosen_config[k] for k in ("gamma", "lam")} == result.chosen
    assert [r["seed"] for r in result.records] == [0]  # ESZSL ignores the seed: trained once, as `run` does
    for path in (tmp_path / "runs").rglob("seed-*.json"):
        record = json.loads(path.read_text())
        block = record["tuning"]
        assert block["selected_on"] == "validation split only (no test data read)"
        assert block["chosen"] == result.chosen and len(block["points"]) == 9
        assert block["grid"] == parse_grid(GRID) and record["sweep"] == result.name
        assert record["config"] == result.chosen_config and not record["validate"]  # one candidate: no val retrain
    plain = gzslbench.run("eszsl", "synth-tiny", out=tmp_path / "plain", overrides=result.chosen_config)[0]
    assert result.records[0]["metrics"]["last"] == plain["metrics"]["last"]  # the final run is a normal trainval run
    assert gzslbench.load_results(tmp_path / "runs")["tuned"].all()
    assert not gzslbench.load_results(tmp_path / "plain")["tuned"].any()
    summary = json.loads(tuning.summary_path(tmp_path, "synth-tiny", "eszsl", result.name).read_text())
    assert summary["chosen_config"] == result.chosen_config


def test_searches_that_differ_only_in_set_values_or_dataset_options_keep_their_own_summaries(tmp_path):
    grid = ["gamma=[1,10]"]
    names = {
        gzslbench.tune("eszsl", "synth-tiny", grid, out=tmp_path).name,
        gzslbench.tune("eszsl", "synth-tiny", grid, out=tmp_path, overrides={"lam": 100.0}).name,
        gzslbench.tune("eszsl", "synth-tiny", grid, out=tmp_path, options={"seed": 1}).name,
        gzslbench.sweep("eszsl", "synth-tiny", grid, out=tmp_path / "sweep", quiet=True)[0]["sweep"],
    }
    assert len(names) == 4
    assert len(list((tmp_path / "tuning" / "synth-tiny" / "eszsl").glob("*.json"))) == 3
    again = gzslbench.tune("eszsl", "synth-tiny", grid, out=tmp_path, overrides={"lam": 100.0}).name
    assert again in names  # the same command resumes under the same name


def test_second_tune_runs_nothing(tmp_path, monkeypatch):
    first = gzslbench.tune("eszsl", "synth-tiny", GRID, out=tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("finished work was run again")

    monkeypatch.setattr(tuning, "evaluate_point", refuse)
    monkeypatch.setattr(runner, "execute", refuse)
    again = gzslbench.tune("eszsl", "synth-tiny", GRID, out=tmp_path)
    assert again.points == first.points and again.records[0]["tuning"] == first.records[0]["tuning"]


def _nan_test_features(data):
    """The same data with every test feature NaN (built without validation, which would refuse it)."""
    features = data.features.copy()
    features[np.concatenate([data.test_seen, data.test_unseen])] = np.nan
    return dataclasses.replace(data, features=features)


def test_selection_never_reads_test_data(tmp_path, monkeypatch):
    grid = parse_grid(GRID)
    clean = expand("eszsl", "synth-tiny", grid)
    poisoned_data = _nan_test_features(clean.data)
    specs = [dataclasses.replace(clean.base, config=c) for c in clean.configs]

    # The poison is live: any evaluation on the test split of this data fails.
    with pytest.raises(TrainingDiverged):
        runner.evaluate_split(specs[0], poisoned_data, "test", RunContext(0, torch.device("cpu")))

    kinds: list[str] = []
    real_make_split = protocol.make_split
    spy = lambda data, kind="test": kinds.append(kind) or real_make_split(data, kind)  # noqa: E731
    monkeypatch.setattr(runner, "make_split", spy)
    poisoned = tuning.search(specs, poisoned_data, tmp_path / "poisoned")
    reference = tuning.search(specs, clean.data, tmp_path / "clean")
    assert kinds and set(kinds) == {"val"}
    assert all(r["status"] == "ok" for r in poisoned)
    assert [r["best"] for r in poisoned] == [r["best"] for r in reference]
    points = [tuning.point_summary(v, r) for v, r in zip(clean.points, poisoned, strict=True)]
    reference_points = [tuning.point_summary(v, r) for v, r in zip(clean.points, reference, strict=True)]
    assert tuning.choose(points) == tuning.choose(reference_points)


def test_tuning_beats_bad_defaults_on_synthetic_cub(tmp_path):
    options = {"scale": 0.1}
    grid = ["gamma=[1,100,1000]", "lam=[1,100]"]  # holds the defaults (1000, 1) and a bad lam
    result = gzslbench.tune("eszsl", "synth-cub", grid, out=tmp_path, options=options)
    default = next(p for p in result.points if p["values"] == {"gamma": 1000, "lam": 1})
    assert result.chosen != default["values"] and result.points[result.chosen_index]["val_H"] > default["val_H"]
    tuned_h = result.records[0]["metrics"]["last"]["H"]
    default_h = gzslbench.run("eszsl", "synth-cub", out=tmp_path, options=options)[0]["metrics"]["last"]["H"]
    bad_h = gzslbench.run("eszsl", "synth-cub", out=tmp_path, options=options, overrides={"lam": 100.0})[0]
    assert tuned_h > default_h  # the validation choice carries over to the test split
    assert bad_h["metrics"]["last"]["H"] < 2 and tuned_h > bad_h["metrics"]["last"]["H"] + 5


def test_a_method_without_search_space_needs_a_grid(tmp_path):
    with pytest.raises(ConfigError, match="declares no search space"):
        gzslbench.tune("cada-vae", "synth-tiny", out=tmp_path)


def test_methods_with_several_epochs_are_retrained_with_val_and_report_it(tmp_path):
    tiny = {"epochs": 1, "cls_epochs": 3, "latent_size": 4, "seen_samples": 5, "unseen_samples": 5}
    tiny |= {f"{part}_hidden": 8 for part in ("visual_encoder", "visual_decoder", "attribute_encoder")}
    tiny |= {"attribute_decoder_hidden": 8, "iem_hidden": 4}
    result = gzslbench.tune("dual-vae", "synth-tiny", ["kl_schedule[0]=[1,5]"], out=tmp_path, overrides=tiny)
    assert result.mode == "val" and all(p["epoch"] is not None for p in result.points)
    record = result.records[0]
    assert record["validate"] and record["metrics"]["val"]["val_H"] is not None
    assert record["config"]["kl_schedule"][0] == result.chosen["kl_schedule[0]"]


def test_cli_tune_prints_search_choice_and_test_numbers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid_args = [arg for g in GRID for arg in ("--grid", g)]
    out = CliRunner().invoke(cli, ["tune", "-m", "eszsl", "-d", "synth-tiny", "--seeds", "2", "-q", *grid_args])
    assert out.exit_code == 0, out.output
    assert "val H" in out.output and "chosen on validation: gamma=" in out.output
    assert "test (trained on trainval, once: the method does not depend on the seed" in out.output  # ESZSL
    assert "H " in out.output
    same = CliRunner().invoke(cli, ["sweep", "-m", "eszsl", "-d", "synth-tiny", "-q", "--select", "val", *grid_args])
    assert same.output.splitlines()[-3] == out.output.splitlines()[-3]  # the same choice


def test_config_grid_prints_the_search_space():
    out = CliRunner().invoke(cli, ["config", "-m", "eszsl", "-d", "cub", "--grid"])
    assert out.exit_code == 0
    assert "gamma = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]" in out.output and "49 points" in out.output
    awa2 = CliRunner().invoke(cli, ["config", "-m", "acmr", "-d", "awa2", "--grid"])
    assert "classify_schedule[0] = [70.0, 80.0, 90.0]" in awa2.output


class _BadSpace(ESZSL):
    """A plugin whose declared search space leaves its own range (gamma must be > 0)."""

    name = "bad-space"
    search_space: ClassVar[dict[str, list[Any]]] = {"gamma": [0.0, 1.0]}


def test_config_grid_refuses_a_search_space_that_tune_would_refuse(monkeypatch, tmp_path):
    monkeypatch.setitem(gzslbench.METHODS._items, "bad-space", _BadSpace)
    shown = CliRunner().invoke(cli, ["config", "-m", "bad-space", "-d", "synth-tiny", "--grid"])
    tuned = CliRunner().invoke(cli, ["tune", "-m", "bad-space", "-d", "synth-tiny", "--results", str(tmp_path)])
    assert shown.exit_code == tuned.exit_code == 2
    expected = "error: method 'bad-space': config 'gamma' = 0.0 is out of range (must be > 0)\n"
    assert shown.stderr == tuned.stderr == expected


def test_search_log_lines_count_the_points_off_a_terminal(tmp_path):
    result = CliRunner().invoke(
        cli, ["tune", "-m", "eszsl", "-d", "synth-tiny", "--grid", "gamma=[1,10,100]", "--results", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    counted = [line.split("]")[0] for line in result.stderr.splitlines() if line.startswith("[search ")]
    assert counted == ["[search 1/3", "[search 2/3", "[search 3/3"]


def test_a_search_whose_points_all_score_the_same_says_so(tmp_path, monkeypatch, capsys):
    summary = tuning.point_summary
    monkeypatch.setattr(tuning, "point_summary", lambda values, result: {**summary(values, result), "val_H": 0.0})
    result = gzslbench.tune("eszsl", "synth-tiny", ["gamma=[1,10]"], out=tmp_path, quiet=False)
    assert result.chosen_index == 0
    assert "warning: every point scored validation H 0.0, so the first was chosen" in capsys.readouterr().err
