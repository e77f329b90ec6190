"""``gzslbench check``: the suite file, the paired statistic and its noise model, and that deliberate
breakage fails the check."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_data

import gzslbench
import gzslbench.execution.execute
import gzslbench.methods.vae.method as vae_method
import gzslbench.protocol.selection
import gzslbench.protocol.splits
from gzslbench.cli import cli
from gzslbench.core.errors import ConfigError, GZSLBenchError
from gzslbench.methods.base import Method
from gzslbench.studies import check

# CADA-VAE on an easy 15-class dataset, 300 small VAE iterations: U, S and H all far above chance.
TINY_CASE = """
name = "tiny"
seeds = 3
threads = 1
[tolerance]
k = 4.0
floor = 3.0
[noise]
seeds = 3
threads = 2
[[case]]
method = "cada-vae"
dataset = "custom"
[case.options]
path = "{path}"
[case.overrides]
epochs = 60
cls_epochs = 20
lr = 0.001
visual_encoder_hidden = 64
visual_decoder_hidden = 64
attribute_encoder_hidden = 32
attribute_decoder_hidden = 32
seen_samples = 50
unseen_samples = {unseen_samples}
kl_schedule = [0.25, 0.0, 56.0]
distance_schedule = {distance_schedule}
cross_schedule = [2.37, 13.0, 45.0]
"""
ALIGNED = "[8.13, 4.0, 13.0]"


def write_suite(folder: Path, unseen_samples: int = 50, distance_schedule: str = ALIGNED) -> Path:
    data = make_tiny_data(n_seen=10, n_unseen=5, per_class=40, dim=32)
    npz = folder / "tiny.npz"
    if not npz.exists():
        np.savez(
            npz,
            features=data.features,
            labels=data.labels,
            attributes=data.attributes,
            trainval=data.trainval,
            test_seen=data.test_seen,
            test_unseen=data.test_unseen,
        )
    suite = folder / "suite.toml"
    text = TINY_CASE.format(path=npz, unseen_samples=unseen_samples, distance_schedule=distance_schedule)
    suite.write_text(text)
    return suite


def run_check(suite: Path, baseline: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", "--suite", str(suite), "--baseline", str(baseline), *args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny suite and its baseline, made with --update from the unchanged code."""
    folder = tmp_path_factory.mktemp("check")
    suite, baseline = write_suite(folder), folder / "baseline.json"
    code, output = run_check(suite, baseline, "--update", "--results", str(folder / "results"))
    assert code == 0, output
    return suite, baseline


def test_update_records_values_code_and_environment(made: tuple[Path, Path]) -> None:
    _, baseline = made
    data = json.loads(baseline.read_text())
    entry = data["cases"]["cada-vae@custom"]
    assert entry["seeds"] == [0, 1, 2] and len(entry["H"]["values"]) == 3
    assert entry["U"]["mean"] > 10 and entry["S"]["mean"] > 40  # the tiny case learns: chance is 6.7%
    assert entry["suite_entry"]["overrides"]["unseen_samples"] == 50.0
    assert data["code"]["gzslbench"] == gzslbench.__version__ and "git_commit" in data["code"]
    assert "torch" in data["environment"] and data["mode"] == "last" and data["format"] == check.BASELINE_FORMAT


def test_update_measures_the_noise_model_between_thread_counts(made: tuple[Path, Path]) -> None:
    """The noise model: per metric the RMS of seed-by-seed differences, 2 threads against the suite's 1."""
    _, baseline = made
    entry = json.loads(baseline.read_text())["cases"]["cada-vae@custom"]
    noise = entry["noise"]
    assert noise["threads"] == [1, 2] and noise["seeds"] == [0, 1, 2]
    assert noise["suite_entry"] == entry["suite_entry"] and noise["config_hash"] == entry["config_hash"]
    for metric in check.CHECK_METRICS:
        diffs = noise[metric]["differences"]
        assert len(diffs) == 3
        assert noise[metric]["sigma"] == pytest.approx(math.sqrt(np.mean(np.square(diffs))), abs=1e-3)


