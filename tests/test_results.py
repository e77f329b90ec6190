"""Run records: atomic writes, unreadable files, loading into a DataFrame."""

from __future__ import annotations

import json

import pytest

from gzslbench import results
from gzslbench.errors import GZSLBenchError
from gzslbench.results import load_results, read_record, record_path, write_json_atomic


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
    metrics = {"last": {"epoch": 3, "U": h / 2, "S": h * 1.5, "H": h, "ZSL": h}}
    return {"method": method, "dataset": "d", "config_hash": "x", "seed": seed, "status": status, "metrics": metrics}


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
