"""Protocol integrity: per-dataset defaults, stale-data resume, thread counts, exact replay, packaging."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_data

import gzslbench
from gzslbench.cli import cli
from gzslbench.core.errors import ConfigError
from gzslbench.datasets.base import DatasetAdapter
from gzslbench.datasets.synthetic import SynthTiny
from gzslbench.execution.resolve import defaults_source, method_config, plan_specs
from gzslbench.methods.base import Method, Scores
from gzslbench.methods.vae.registry import ACMR_DATASETS

ROOT = Path(__file__).resolve().parents[1]
SMALL_VAE = {
    "epochs": 2,
    "cls_epochs": 2,
    "visual_encoder_hidden": 24,
    "visual_decoder_hidden": 24,
    "attribute_encoder_hidden": 16,
    "attribute_decoder_hidden": 16,
    "latent_size": 6,
    "seen_samples": 20,
    "unseen_samples": 15,
    "batch_size": 16,
}


def write_npz(path: Path, seed: int = 0) -> Path:
    data = make_tiny_data(seed=seed)
    np.savez(
        path,
        features=data.features,
        labels=data.labels,
        attributes=data.attributes,
        trainval=data.trainval,
        test_seen=data.test_seen,
        test_unseen=data.test_unseen,
    )
    return path


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


# --- 2. no silent fallback to CUB settings ---------------------------------------------------


@pytest.mark.parametrize(("dataset", "borrowed"), [("apy", "awa1"), ("flo", "cub")])
def test_apy_and_flo_borrow_the_nearest_reference_setting_and_say_so(dataset, borrowed):
    config = method_config("acmr", dataset)
    for key, value in ACMR_DATASETS[borrowed].items():
        assert config[key] == value
    _, source = defaults_source("acmr", dataset)
    assert source["dataset"] == borrowed and "no reference setting" in source["note"]


def test_apy_no_longer_runs_on_cub_schedules():
    """Before: apy fell back to the method's CUB defaults without a word."""
    assert method_config("acmr", "apy")["kl_schedule"] != method_config("acmr", "cub")["kl_schedule"]


def test_dataset_without_settings_is_refused_with_a_way_out():
    class OnlyCub(Method):
        name = "only-cub"
        defaults: ClassVar[dict[str, Any]] = {"k": 1}
        dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {"cub": {"k": 2}}

        def predict(self, split, config, ctx):  # pragma: no cover - never run
            yield from ()

    with pytest.raises(ValueError, match=r"settings for cub only, not for 'sun'.*defaults_from"):
        OnlyCub.defaults_for("sun")
    gzslbench.METHODS._items["only-cub"] = OnlyCub
    try:
        with pytest.raises(ConfigError, match="method 'only-cub' has per-dataset settings for cub only"):
            method_config("only-cub", "sun")
    finally:
        del gzslbench.METHODS._items["only-cub"]


def test_config_command_and_record_name_the_defaults_used(invoke, tmp_path):
    shown = invoke("config", "-m", "cada-vae", "-d", "apy")
    assert shown.exit_code == 0 and "# per-dataset defaults: awa1 settings for apy" in shown.output
    npz = write_npz(tmp_path / "mine.npz")
    specs = plan_specs(["cada-vae"], ["custom"], [0], options={"path": str(npz), "defaults_from": "flo"}, device="cpu")
    assert specs[0].defaults_source["dataset"] == "cub" and specs[0].config["cls_epochs"] == 23
    record = gzslbench.run("eszsl", "custom", options={"path": str(npz)}, out=tmp_path / "r", device="cpu")[0]
    assert record["defaults_source"]["note"] == "method defaults (no per-dataset settings)"


# --- 3. resume never trusts records made from other data ------------------------------------


def test_resume_refuses_records_from_other_data_and_force_replaces_them(invoke, tmp_path):
    npz = write_npz(tmp_path / "mine.npz", seed=0)
    first = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q")
    assert first.exit_code == 0, first.output
    path = next((tmp_path / "results" / "runs").rglob("seed-0.json"))
    before = json.loads(path.read_text())
    assert before["code"]["version"] == gzslbench.__version__ and "git_dirty" in before["code"]
    write_npz(npz, seed=1)  # same file name, other features: same config hash, other data
    again = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q")
    assert again.exit_code == 2
    assert "made from other data" in again.output and "--force" in again.output
    assert json.loads(path.read_text()) == before  # nothing was overwritten
    forced = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q", "--force")
    assert forced.exit_code == 0
    after = json.loads(path.read_text())
    assert after["data"]["fingerprint"] != before["data"]["fingerprint"]
    assert after["metrics"] != before["metrics"]


