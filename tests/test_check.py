"""``gzslbench check``: the suite file, the tolerance, and that deliberate breakage fails the check."""

from __future__ import annotations

import dataclasses
import json
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
from gzslbench.core.errors import ConfigError
from gzslbench.studies import check

# CADA-VAE on an easy 15-class dataset, 300 small VAE iterations: U, S and H all far above chance.
TINY_CASE = """
name = "tiny"
seeds = 3
threads = 1
[tolerance]
k = 4.0
floor = 3.0
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
    assert "torch" in data["environment"] and data["mode"] == "last"


def test_runs_use_the_suite_thread_count(made: tuple[Path, Path]) -> None:
    """The suite's ``threads = 1`` reaches every run, not the runner's default of one thread per core."""
    from gzslbench.results.store import iter_records

    _, baseline = made
    records = list(iter_records(baseline.parent / "results"))
    assert records and {(r["threads"], r["env"]["torch_threads"]) for r in records} == {(1, 1)}


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


def test_tolerance_is_k_standard_errors_with_a_floor() -> None:
    base = {"mean": 50.0, "std": 2.0, "values": [48.0, 50.0, 52.0]}
    now = {"mean": 50.0, "std": 2.0, "values": [48.0, 50.0, 52.0]}
    assert check.tolerance(base, now, k=4.0, floor=1.0) == pytest.approx(4.0 * np.sqrt(8 / 3))
    assert check.tolerance(base, now, k=4.0, floor=10.0) == 10.0
    golden = {"mean": 11.4, "std": 0.0, "values": [11.4]}
    assert check.tolerance(golden, golden, k=4.0, floor=0.5) == 0.5


def test_verdicts_and_exit_status(tmp_path: Path) -> None:
    suite = check.load_suite(write_suite(tmp_path))
    key = suite.cases[0].key

    def records(h: float) -> list[dict]:
        return [
            {"status": "ok", "seed": s, "config_hash": "x", "metrics": {"last": {"U": h, "S": h, "H": h}}}
            for s in suite.cases[0].seeds
        ]

    baseline = {"cases": {key: {"suite_entry": suite.cases[0].entry(), **check.summarize(records(40.0))}}}
    assert check.exit_status(check.compare(suite, baseline, {key: records(41.0)})) == check.EXIT_OK
    assert check.exit_status(check.compare(suite, baseline, {key: records(30.0)})) == check.EXIT_REGRESSION
    assert check.exit_status(check.compare(suite, baseline, {key: records(50.0)})) == check.EXIT_UPDATE
    assert check.exit_status(check.compare(suite, None, {key: records(40.0)})) == check.EXIT_UPDATE
    failed = [{"status": "failed", "seed": 0, "error": "boom"}]
    assert check.exit_status(check.compare(suite, baseline, {key: failed})) == check.EXIT_REGRESSION
    assert check.exit_status(check.compare(suite, baseline, {})) == check.EXIT_REGRESSION


def test_default_suite_covers_every_registered_method() -> None:
    suite = check.load_suite()
    assert suite.untested_methods() == []
    assert {case.method for case in suite.cases} == set(check.METHODS.names())
    short = dataclasses.replace(suite, cases=suite.cases[1:])
    assert short.untested_methods() == [suite.cases[0].method]
    baseline = check.read_baseline(check.default_baseline_path())
    assert baseline is not None and set(baseline["cases"]) == {case.key for case in suite.cases}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[case]]\nmethod = "no-such-method"\ndataset = "synth-tiny"\n', "no-such-method"),
        ('seeds = 0\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "seeds"),
        ('[[case]]\nmethod = "eszsl"\n', "dataset"),
        ('colour = "red"\n[[case]]\nmethod = "eszsl"\ndataset = "synth-tiny"\n', "colour"),
        ("name = 'x'\n", "no \\[\\[case\\]\\]"),
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