def test_runs_use_the_suite_thread_count(made: tuple[Path, Path]) -> None:
    """The suite's ``threads = 1`` reaches every run, not the runner's default of one thread per core; the
    noise model's runs use its ``[noise] threads = 2``."""
    from gzslbench.results.store import iter_records

    _, baseline = made
    results = baseline.parent / "results"
    main = list(iter_records(results / "runs"))
    other = list(iter_records(results / "noise-threads-2"))
    assert main and {(r["threads"], r["env"]["torch_threads"]) for r in main} == {(1, 1)}
    assert len(other) == 3 and {(r["threads"], r["env"]["torch_threads"]) for r in other} == {(2, 2)}


def test_threads_option_overrides_the_suite(made: tuple[Path, Path], tmp_path: Path) -> None:
    """``--threads 2`` runs the suite on 2 threads and, against the 1-thread baseline, unchanged code passes."""
    from gzslbench.results.store import iter_records

    suite, baseline = made
    code, output = run_check(suite, baseline, "--threads", "2", "--results", str(tmp_path))
    assert code == 0, output
    assert "torch threads 2" in output and "ok: every case within tolerance" in output
    assert {r["threads"] for r in iter_records(tmp_path)} == {2}


def test_unchanged_code_passes_twice(made: tuple[Path, Path]) -> None:
    suite, baseline = made
    for _ in range(2):
        code, output = run_check(suite, baseline)
        assert code == 0, output
        assert "REGRESSION" not in output and "ok: every case within tolerance" in output