def test_same_data_elsewhere_resumes(invoke, tmp_path):
    """A copy of the same file at another path is the same data: only the fingerprint decides."""
    write_npz(tmp_path / "a.npz")
    assert invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q").exit_code == 0
    stamp = next((tmp_path / "results").rglob("seed-0.json")).stat().st_mtime_ns
    assert invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q").exit_code == 0
    assert next((tmp_path / "results").rglob("seed-0.json")).stat().st_mtime_ns == stamp


# --- 5. thread count: serial and parallel give the same numbers ------------------------------


def test_parallel_and_serial_vae_runs_agree_at_equal_thread_count(tmp_path):
    kwargs = {"seeds": 2, "overrides": SMALL_VAE, "device": "cpu", "threads": 1}
    serial = gzslbench.run("cada-vae", "synth-tiny", out=tmp_path / "serial", n_jobs=1, **kwargs)
    parallel = gzslbench.run("cada-vae", "synth-tiny", out=tmp_path / "parallel", n_jobs=2, **kwargs)
    assert [r["threads"] for r in serial + parallel] == [1, 1, 1, 1]
    assert [r["device"] for r in serial] == ["cpu", "cpu"]
    by_seed = {r["seed"]: r["metrics"] for r in parallel}
    for record in serial:
        assert record["metrics"] == by_seed[record["seed"]]
    assert serial[0]["metrics"] != serial[1]["metrics"]  # the seed matters, so agreement means something


# --- 8. the recorded command replays the run exactly -----------------------------------------


def test_recorded_command_replays_from_another_folder(invoke, tmp_path, monkeypatch):
    write_npz(tmp_path / "mine.npz")
    first = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "--set", "gamma=10", "-q")
    assert first.exit_code == 0
    record = json.loads(next((tmp_path / "results").rglob("seed-0.json")).read_text())
    command = record["command"]
    assert "--device cpu" in command and f"path={tmp_path / 'mine.npz'}" in command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    words = shlex.split(command)
    args = words[words.index("gzslbench") + 2 :]  # drop "gzslbench run" (and the math-library settings before it)
    replay = CliRunner().invoke(cli, ["run", *args, "--force", "-q"], catch_exceptions=False)
    assert replay.exit_code == 0, replay.output
    assert not (elsewhere / "results").exists()  # the replay writes beside the record it repeats
    again = json.loads(next((tmp_path / "results").rglob("seed-0.json")).read_text())
    assert again["started_at"] != record["started_at"]  # run again, not skipped
    assert again["config_hash"] == record["config_hash"] and again["metrics"] == record["metrics"]
    assert again["command"] == command


# --- 1. the --val record says how its validation split was made -------------------------------


def test_val_record_holds_the_validation_provenance(tmp_path):
    record = gzslbench.run("eszsl", "synth-tiny", out=tmp_path, validate=True, device="cpu")[0]
    validation = record["data"]["validation"]
    assert validation["carved_from"] == "trainval"
    counts = validation["n_val_train"] + validation["n_val_seen"] + validation["n_val_unseen"]
    assert counts == record["data"]["n_trainval"]
    assert "val" in record["metrics"] and record["selection"]["val"].startswith("epoch selected on the validation")


# --- 8. packaging truth ----------------------------------------------------------------------


