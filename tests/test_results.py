"""Run records: atomic writes, unreadable files, loading into a DataFrame."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.files import write_json_atomic
from gzslbench.results import store as results
from gzslbench.results.record import SCHEMA_VERSION, RecordError
from gzslbench.results.store import (
    load_record,
    load_results,
    mixed_provenance,
    read_record,
    record_path,
    remove_stale_temp_files,
)


def test_record_path_layout(tmp_path):
    path = record_path(tmp_path, "cub", "acmr", "abc123", 4)
    assert path == tmp_path / "runs" / "cub" / "acmr" / "abc123" / "seed-4.json"


def test_atomic_write_leaves_old_file_intact_on_crash(tmp_path, monkeypatch):
    """A crash in the middle of writing neither truncates the previous record nor leaves a temp file."""
    path = tmp_path / "a" / "seed-0.json"
    write_json_atomic(path, {"status": "ok", "value": 1})

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.json, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        write_json_atomic(path, {"status": "ok", "value": 2})
    assert json.loads(path.read_text())["value"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["seed-0.json"]


def test_truncated_record_is_ignored(tmp_path):
    path = tmp_path / "seed-0.json"
    path.write_text('{"status": "ok", "metr')
    assert read_record(path) is None


def _record(method, seed, h, status="ok"):
    metrics = {"last": {"epoch": 3, "U": h / 2, "S": h * 1.5, "H": h, "U_restricted": h}}
    return {
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "dataset": "d",
        "config_hash": "x",
        "config": {},
        "seed": seed,
        "status": status,
        "metrics": metrics,
    }


def test_load_results_long_frame(tmp_path):
    for seed, h in enumerate([40.0, 50.0]):
        write_json_atomic(record_path(tmp_path, "d", "m", "x", seed), _record("m", seed, h))
    write_json_atomic(record_path(tmp_path, "d", "m", "x", 9), {**_record("m", 9, 0), "status": "failed"})
    frame = load_results(tmp_path)
    assert len(frame) == 2 and frame["H"].tolist() == [40.0, 50.0]
    assert len(load_results(tmp_path, include_failed=True)) == 3


def test_missing_results_folder_is_a_clear_error(tmp_path):
    with pytest.raises(GZSLBenchError, match="does not exist"):
        load_results(tmp_path / "nope")


def test_records_are_strict_json_with_null_for_non_finite_values(tmp_path):
    path = tmp_path / "seed-0.json"
    write_json_atomic(path, {**_record("m", 0, 10.0), "timings": {"a": float("nan"), "b": [float("inf"), 1.0]}})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["timings"] == {"a": None, "b": [None, 1.0]}


def test_unusable_records_are_named_and_skipped(tmp_path):
    """Truncated, incomplete, foreign and too-new records are each reported with the file and what to do."""
    good = record_path(tmp_path, "d", "m", "x", 0)
    write_json_atomic(good, _record("m", 0, 40.0))
    truncated = record_path(tmp_path, "d", "m", "x", 1)
    truncated.write_text('{"schema_version": 2, "status": "ok", "metr')
    incomplete = record_path(tmp_path, "d", "m", "x", 2)
    write_json_atomic(incomplete, {k: v for k, v in _record("m", 2, 1.0).items() if k != "metrics"})
    foreign = record_path(tmp_path, "d", "m", "x", 3)
    write_json_atomic(foreign, {"hello": "world"})
    newer = record_path(tmp_path, "d", "m", "x", 4)
    write_json_atomic(newer, {**_record("m", 4, 1.0), "schema_version": SCHEMA_VERSION + 1})
    problems: list[str] = []
    frame = load_results(tmp_path, problems=problems)
    assert frame["seed"].tolist() == [0]
    assert len(problems) == 4
    assert any(str(truncated) in p and "probably truncated" in p for p in problems)
    assert any(str(incomplete) in p and "missing metrics" in p and "--force" in p for p in problems)
    assert any(str(foreign) in p and "not a gzslbench run record" in p for p in problems)
    assert any(str(newer) in p and "upgrade gzslbench" in p for p in problems)
    with pytest.raises(RecordError, match="missing metrics"):
        load_record(incomplete)


def test_schema_1_records_are_upgraded_on_read(tmp_path):
    old = {
        "schema_version": 1,
        "method": "m",
        "dataset": "d",
        "seed": 0,
        "config_hash": "x",
        "config": {},
        "status": "ok",
        "spec": {"data_dir": "/data", "device": "cpu", "validate": False},
        "env": {"gzslbench": "0.1.0", "git_commit": "abc", "torch_threads": 2},
        "metrics": {"last": {"epoch": 1, "U": 1.0, "S": 2.0, "H": 1.3, "ZSL": 5.0}},
    }
    path = tmp_path / "seed-0.json"
    path.write_text(json.dumps(old))
    record = load_record(path)
    assert record["schema_version"] == SCHEMA_VERSION and "spec" not in record
    assert (record["data_dir"], record["device"], record["threads"]) == ("/data", "cpu", 2)
    assert record["metrics"]["last"]["U_restricted"] == 5.0 and "ZSL" not in record["metrics"]["last"]
    assert record["code"] == {"version": "0.1.0", "git_commit": "abc", "git_dirty": None}


def test_leftover_temp_files_are_removed(tmp_path):
    folder = record_path(tmp_path, "d", "m", "x", 0).parent
    folder.mkdir(parents=True)
    (folder / ".seed-0.json.abc.tmp").write_text("{")
    assert remove_stale_temp_files(tmp_path) == 1 and not list(folder.iterdir())


def test_mixed_data_code_and_devices_are_listed_per_cell(tmp_path):
    cases = [("f1", "c1", "Xeon"), ("f1", "c2", "Xeon"), ("f2", "c2", "EPYC"), ("f2", "c2", "")]
    for seed, (fp, commit, cpu) in enumerate(cases):
        record = {
            **_record("m", seed, 40.0),
            "data": {"fingerprint": fp},
            "code": {"version": "1", "git_commit": commit},
            "env": {"device_name": cpu},  # empty in older records: unknown, not a third model
        }
        write_json_atomic(record_path(tmp_path, "d", "m", "x", seed), record)
    notes = mixed_provenance(load_results(tmp_path))
    assert any("2 data: f1; f2" in n for n in notes) and any("2 code versions: 1+c1; 1+c2" in n for n in notes)
    assert any("2 processor models: EPYC; Xeon" in n for n in notes)


def test_a_folder_that_cannot_be_listed_is_named_not_silently_dropped(tmp_path, monkeypatch):
    for method in ("a", "b"):
        write_json_atomic(record_path(tmp_path, "d", method, "x", 0), _record(method, 0, 40.0))
    locked = record_path(tmp_path, "d", "b", "x", 0).parent.parent
    listing = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)  # the session runs as root, so chmod would not lock it
    problems: list[str] = []
    frame = load_results(tmp_path, problems=problems)
    assert set(frame["method"]) == {"a"}
    assert problems == [f"{locked}: folder not readable (Permission denied); its records are left out"]