def test_classifier_without_unseen_classes_fails(made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    suite, baseline = made
    original = vae_method.encode_for_classifier

    def seen_only(*args, **kwargs):  # type: ignore[no-untyped-def]
        train_z, train_y, test_seen_z, test_unseen_z = original(*args, **kwargs)
        seen = torch.as_tensor(np.isin(train_y.numpy(), args[1].seen))
        return train_z[seen], train_y[seen], test_seen_z, test_unseen_z

    monkeypatch.setattr(vae_method, "encode_for_classifier", seen_only)
    code, output = run_check(suite, baseline)
    assert code == check.EXIT_REGRESSION, output
    assert "REGRESSION" in output and "FAIL: accuracy regression" in output


def _records_as_unchanged(results: Path) -> dict[str, list[dict]]:
    from gzslbench.results.store import iter_records

    return {"cada-vae@custom": [r for r in iter_records(results) if r["method"] == "cada-vae"]}


def test_shuffled_training_labels_fail(made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    suite, baseline = made
    original = gzslbench.protocol.splits.make_split

    def shuffled(data, kind="test"):  # type: ignore[no-untyped-def]
        split = original(data, kind)
        return dataclasses.replace(split, train_y=np.random.default_rng(0).permutation(split.train_y))

    monkeypatch.setattr(gzslbench.protocol.splits, "make_split", shuffled)
    monkeypatch.setattr(gzslbench.execution.execute, "make_split", shuffled)
    code, output = run_check(suite, baseline)
    assert code == check.EXIT_REGRESSION, output
    assert "REGRESSION" in output


def test_alignment_off_is_flagged(made: tuple[Path, Path], tmp_path: Path) -> None:
    """Without the alignment loss this easy, linear dataset is learnt better (cross-reconstruction
    suffices), so the check flags an improvement: the baseline must not drift silently."""
    suite, baseline = made
    broken = write_suite(tmp_path, distance_schedule="[0.0, 0.0, 1.0]")
    results = tmp_path / "results"
    check.run_suite(check.load_suite(broken), results)
    rows = check.compare(check.load_suite(suite), check.read_baseline(baseline), _records_as_unchanged(results))
    assert check.exit_status(rows) != check.EXIT_OK
    assert "improved" in {row.verdict for row in rows}


def test_tolerance_is_k_noise_standard_errors_with_a_floor() -> None:
    """tol = max(k * sigma / sqrt(n), floor); the detectable drop adds z = 1.645 standard errors."""
    assert check.tolerance(2.0, 4, k=4.0, floor=1.0) == pytest.approx(4.0)
    assert check.tolerance(2.0, 4, k=4.0, floor=10.0) == 10.0
    assert check.tolerance(0.0, 1, k=4.0, floor=0.5) == 0.5  # a golden value: the floor alone
    assert check.detectable_drop(2.0, 4, k=4.0, floor=1.0) == pytest.approx(4.0 + 1.645)
    assert check.detectable_drop(0.0, 1, k=4.0, floor=0.5) == 0.5


def _records(seeds, values: dict[str, list[float]] | float) -> list[dict]:
    """Synthetic run records: per metric one value per seed (or one value for every metric and seed)."""
    if not isinstance(values, dict):
        values = {m: [values] * len(seeds) for m in check.CHECK_METRICS}
    return [
        {
            "status": "ok",
            "seed": seed,
            "config_hash": "x",
            "metrics": {"last": {m: values[m][j] for m in check.CHECK_METRICS}},
        }
        for j, seed in enumerate(seeds)
    ]


def _baseline(suite: check.Suite, base: list[dict], sigma: float) -> dict:
    """A baseline of ``suite``'s single case from ``base``, with a noise model of per-seed RMS ``sigma``."""
    case = suite.cases[0]
    seeds = list(case.noise_seeds)
    ref = _records(seeds, {m: [50.0] * len(seeds) for m in check.CHECK_METRICS})
    # Differences alternating +sigma / -sigma: their RMS is sigma.
    other = _records(seeds, {m: [50.0 + sigma * (-1) ** j for j in range(len(seeds))] for m in check.CHECK_METRICS})
    noise = check.measure_noise(case, ref, other, [1, 2])
    entry = {"suite_entry": case.entry(), **check.summarize(base), "noise": noise}
    return {"cases": {case.key: entry}, "defaults": check.default_configs(suite.methods())}


def _suite(tmp_path: Path, seeds: int = 3) -> check.Suite:
    suite = check.load_suite(write_suite(tmp_path))
    case = dataclasses.replace(suite.cases[0], seeds=tuple(range(seeds)), floor=0.5)
    return dataclasses.replace(suite, cases=(case,))


def test_verdicts_and_exit_status(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    baseline = _baseline(suite, _records(seeds, 40.0), sigma=1.0)
    assert check.exit_status(check.compare(suite, baseline, {key: _records(seeds, 41.0)})) == check.EXIT_OK
    assert check.exit_status(check.compare(suite, baseline, {key: _records(seeds, 30.0)})) == check.EXIT_REGRESSION
    assert check.exit_status(check.compare(suite, baseline, {key: _records(seeds, 50.0)})) == check.EXIT_UPDATE
    assert check.exit_status(check.compare(suite, None, {key: _records(seeds, 40.0)})) == check.EXIT_UPDATE
    failed = [{"status": "failed", "seed": 0, "error": "boom"}]
    assert check.exit_status(check.compare(suite, baseline, {key: failed})) == check.EXIT_REGRESSION
    assert check.exit_status(check.compare(suite, baseline, {})) == check.EXIT_REGRESSION
    # A baseline seed without a run cannot be paired.
    rows = check.compare(suite, baseline, {key: _records(seeds[:-1], 40.0)})
    assert check.exit_status(rows) == check.EXIT_REGRESSION and rows[0].verdict == "MISSING"


def test_from_results_reads_the_suite_s_records_not_the_noise_runs_beside_them(made: tuple[Path, Path]) -> None:
    """``--update --results DIR`` writes the noise-model runs (same seeds, 2 threads) under DIR/noise-threads-2:
    ``--from-results DIR`` compares the suite's own records under DIR/runs."""
    suite, baseline = made
    results = baseline.parent / "results"
    assert (results / "noise-threads-2").is_dir()
    code, output = run_check(suite, baseline, "--from-results", str(results))
    assert code == 0, output
    assert "MISSING" not in output and "ok: every case within tolerance" in output
    # A parent of that folder: the suite's records are found below it, the noise runs still left out.
    code, output = run_check(suite, baseline, "--from-results", str(results.parent))
    assert code == 0 and "ok: every case within tolerance" in output, output
    for name in ("--n-jobs", "--jobs"):  # run's name for it, and check's own
        code, output = run_check(suite, baseline, "--from-results", str(results), name, "1")
        assert code == 0, (name, output)
    other = results.parent / "other"
    shutil.copytree(results, other / "results")
    try:
        code, output = run_check(suite, baseline, "--from-results", str(results.parent))
    finally:
        shutil.rmtree(other)
    assert code == 2 and "holds 2 results folders" in output and "point --from-results at one" in output, output


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda entry: [entry], "not a JSON object (a JSON list)"),
        (lambda entry: {k: v for k, v in entry.items() if k != "seeds"}, "'seeds' = None is not a list of seeds"),
        (lambda entry: entry | {"seeds": "01"}, "'seeds' = '01' is not a list of seeds"),
        (lambda entry: entry | {"H": "abc"}, "'H' = 'abc' is not a JSON object"),
        (lambda entry: entry | {"H": entry["H"] | {"values": "abc"}}, "'H.values' = 'abc' is not one number per seed"),
        (lambda entry: entry | {"H": entry["H"] | {"values": [1.0]}}, "'H.values' = [1.0] is not one number per seed"),
        (lambda entry: entry | {"U": entry["U"] | {"mean": "x"}}, "'U.mean' = 'x' is not a number"),
        (lambda entry: entry | {"suite_entry": [1]}, "'suite_entry' = [1] is not a JSON object"),
        (lambda entry: entry | {"noise": entry["noise"] | {"env": "x"}}, "'noise.env' = 'x' is not a JSON object"),
        (lambda entry: entry | {"noise": entry["noise"] | {"H": {}}}, "'noise.H' = {} has no 'sigma' (a number >= 0)"),
    ],
)
def test_a_damaged_baseline_case_is_one_line_and_exit_2_not_a_regression(tmp_path: Path, damage, problem) -> None:
    """Exit 1 means a regression: CI must tell a damaged baseline from one."""
    suite = _suite(tmp_path)
    baseline = _baseline(suite, _records(suite.cases[0].seeds, 40.0), sigma=1.0)
    key = suite.cases[0].key
    baseline |= {"format": check.BASELINE_FORMAT, "cases": {key: damage(baseline["cases"][key])}}
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    (tmp_path / "results").mkdir()
    code, output = run_check(tmp_path / "suite.toml", path, "--from-results", str(tmp_path / "results"))
    assert code == 2
    assert output == f"error: baseline '{path}': case {key}: {problem}; rewrite it with --update\n"