def test_dependency_bounds_match_what_the_code_uses():
    """joblib's return_as='generator_unordered' needs 1.4; tomllib needs Python 3.11 or a tomli fallback."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = {re.split(r"[<>=!~; ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    joblib_floor = re.search(r">=\s*([\d.]+)", deps["joblib"]).group(1)
    assert tuple(int(x) for x in joblib_floor.split(".")) >= (1, 4)
    python_floor = re.search(r">=\s*3\.(\d+)", project["requires-python"]).group(1)
    assert int(python_floor) >= 11 or "python_version < '3.11'" in deps.get("tomli", "")


class _LeakyBlobs(DatasetAdapter):
    """A plugin's adapter that builds its data without validating it: the unseen classes leak into trainval."""

    name = "leaky-blobs"
    description = "test: unvalidated data"
    defaults_from = "cub"
    options = {"problem": "leak"}

    def load(self, data_dir=None, **options):
        data = SynthTiny().load()
        if options["problem"] == "leak":
            return dataclasses.replace(data, trainval=np.concatenate([data.trainval, data.test_unseen[:3]]), extra={})
        if options["problem"] == "nan":
            features = np.array(data.features, copy=True)
            features[0, 0] = np.nan
            return dataclasses.replace(data, features=features, extra={})
        if options["problem"] == "list":
            return dataclasses.replace(data, labels=data.labels.tolist(), extra={})
        if options["problem"] == "raise":
            raise KeyError("features")  # the plugin's own bug, e.g. a file without the key it expects
        return {"features": data.features}


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("leak", "dataset 'leaky-blobs': splits 'trainval' and 'test_unseen' share instances"),
        ("nan", "dataset 'leaky-blobs': features contain 1 NaN or infinite values"),
        ("list", "dataset 'leaky-blobs': 'labels' must be a numpy array, got list"),
        ("dict", "dataset 'leaky-blobs': load() returned a dict, not a GZSLData"),
        ("raise", f"dataset 'leaky-blobs' (module {__name__}) failed to load: KeyError: 'features'"),
    ],
)
def test_data_from_an_adapter_that_does_not_validate_is_validated(monkeypatch, tmp_path, problem, message):
    monkeypatch.setitem(gzslbench.DATASETS._items, "leaky-blobs", _LeakyBlobs)
    result = CliRunner().invoke(
        cli, ["run", "-m", "eszsl", "-d", "leaky-blobs", "-D", f"problem={problem}", "--results", str(tmp_path)]
    )
    assert result.exit_code == 2 and result.stderr == f"error: {message}\n", result.output
    assert not list(tmp_path.rglob("*.json"))


class _ShapedScores(Method):
    """Yields prototype scores, damaged as its config says: a method's mistakes must be named, not recorded ok."""

    name = "shaped-scores"
    description = "test: scores of a chosen shape"
    defaults: ClassVar[dict[str, Any]] = {"damage": "none"}

    def predict(self, split, config, ctx):
        import torch

        def scores(x):
            return torch.as_tensor(x) @ torch.randn(x.shape[1], split.n_classes, generator=ctx.generator(0))

        seen, unseen = scores(split.test_seen_x), scores(split.test_unseen_x)
        damage = config["damage"]
        if damage == "extra-column":
            seen, unseen = torch.cat([seen, seen[:, :3]], 1), torch.cat([unseen, unseen[:, :3]], 1)
        elif damage == "row-short":
            seen = seen[1:]
        elif damage == "numpy":
            seen = seen.numpy()
        elif damage == "bfloat16":
            seen, unseen = seen.bfloat16(), unseen.bfloat16()
        yield Scores(1, seen, unseen)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("extra-column", r"seen scores of epoch 1 have shape \(60, 18\), expected \(60, 15\)"),
        ("row-short", r"seen scores of epoch 1 have shape \(59, 15\), expected \(60, 15\)"),
        ("numpy", "seen scores of epoch 1 are a ndarray, not a floating-point torch tensor"),
        ("bfloat16", None),
    ],
)
def test_scores_of_the_wrong_shape_or_type_fail_the_run_with_the_reason(monkeypatch, tmp_path, damage, reason):
    monkeypatch.setitem(gzslbench.METHODS._items, "shaped-scores", _ShapedScores)
    (record,) = gzslbench.run("shaped-scores", "synth-tiny", out=tmp_path, overrides={"damage": damage})
    if reason is None:  # half precision is evaluated in fp32
        assert record["status"] == "ok"
        return
    assert record["status"] == "failed" and not record.get("metrics")
    assert re.search(f"method 'shaped-scores' {reason}", record["error"]), record["error"]


def test_tables_select_records_of_a_method_registered_elsewhere(monkeypatch, tmp_path):
    """Records outlive their registration (a script's method, an uninstalled plugin): -m still selects them."""
    with monkeypatch.context() as registered:
        registered.setitem(gzslbench.METHODS._items, "shaped-scores", _ShapedScores)
        gzslbench.run(["shaped-scores", "eszsl"], "synth-tiny", out=tmp_path)
    assert "shaped-scores" not in gzslbench.METHODS
    table = CliRunner().invoke(cli, ["table", "--results", str(tmp_path), "-m", "Shaped_Scores"])
    assert table.exit_code == 0, table.output
    assert "shaped-scores" in table.stdout and "eszsl" not in table.stdout
    typo = CliRunner().invoke(cli, ["table", "--results", str(tmp_path), "-m", "shaped-score"])
    assert typo.exit_code == 2 and "Did you mean: shaped-scores?" in typo.stderr