@pytest.mark.parametrize("defaults", [[], {"acmr": []}, {"acmr": {"cub": 1}}])
def test_damaged_recorded_defaults_are_one_line(tmp_path: Path, defaults) -> None:
    suite = _suite(tmp_path)
    baseline = _baseline(suite, _records(suite.cases[0].seeds, 40.0), sigma=1.0)
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline | {"format": check.BASELINE_FORMAT, "defaults": defaults}))
    with pytest.raises(GZSLBenchError, match=r"'defaults' is not method -> dataset -> config; rewrite it \(--update\)"):
        check.read_baseline(path)


def test_a_metric_the_method_does_not_report_is_read_back_from_the_baseline_as_nan(tmp_path: Path) -> None:
    """Strict JSON writes NaN as null; the comparison reads it back as NaN (not reported), not a crash."""
    suite = _suite(tmp_path)
    seeds, key = suite.cases[0].seeds, suite.cases[0].key
    records = _records(seeds, {m: [math.nan if m == "AUSUC" else 40.0] * len(seeds) for m in check.CHECK_METRICS})
    path = tmp_path / "baseline.json"
    check.write_baseline(path, _baseline(suite, records, sigma=1.0) | {"format": check.BASELINE_FORMAT})
    assert json.loads(path.read_text())["cases"][key]["AUSUC"]["values"] == [None] * len(seeds)
    rows = check.compare(suite, check.read_baseline(path), {key: records})
    assert check.exit_status(rows) == check.EXIT_OK and "AUSUC" not in {row.metric for row in rows}


def test_a_planted_3_point_drop_is_flagged_despite_a_wide_seed_spread(tmp_path: Path) -> None:
    """Seeds spread over 30 points (the old unpaired tolerance would be about +-36), noise sigma 1 per seed:
    pairing seed with seed, a 3-point drop of every seed is a regression, and 0.5 points is not."""
    suite = _suite(tmp_path, seeds=5)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    spread = [45.0, 60.0, 75.0, 52.0, 68.0]
    base = _records(seeds, {m: spread for m in check.CHECK_METRICS})
    baseline = _baseline(suite, base, sigma=1.0)
    jitter = [0.4, -0.3, 0.2, -0.5, 0.1]

    def now(drop: float) -> list[dict]:
        return _records(
            seeds, {m: [v - drop + e for v, e in zip(spread, jitter, strict=True)] for m in check.CHECK_METRICS}
        )

    rows = check.compare(suite, baseline, {key: now(3.0)})
    h = next(row for row in rows if row.metric == "H")
    assert h.verdict == "REGRESSION" and h.difference == pytest.approx(-3.0 - 0.02)
    assert h.tolerance == pytest.approx(4.0 / math.sqrt(5)) and h.detectable <= 3.0
    assert check.exit_status(rows) == check.EXIT_REGRESSION
    assert check.exit_status(check.compare(suite, baseline, {key: now(0.5)})) == check.EXIT_OK


def test_a_changed_default_is_flagged_even_where_no_case_trains_on_it(tmp_path, monkeypatch) -> None:
    """The case overrides ``lr`` and trains on other data than AWA2: changing either default changes none of
    its numbers, so only the recorded defaults can show it (exit 3: update the baseline on purpose)."""
    suite = _suite(tmp_path)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    baseline = _baseline(suite, _records(seeds, 40.0), sigma=1.0)
    same = {key: _records(seeds, 40.0)}
    assert check.exit_status(check.compare(suite, baseline, same)) == check.EXIT_OK
    cls = check.METHODS.get("cada-vae")
    monkeypatch.setitem(cls.defaults, "lr", 1.5e-3)
    monkeypatch.setitem(cls.dataset_defaults, "awa2", {**cls.dataset_defaults["awa2"], "unseen_samples": 9})
    rows = check.compare(suite, baseline, same)
    (row,) = [row for row in rows if row.case == "cada-vae defaults"]
    assert row.verdict == "changed" and check.exit_status(rows) == check.EXIT_UPDATE
    assert row.note.startswith("cub: lr 0.00015 -> 0.0015; sun: lr 0.00015 -> 0.0015") and "and 3 more" in row.note
    assert check.exit_status(check.compare(suite, {**baseline, "defaults": {}}, same)) == check.EXIT_UPDATE


def test_seeds_that_all_give_the_same_result_are_a_regression(tmp_path) -> None:
    """Every seed repeating seed 0 keeps the mean near the baseline's; the lost spread itself is the fault."""
    suite = _suite(tmp_path, seeds=4)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    spread = [44.0, 41.0, 46.0, 43.0]
    baseline = _baseline(suite, _records(seeds, {m: spread for m in check.CHECK_METRICS}), sigma=1.0)
    collapsed = _records(seeds, {m: [spread[0]] * 4 for m in check.CHECK_METRICS})
    rows = check.compare(suite, baseline, {key: collapsed})
    assert [row.verdict for row in rows if row.metric == "H"] == ["ok"]  # the mean alone passes
    (row,) = [row for row in rows if row.metric == "seeds"]
    assert row.verdict == "REGRESSION" and check.exit_status(rows) == check.EXIT_REGRESSION


def test_a_noisier_run_does_not_widen_its_own_tolerance(tmp_path: Path) -> None:
    """The tolerance comes from the baseline's noise model, not from the current run's spread."""
    suite = _suite(tmp_path, seeds=4)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    baseline = _baseline(suite, _records(seeds, 60.0), sigma=1.0)
    calm = check.compare(suite, baseline, {key: _records(seeds, 60.0)})
    swing = [+12.0, -12.0, +12.0, -12.0]  # mean 0: a change that only makes results noisier

    def noisy(drop: float) -> list[dict]:
        return _records(seeds, {m: [60.0 - drop + e for e in swing] for m in check.CHECK_METRICS})

    rows = check.compare(suite, baseline, {key: noisy(0.0)})
    assert [row.tolerance for row in rows] == [row.tolerance for row in calm]
    assert {row.verdict for row in rows} == {"ok"}
    dropped = check.compare(suite, baseline, {key: noisy(3.0)})
    assert {row.verdict for row in dropped} == {"REGRESSION"}


def test_the_detectable_drop_is_flagged_95_percent_of_the_time() -> None:
    """Per-seed differences drawn from the noise model: a true drop of the detectable size is flagged about
    95% of the time, unchanged code almost never (2 * Phi(-4) = 6e-5 per metric)."""
    rng = np.random.default_rng(0)
    sigma, n, k, floor = 1.5, 5, 4.0, 0.5
    tol, drop = check.tolerance(sigma, n, k, floor), check.detectable_drop(sigma, n, k, floor)
    means = rng.normal(0.0, sigma, size=(200_000, n)).mean(axis=1)
    assert abs(np.mean(means - drop < -tol) - 0.95) < 0.005
    assert np.mean(np.abs(means) > tol) < 2e-4


def test_a_changed_suite_entry_needs_a_new_noise_model(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    key, seeds = suite.cases[0].key, suite.cases[0].seeds
    baseline = _baseline(suite, _records(seeds, 40.0), sigma=1.0)
    entry = baseline["cases"][key]
    stale_noise = {**entry, "noise": {**entry["noise"], "seeds": [0, 1]}}
    rows = check.compare(suite, {**baseline, "cases": {key: stale_noise}}, {key: _records(seeds, 40.0)})
    assert {row.verdict for row in rows} == {"uncalibrated"} and check.exit_status(rows) == check.EXIT_UPDATE
    assert all(math.isfinite(row.difference) for row in rows)
    no_noise = {k: v for k, v in entry.items() if k != "noise"}
    rows = check.compare(suite, {**baseline, "cases": {key: no_noise}}, {key: _records(seeds, 40.0)})
    assert {row.verdict for row in rows} == {"uncalibrated"}


def test_measure_noise_needs_every_seed_at_both_thread_counts(tmp_path: Path) -> None:
    suite = _suite(tmp_path)
    case = suite.cases[0]
    seeds = list(case.noise_seeds)
    with pytest.raises(check.GZSLBenchError, match="no runs of seed"):
        check.measure_noise(case, _records(seeds, 40.0), _records(seeds[:-1], 40.0), [1, 2])


def test_noise_env_runs_the_noise_runs_in_a_child_with_those_variables(tmp_path: Path) -> None:
    """``[noise] env`` (here with the suite's own thread count): the noise runs run in a child process whose
    environment adds the variables, recorded with each run; the noise model names them, and a model
    measured without them is measured again."""
    from gzslbench.core.environment import arithmetic_env, assignments
    from gzslbench.results.record import execution_label
    from gzslbench.results.store import iter_records

    suite_file = write_suite(tmp_path)
    text = suite_file.read_text().replace(
        "threads = 2\n[[case]]", 'threads = 1\nenv = { MKL_CBWR = "COMPATIBLE" }\n[[case]]'
    )
    suite_file.write_text(text)
    suite = check.load_suite(suite_file)
    assert suite.noise_env == {"MKL_CBWR": "COMPATIBLE"} and suite.noise_threads == suite.threads == 1
    baseline = tmp_path / "baseline.json"
    code, output = run_check(suite_file, baseline, "--update", "--results", str(tmp_path / "results"))
    assert code == 0, output
    assert "noise models: 1 torch thread(s) with MKL_CBWR=COMPATIBLE against 1" in output
    noise = json.loads(baseline.read_text())["cases"]["cada-vae@custom"]["noise"]
    assert noise["env"] == {"MKL_CBWR": "COMPATIBLE"} and noise["threads"] == [1, 1]
    main = list(iter_records(tmp_path / "results" / "runs"))
    other = list(iter_records(tmp_path / "results" / "noise-threads-1-env"))
    assert {r["env"]["arithmetic_env"].get("MKL_CBWR") for r in main} == {None}
    assert len(other) == 3 and {r["env"]["arithmetic_env"]["MKL_CBWR"] for r in other} == {"COMPATIBLE"}
    # the setting is part of how a run was executed: its label and its replay command say so (after MKL_CBWR, the
    # settings of the environment the tests run in, such as OPENBLAS_CORETYPE, on both sides)
    ambient = assignments(arithmetic_env())
    assert {execution_label(r) for r in other} == {", ".join(["cpu, alone, MKL_CBWR=COMPATIBLE", *ambient])}
    assert {execution_label(r) for r in main} == {", ".join(["cpu, alone", *ambient])}
    assert all(r["command"].startswith(" ".join(["MKL_CBWR=COMPATIBLE", *ambient, "gzslbench run "])) for r in other)
    case = suite.cases[0]
    entry = json.loads(baseline.read_text())["cases"][case.key]
    assert check.noise_model(entry, case, [1, 1], {"MKL_CBWR": "COMPATIBLE"}) is not None
    assert check.noise_model(entry, case, [1, 1], {}) is None  # measured with other settings: measure again


def test_a_failed_child_run_is_a_one_line_error(tmp_path: Path) -> None:
    case = check.Case("cada-vae", "custom", options={"path": str(tmp_path / "missing.npz")}, seeds=(0,))
    with pytest.raises(
        check.GZSLBenchError, match=r"runs of case cada-vae@custom with MKL_CBWR=AVX2 failed: .*missing"
    ):
        check.run_case(case, [0], tmp_path / "out", 1, "cpu", 1, env={"MKL_CBWR": "AVX2"})


def test_seed_independent_methods_run_one_seed(tmp_path: Path) -> None:
    path = tmp_path / "suite.toml"
    path.write_text('seeds = 5\n[noise]\nseeds = 8\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n')
    (case,) = check.load_suite(path).cases
    assert case.seeds == (0,) and case.noise_seeds == (0,)


def test_select_cases_cuts_suite_and_baseline(tmp_path: Path) -> None:
    suite = check.load_suite()
    baseline = check.read_baseline(check.default_baseline_path())
    cut, cut_baseline = check.select_cases(suite, baseline, ["sae@synth-cub"])
    assert [case.key for case in cut.cases] == ["sae@synth-cub"] and cut.untested_methods() == []
    assert cut_baseline is not None and set(cut_baseline["cases"]) == {"sae@synth-cub"}
    with pytest.raises(ConfigError, match="no case nope"):
        check.select_cases(suite, baseline, ["nope"])


def test_committed_baseline_detects_small_drops() -> None:
    """Every case of the CI suite has a noise model measured for its current entry, and the smallest mean drop of H,
    U, S and AUSUC flagged with 95% probability is at most 3 points for learned methods, 1 for the deterministic
    ones."""
    suite = check.load_suite()
    baseline = check.read_baseline(check.default_baseline_path())
    assert baseline is not None and baseline["environment"]["torch_threads"] == suite.threads == 1
    for case in suite.cases:
        entry = baseline["cases"][case.key]
        assert entry["suite_entry"] == case.entry(), case.key
        noise = check.noise_model(entry, case, [suite.threads, suite.noise_threads], suite.noise_env)
        assert noise is not None, case.key  # measured with the suite's noise settings (threads, MKL_CBWR)
        deterministic = not check.METHODS.get(case.method).seed_dependent
        for metric in check.CHECK_METRICS:
            drop = check.detectable_drop(noise[metric]["sigma"], len(case.seeds), suite.k, case.floor)
            assert drop <= (1.0 if deterministic else 3.0), (case.key, metric, drop)
        if case.dataset == "synth-awa1":  # the VAE cases learn both sides (chance is 2%): a fault on either shows
            assert entry["U"]["mean"] > 40 and entry["S"]["mean"] > 40, case.key


def test_default_suite_covers_every_registered_method() -> None:
    suite = check.load_suite()
    assert suite.untested_methods() == []
    assert {case.method for case in suite.cases} == set(check.METHODS.names())
    short = dataclasses.replace(suite, cases=suite.cases[1:])
    assert short.untested_methods() == [suite.cases[0].method]
    baseline = check.read_baseline(check.default_baseline_path())
    assert baseline is not None and set(baseline["cases"]) == {case.key for case in suite.cases}


def test_a_plugin_method_is_not_untested_by_gzslbench_s_own_suite(monkeypatch) -> None:
    """An installed plugin is the user's to test, so it must not turn gzslbench's own check red."""

    class PluginMethod(Method):
        pass

    PluginMethod.__module__ = "my_plugin.methods"
    monkeypatch.setitem(check.METHODS._items, "my-plugin-method", PluginMethod)
    assert check.load_suite().untested_methods() == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[case]]\nmethod = "no-such-method"\ndataset = "synth-tiny"\n', "no-such-method"),
        ('seeds = 0\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "seeds"),
        ('[[case]]\nmethod = "eszsl"\n', "dataset"),
        ('colour = "red"\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "colour"),
        ("name = 'x'\n", "no \\[\\[case\\]\\]"),
        ('threads = 2\n[noise]\nthreads = 2\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "must differ"),
        ('[noise]\ncolour = 1\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "\\[noise\\]"),
        ('[noise]\nenv = { MKL_CBWR = 1 }\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "env must map"),
    ],
)
def test_bad_suite_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    with pytest.raises(Exception, match=message) as info:
        check.load_suite(path)
    assert isinstance(info.value, ConfigError | check.GZSLBenchError)
    code, output = run_check(path, tmp_path / "b.json")
    assert code == 2 and output.startswith("error:") and "Traceback" not in output


@pytest.mark.slow
def test_full_ci_suite_passes_against_the_committed_baseline() -> None:
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_every_mutant_fails_the_ci_check_and_unchanged_code_passes_at_two_threads() -> None:
    """benchmarks/mutants.py: four one-line faults each fail `gzslbench check`; unchanged code at
    --threads 2 passes against the 1-thread baseline."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mutants.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(", caught,") == 4 and "--threads 2: exit 0, passed" in proc.stdout


def test_from_results_tells_a_case_from_its_variant(tmp_path: Path) -> None:
    """SAE's case leaves ``direction`` at its default, its variant sets f2s: a case's overrides alone match both
    runs' records, and the case's own are those with its resolved config."""
    text = '[[case]]\nmethod = "sae"\ndataset = "synth-tiny"\n\n[[case]]\nname = "f2s"\nmethod = "sae"\n'
    text += 'dataset = "synth-tiny"\n[case.overrides]\ndirection = "f2s"\n'
    (tmp_path / "suite.toml").write_text('name = "variants"\nseeds = 1\n' + text)
    suite = check.load_suite(tmp_path / "suite.toml")
    gzslbench.run("sae", "synth-tiny", out=tmp_path / "results")
    gzslbench.run("sae", "synth-tiny", out=tmp_path / "results", overrides={"direction": "f2s"})
    found = check.collect(suite, tmp_path / "results")
    assert [r["config"]["direction"] for r in found["sae@synth-tiny"]] == ["s2f"]
    assert [r["config"]["direction"] for r in found["f2s"]] == ["f2s"]
