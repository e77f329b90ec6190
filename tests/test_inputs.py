"""Bad input and damaged files: refused with one line naming them, never silently used, never a traceback."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_data, one_line_error, write_record

import gzslbench
from gzslbench.cli import cli
from gzslbench.core import files
from gzslbench.core.errors import DataError, GZSLBenchError
from gzslbench.core.registry import DATASETS
from gzslbench.data.dataset import validate
from gzslbench.execution import execute as runner
from gzslbench.execution.resolve import method_config
from gzslbench.reports.plots import latent_points
from gzslbench.results.record import SCHEMA_VERSION
from gzslbench.results.store import load_record, load_results
from gzslbench.studies import sweep as sweeps


def handled_error(result, exit_code: int = 2) -> str:
    """:func:`one_line_error`, and the error was foreseen (no ``unexpected ...`` line)."""
    line = one_line_error(result, exit_code)
    assert "unexpected" not in result.output
    return line


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) if the block runs longer than ``seconds``: for work that would otherwise never end."""

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def write_npz(path: Path, **changes: np.ndarray) -> Path:
    data = make_tiny_data()
    content = {
        "features": data.features,
        "labels": data.labels,
        "attributes": data.attributes,
        "trainval": data.trainval,
        "test_seen": data.test_seen,
        "test_unseen": data.test_unseen,
        "class_names": np.array([f"c{i}" for i in range(data.n_classes)]),
        **changes,
    }
    np.savez(path, **content)
    return path


# --- 1. a record from a newer gzslbench is never overwritten ------------------------------------


def test_run_refuses_to_overwrite_a_record_of_a_newer_gzslbench_unless_forced(invoke, tmp_path):
    assert invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q").exit_code == 0
    path = next((tmp_path / "results" / "runs").rglob("seed-0.json"))
    newer = {**json.loads(path.read_text()), "schema_version": SCHEMA_VERSION + 1, "metrics": {"from": "the future"}}
    path.write_text(json.dumps(newer))
    line = handled_error(invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q"))
    assert str(path.relative_to(tmp_path)) in line and "newer gzslbench" in line and "--force" in line
    assert json.loads(path.read_text()) == newer  # nothing was run, nothing overwritten
    assert invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q", "--force").exit_code == 0
    assert load_record(path)["schema_version"] == SCHEMA_VERSION


# --- 2. corrupt metric values and misplaced records never reach a table -------------------------


def _damage_seed_0(results: Path, edit) -> Path:
    path = results / "runs" / "synth-cub" / "acmr" / "cfg0" / "seed-0.json"
    record = json.loads(path.read_text())
    path.write_text(edit(record))
    return path


def _with_h(value):
    def edit(record):
        record["metrics"]["last"]["H"] = value
        return json.dumps(record)

    return edit


def _raw_h(text):
    def edit(record):
        record["metrics"]["last"]["H"] = 12345.5
        return json.dumps(record).replace("12345.5", text)

    return edit


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_with_h(250.0), "'H' = 250.0 is outside 0..100"),
        (_with_h(-1.0), "'H' = -1.0 is outside 0..100"),
        (_raw_h("NaN"), "'H' = nan is not a finite number"),
        (_raw_h("1e999"), "'H' = inf is not a finite number"),
        (_with_h("40.0"), "'H' = '40.0' is not a number"),
        (_with_h(True), "'H' = True is not a number"),
        (_with_h(None), "'H' is missing"),
    ],
)
def test_corrupt_metric_values_are_named_skipped_and_refused_under_strict(paper_results, edit, reason):
    path = _damage_seed_0(paper_results, edit)
    problems: list[str] = []
    frame = load_results(paper_results, problems=problems)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: ") and reason in problems[0], problems
    assert sorted(frame.loc[(frame["method"] == "acmr") & (frame["dataset"] == "synth-cub"), "seed"].unique()) == [1, 2]
    shown = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "-d", "synth-cub"])
    assert shown.exit_code == 0, shown.output
    assert f"warning: skipped {path}: " in shown.output and "43.0 ± 1.4" in shown.output  # seeds 1 and 2 only
    strict = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "--strict"])
    assert strict.exit_code == 2 and "--strict: 1 unusable record(s)" in strict.output


def test_non_finite_metric_of_another_mode_is_refused_and_absent_metrics_may_be_null(paper_results):
    path = _damage_seed_0(paper_results, lambda r: json.dumps(r).replace('"U": 31.0', '"U": NaN'))
    assert "NaN" in path.read_text()  # oracle U of seed 0
    problems: list[str] = []
    load_results(paper_results, problems=problems)
    assert len(problems) == 1 and "metrics 'oracle': 'U' = nan is not a finite number" in problems[0]

    def absent(record):
        record["metrics"]["oracle"]["U"] = 31.0
        record["metrics"]["last"].update(AUSUC=None, U_cs=None, S_cs=None, H_cs=None, gamma_cs=None)
        return json.dumps(record)

    _damage_seed_0(paper_results, absent)  # strict JSON writes a NaN metric as null: legitimately absent
    problems.clear()
    load_results(paper_results, problems=problems)
    assert problems == []


def test_a_copied_record_does_not_count_as_another_seed(paper_results):
    folder = paper_results / "runs" / "synth-cub" / "acmr" / "cfg0"
    shutil.copy(folder / "seed-0.json", folder / "seed-7.json")
    problems: list[str] = []
    frame = load_results(paper_results, problems=problems)
    assert problems == [f"{folder / 'seed-7.json'}: holds the record of seed 0, but its file name says seed 7"]
    assert sorted(frame.loc[(frame["method"] == "acmr") & (frame["dataset"] == "synth-cub"), "seed"].unique()) == [
        0,
        1,
        2,
    ]
    shown = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "-d", "synth-cub"])
    assert "42.0 ± 2.0" in shown.output and "warning: skipped" in shown.output  # 3 seeds, not 4
    strict = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "--strict"])
    assert strict.exit_code == 2


def test_a_record_whose_fields_disagree_with_its_folders_is_skipped(paper_results):
    """A record edited (or written) under another run's folders would be counted in another table cell and its saved
    model looked for elsewhere (`plot tsne` said the model was missing)."""
    path = _damage_seed_0(paper_results, lambda r: json.dumps({**r, "dataset": "synth-awa1"}))
    problems: list[str] = []
    frame = load_results(paper_results, problems=problems)
    assert problems == [
        f"{path}: holds the record of run synth-awa1/acmr/cfg0, but its folders say synth-cub/acmr/cfg0"
    ]
    assert "synth-awa1" not in set(frame.loc[frame["method"] == "acmr", "dataset"])


# --- 3. the converted-data cache follows the file's content ------------------------------------


def test_the_xlsa17_cache_is_keyed_by_content_not_size_and_mtime(tmp_path, monkeypatch):
    from test_xlsa17 import FEATURE_DIM, small_folder, write_res101

    monkeypatch.setenv("GZSLBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GZSLBENCH_DATA", raising=False)
    folder = small_folder(tmp_path / "CUB")
    res101 = folder / "res101.mat"
    first = DATASETS.get("cub")().load(tmp_path)
    assert first.extra["cache"] == "written"
    stat = res101.stat()
    os.utime(res101, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same bytes: still a hit
    assert DATASETS.get("cub")().load(tmp_path).extra["cache"] == "hit"

    def replace_keeping_size_and_mtime(content: bytes) -> None:
        before = res101.stat()
        res101.write_bytes(content)
        os.utime(res101, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert (res101.stat().st_size, res101.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    labels = np.repeat(np.arange(1, 7), 6)
    other = tmp_path / "other"
    write_res101(other, np.random.default_rng(9).random((len(labels), FEATURE_DIM), dtype=np.float32), labels)
    replace_keeping_size_and_mtime((other / "res101.mat").read_bytes())  # other features, same size
    again = DATASETS.get("cub")().load(tmp_path)
    assert again.extra["cache"] == "written" and not np.array_equal(again.features, first.features)
    replace_keeping_size_and_mtime(b"\0" * stat.st_size)  # corrupt
    with pytest.raises(DataError, match="not a readable MATLAB file"):
        DATASETS.get("cub")().load(tmp_path)


# --- 4. no unbounded work without a word -------------------------------------------------------


def test_sweep_refuses_a_grid_of_a_million_points_at_once(invoke):
    with deadline(30):
        result = invoke("sweep", "-m", "eszsl", "-d", "synth-tiny", "--grid", "gamma=logspace(0,1,1000000)", "-q")
    line = handled_error(result)
    assert "1000000" in line and str(sweeps.MAX_POINTS) in line


def test_sweep_refuses_huge_axes_and_samples_before_building_them():
    with deadline(10), pytest.raises(GZSLBenchError, match="more than 10000"):
        sweeps.parse_grid(["gamma=linspace(0,1,1000000000000)"])
    with deadline(10), pytest.raises(GZSLBenchError, match="more than 10000"):
        sweeps.parse_grid({"gamma": list(range(1_000_000))})
    grid = sweeps.parse_grid(["a=linspace(0,1,1000)", "b=linspace(0,1,1000)"])
    with pytest.raises(GZSLBenchError, match="--random 20000 is more than 10000"):
        sweeps.grid_points(grid, random=20_000)
    assert len(sweeps.grid_points(grid, random=5)) == 5
    assert sweeps.parse_grid({"w": [[1, 2], [2, 1], 3]})["w"] == [[1, 2], [2, 1], 3]
    with pytest.raises(GZSLBenchError, match="appears twice"):
        sweeps.parse_grid({"w": [[1, 2], 3, [1, 2]]})


@pytest.mark.parametrize(
    ("method", "setting", "message"),
    [
        ("acmr", "epochs=1000000000000", "'epochs' = 1000000000000 is out of range (must be >= 0 and <= 100000)"),
        ("acmr", "cls_epochs=1000000", "config 'cls_epochs' = 1000000 is out of range"),
        ("acmr", "batch_size=1000000000", "'batch_size' = 1000000000 is out of range (must be >= 1 and <= 100000)"),
        ("acmr", "cls_batch_size=1000000000", "config 'cls_batch_size' = 1000000000 is out of range"),
        ("ale", "epochs=1e12", "config 'epochs' = 1000000000000 is out of range (must be >= 1 and <= 100000)"),
        ("devise", "batch_size=1000000000", "config 'batch_size' = 1000000000 is out of range"),
    ],
)
def test_epochs_and_batch_sizes_have_an_upper_bound(invoke, tmp_path, method, setting, message):
    with deadline(60):
        result = invoke("run", "-m", method, "-d", "synth-tiny", "-q", "--set", setting)
    line = handled_error(result)
    assert message in line
    assert not list(tmp_path.rglob("seed-*.json"))


# --- 5. no tracebacks, no "unexpected" errors ----------------------------------------------------


@pytest.mark.parametrize("args", [["-m", "", "-d", "synth-tiny"], ["-m", "eszsl", "-d", ","], ["-m", " ,"]])
def test_run_without_a_method_or_dataset_name_is_one_line(invoke, tmp_path, args):
    args = args if "-d" in args else [*args, "-d", "synth-tiny"]
    line = handled_error(invoke("run", *args, "-q"))
    assert "no method named" in line or "no dataset named" in line
    assert not list(tmp_path.rglob("seed-*.json"))


def _npz_declaring(path: Path, key: str, shape: tuple[int, ...]) -> Path:
    """``path`` rewritten so that ``key``'s header declares ``shape`` (float32) over only a few bytes of data."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    members[f"{key}.npy"] = header.getvalue() + b"\0" * 64  # the header starts with the magic string
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_an_npz_declaring_a_huge_array_is_refused_before_allocating_it(invoke, tmp_path):
    npz = _npz_declaring(write_npz(tmp_path / "mine.npz"), "features", (3_000_000_000, 2048))
    with pytest.raises(DataError) as info:
        DATASETS.get("custom")().load(path=str(npz))
    message = str(info.value)
    assert message.startswith(f"{npz}: 'features' declares shape (3000000000, 2048)") and "\n" not in message
    assert "truncated or corrupt" in message
    line = handled_error(invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q"))
    assert "'features' declares shape (3000000000, 2048)" in line


@pytest.mark.parametrize(
    "content",
    [b"this is not a model" * 10, pickle.dumps({"weights": [1, 2, 3], "f": os.path.join})],
    ids=["garbage", "pickle"],
)
def test_tsne_with_a_damaged_model_file_is_one_line(tmp_path, content):
    from conftest import write_record

    pytest.importorskip("sklearn")
    out = tmp_path / "results"
    config = method_config("acmr", "cub", None, {})
    write_record(out, "acmr", "synth-tiny", 0, 40.0, 30.0, 60.0, config=config, model_file="seed-0.model.pt")
    model = next(out.rglob("seed-0.json")).with_name("seed-0.model.pt")
    model.write_bytes(content)
    record = load_record(model.with_name("seed-0.json"))
    with pytest.raises(GZSLBenchError) as info:
        latent_points(record, model, n_classes=3)
    assert str(info.value).startswith(f"cannot load saved model '{model}'") and "\n" not in str(info.value)
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(out), "--out", str(tmp_path / "fig")])
    assert f"cannot load saved model '{model}'" in handled_error(result)


def test_a_full_disk_is_one_line_and_keeps_finished_records(invoke, tmp_path, monkeypatch):
    written: list[Path] = []

    def write_until_full(path, payload):
        if written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        files.write_json_atomic(path, payload)
        written.append(path)

    monkeypatch.setattr(runner, "write_json_atomic", write_until_full)
    monkeypatch.delenv("GZSLBENCH_DEBUG", raising=False)
    result = invoke("run", "-m", "ale", "-d", "synth-tiny", "--seeds", "3", "--n-jobs", "1", "-q")
    line = handled_error(result)
    assert line.startswith("error: no space left on device while writing ") and "seed-1.json" in line
    assert line.endswith("finished records are kept")
    assert [p.name for p in sorted(tmp_path.rglob("seed-*.json"))] == ["seed-0.json"]
    assert load_record(written[0])["status"] == "ok"


def test_a_full_disk_during_an_atomic_write_names_the_file_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "seed-0.json"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", full)
    with pytest.raises(GZSLBenchError) as info:
        files.write_json_atomic(path, {"status": "ok"})
    assert str(info.value) == f"no space left on device while writing {path}; finished records are kept"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert list(path.parent.iterdir()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_ctrl_c_on_a_dask_run_prints_one_line_not_worker_tracebacks(tmp_path):
    """A terminal's Ctrl-C reaches the command and its Dask worker processes alike: only the command speaks."""
    pytest.importorskip("distributed")
    command = [sys.executable, "-m", "gzslbench", "run", "-m", "cada-vae", "-d", "synth-tiny", "--seeds", "6", "-q"]
    command += ["--set", "epochs=30", "--set", "cls_epochs=2", "--set", "visual_encoder_hidden=64"]
    command += ["--threads", "1", "--batch-seeds", "1", "--backend", "dask", "--n-jobs", "2"]

    def own_group_with_default_sigint() -> None:
        os.setpgrp()  # a terminal's process group, of which the test is not part
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=own_group_with_default_sigint,
    )
    try:
        limit = time.monotonic() + 240
        while not list(tmp_path.rglob("seed-*.json")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < limit, "no record appeared in time"
            time.sleep(0.1)
        time.sleep(0.5)  # the workers are mid-run
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 130, err
    assert len(lines) <= 3 and "interrupted: finished runs are saved" in lines[-1], err
    for path in tmp_path.rglob("seed-*.json"):
        assert load_record(path)["status"] == "ok"


def test_distributed_logs_are_quiet_during_an_interrupted_shutdown_only():
    import logging

    pytest.importorskip("distributed")
    from gzslbench.execution.dask import quiet_distributed_logs

    nanny = logging.getLogger("distributed.nanny")
    nanny.setLevel(logging.INFO)
    before = logging.getLogger("distributed").level
    with quiet_distributed_logs():
        assert not nanny.isEnabledFor(logging.CRITICAL) and not logging.getLogger("distributed").isEnabledFor(50)
    assert nanny.level == logging.INFO and logging.getLogger("distributed").level == before


# --- 6. nonsense that used to be accepted ------------------------------------------------------


def test_a_class_with_all_zero_attributes_is_warned_about(invoke, tmp_path):
    data = make_tiny_data()
    attributes = data.attributes.copy()
    attributes[[2, 7]] = 0.0
    checked = validate(replace(data, attributes=attributes, extra={}), "mine")
    assert checked.extra["warnings"] == [
        "classes 2, 7 have an all-zero attribute vector: no attribute tells them apart from the other classes"
    ]
    attributes = data.attributes.copy()
    attributes[7] = 0.0
    write_npz(tmp_path / "mine.npz", attributes=attributes)
    result = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q")
    assert result.exit_code == 0, result.output
    assert (
        "warning: eszsl on custom seed 0: class 'c7' (id 7) has an all-zero attribute vector: no attribute tells it "
        "apart from the other classes"
    ) in result.output
    record = load_record(next(tmp_path.rglob("seed-0.json")))
    assert any("'c7'" in w and "all-zero attribute vector" in w for w in record["warnings"])


def test_classes_that_share_an_attribute_vector_or_a_name_are_warned_about():
    data = make_tiny_data()
    attributes = data.attributes.copy()
    attributes[8] = attributes[3]
    names = [f"c{c}" for c in range(len(attributes))]
    names[5] = "c4"
    checked = validate(replace(data, attributes=attributes, class_names=names, extra={}), "mine")
    assert checked.extra["warnings"] == [
        "classes 'c3' (id 3), 'c8' (id 8) share their attribute vector with another class: nothing tells them apart",
        "class name(s) 'c4' name more than one class",
    ]
    assert "warnings" not in validate(replace(data, extra={}), "mine").extra


@pytest.mark.parametrize("value", ["", ",", " "])
def test_table_with_no_metric_named_is_an_error(paper_results, value):
    result = CliRunner().invoke(cli, ["table", "--results", str(paper_results), "--metrics", value])
    assert "--metrics names no metric" in handled_error(result)


def test_data_check_of_a_missing_data_dir_is_an_error(tmp_path):
    result = CliRunner().invoke(cli, ["data", "check", "--data-dir", str(tmp_path / "nonexistent")])
    line = handled_error(result)
    assert str(tmp_path / "nonexistent") in line and "does not exist" in line


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("cbu", "unknown xlsa17 dataset 'cbu'. Did you mean: cub? Known: apy, awa1, awa2, cub, flo, sun."),
        ("synth-cub", "'synth-cub' is not an xlsa17 dataset; known: apy, awa1, awa2, cub, flo, sun"),
    ],
)
def test_data_check_names_only_the_datasets_it_checks(name, message):
    assert handled_error(CliRunner().invoke(cli, ["data", "check", name])) == f"error: {message}"


def test_an_unknown_option_is_not_answered_with_a_hidden_deprecated_one():
    result = CliRunner().invoke(cli, ["run", "-m", "eszsl", "-d", "synth-tiny", "--ou", "x"])
    assert "--out" not in handled_error(result)


def test_bench_refuses_zero_threads(capsys):
    from test_bench import bench

    assert bench.main(["--quick", "--size", "tiny", "--threads", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: --threads must be at least 1, got 0\n"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out: gzslbench.run("eszsl", "synth-tiny", seeds="2", out=out), "--seeds must be a whole number"),
        (lambda out: gzslbench.run("eszsl", "synth-tiny", seeds=1.5, out=out), "--seeds must be a whole number"),
        (lambda out: gzslbench.run("eszsl", "synth-tiny", threads="2", out=out), "--threads must be a whole number"),
        (lambda out: gzslbench.run("eszsl", "synth-tiny", n_jobs=1.5, out=out), "--n-jobs must be a whole number"),
        (lambda out: gzslbench.run("eszsl", "synth-tiny", overrides="gamma=1", out=out), "write ['gamma=1']"),
        (lambda out: gzslbench.get_method(None), "a name must be a string"),
        (lambda out: gzslbench.list_methods(None), "a name pattern must be a string"),
    ],
)
def test_python_api_misuse_is_a_gzslbench_error_with_one_line(tmp_path, call, message):
    """Wrong types from Python code get the CLI's kind of message, not a TypeError from deep inside."""
    with pytest.raises(GZSLBenchError, match=re.escape(message)):
        call(tmp_path)


def test_loading_results_from_a_file_is_an_error_not_an_empty_table(tmp_path):
    record = tmp_path / "seed-0.json"
    record.write_text("{}")
    with pytest.raises(GZSLBenchError, match="is a file, not a results folder"):
        gzslbench.load_results(record)


def test_an_npz_array_of_no_known_name_is_warned_about(invoke, tmp_path):
    """A misspelt optional split (``vals`` for ``val``) is not read: the run says so instead of going on silently."""
    data = make_tiny_data()
    write_npz(tmp_path / "mine.npz", vals=data.trainval[:5])
    result = invoke("run", "-m", "eszsl", "-d", "custom", "-D", "path=mine.npz", "-q")
    assert result.exit_code == 0, result.output
    assert "array(s) 'vals' of the .npz are not read" in result.output


def test_a_copy_of_a_results_folder_inside_another_counts_its_runs_once(paper_results, tmp_path):
    nested = tmp_path / "nested"
    shutil.copytree(paper_results, nested / "a")
    shutil.copytree(paper_results, nested / "b")
    problems: list[str] = []
    frame = load_results(nested, problems=problems)
    assert frame.equals(load_results(nested / "a"))  # the same rows as one copy, not twice as many seeds
    assert problems and all("another record of the run at" in p and "/b/" in p for p in problems)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("code", 5, "'code' = 5 is not a JSON object"),
        ("env", [], "'env' = [] is not a JSON object"),
        ("timings", "x", "'timings' = 'x' is not a JSON object"),
        ("history", "oops", "'history' = 'oops' is not a JSON object"),
        ("method", 3, "'method' = 3 is not a JSON string"),
        ("seed", "0", "'seed' = '0' is not a JSON integer"),
        ("status", "weird", "unknown status 'weird'"),
        ("schema_version", "x", "schema_version = 'x' is not a record schema"),
        ("schema_version", True, "schema_version = True is not a record schema"),
    ],
)
def test_a_record_with_a_field_of_the_wrong_type_is_named_and_skipped(paper_results, field, value, reason):
    """One damaged record must not stop the table of the whole folder."""
    path = next((paper_results / "runs").rglob("seed-0.json"))
    path.write_text(json.dumps(json.loads(path.read_text()) | {field: value}))
    problems: list[str] = []
    load_results(paper_results, problems=problems)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {reason}")
    shown = CliRunner().invoke(cli, ["table", "--results", str(paper_results)])
    assert shown.exit_code == 0 and "warning: skipped" in shown.output


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("execution.batch_seeds", "two", "'execution.batch_seeds' = 'two' is not a JSON integer"),
        ("execution.batch_seeds", [1], "'execution.batch_seeds' = [1] is not a JSON integer"),
        ("env.arithmetic_env", "MKL=1", "'env.arithmetic_env' = 'MKL=1' is not a JSON object"),
        ("env.arithmetic_env", {"MKL_CBWR": 1}, "'env.arithmetic_env' = {'MKL_CBWR': 1} does not map variable"),
        ("env.device_name", ["a"], "'env.device_name' = ['a'] is not a JSON string"),
        ("data.fingerprint", {"a": 1}, "'data.fingerprint' = {'a': 1} is not a JSON string"),
        ("protocol.version", [2], "'protocol.version' = [2] is not a JSON integer"),
        ("execution.batch_seeds", math.nan, "'execution.batch_seeds' = nan is not a JSON integer"),
        ("timings.batch_seeds", "x", "'timings.batch_seeds' = 'x' is not a JSON number"),
        ("timings.batch_seeds", math.inf, "'timings.batch_seeds' = inf is not a JSON number"),
        ("device", ["cpu"], "'device' = ['cpu'] is not a JSON string"),
        ("sweep", 5, "'sweep' = 5 is not a JSON string"),
        ("seed_dependent", "no", "'seed_dependent' = 'no' is not a JSON boolean"),
        ("metrics.last.epoch", "abc", "metrics 'last': 'epoch' = 'abc' is not a JSON integer"),
        ("history.test", "abc", "'history.test' = 'abc' is not a JSON array of rows"),
        ("history.test", ["a"], "'history.test' has a row 'a' that is not a JSON object"),
        ("history.test", [{"U": 1.0}], "'history.test' has a row without an 'epoch'"),
        ("history.train", [{"stage": "vae", "epoch": "x"}], "'history.train' has a row whose 'epoch' = 'x' is not"),
        ("history.train", [{"stage": "vae", "epoch": 1, "total": "y"}], "'history.train' has a row whose 'total'"),
        ("model_file", 5, "'model_file' = 5 is not a JSON string"),
        ("model_file", "../../etc/passwd", "'model_file' = '../../etc/passwd' is not a file name beside the record"),
    ],
)
def test_a_record_with_a_nested_field_of_the_wrong_type_is_named_and_skipped(paper_results, field, value, reason):
    """Fields inside blocks that tables, figures and checks read are checked on load like the top-level ones."""
    path = next((paper_results / "runs").rglob("seed-0.json"))
    record = json.loads(path.read_text())
    *blocks, key = field.split(".")
    block = record
    for name in blocks:
        block = block.setdefault(name, {})
    block[key] = value
    path.write_text(json.dumps(record))
    problems: list[str] = []
    frame = gzslbench.load_results(paper_results, problems=problems)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {reason}")
    assert not frame.empty  # the folder's other records are loaded
    shown = CliRunner().invoke(cli, ["table", "--results", str(paper_results)])
    assert shown.exit_code == 0 and f"warning: skipped {path}: {reason}" in shown.output


def test_a_folder_named_as_a_record_is_named_not_passed_over(paper_results):
    folder = next((paper_results / "runs").rglob("seed-0.json")).parent / "seed-9.json"
    folder.mkdir()
    problems: list[str] = []
    gzslbench.load_results(paper_results, problems=problems)
    assert problems == [f"{folder}: a folder, not a run record file"]


def test_a_record_nested_too_deeply_is_named_and_skipped(paper_results):
    path = next((paper_results / "runs").rglob("seed-0.json"))
    path.write_text("[" * 100_000 + "]" * 100_000)
    problems: list[str] = []
    load_results(paper_results, problems=problems)
    assert problems == [f"{path}: nested too deeply to be a run record"]


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "x" * 101, ".hidden", ""])
def test_a_sweep_name_that_is_no_plain_file_name_is_refused_before_training(tmp_path, name):
    with pytest.raises(GZSLBenchError, match="--name"):
        gzslbench.tune("eszsl", "synth-tiny", ["gamma=[1,2]"], name=name, out=tmp_path)
    assert not (tmp_path / "tuning").exists()


def test_a_key_in_the_grid_and_in_set_is_refused(tmp_path):
    with pytest.raises(GZSLBenchError, match="'gamma' is both a grid axis and a --set value"):
        gzslbench.sweep("eszsl", "synth-tiny", ["gamma=[1]"], overrides={"gamma": 2}, out=tmp_path)


def test_thread_counts_no_machine_has_are_refused(tmp_path):
    with pytest.raises(GZSLBenchError, match="--threads 100000 is more than 1024"):
        gzslbench.run("eszsl", "synth-tiny", threads=100_000, out=tmp_path)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x93NUMPY garbage"])
def test_damaged_saved_scores_are_one_line_naming_the_file(invoke, tmp_path, content):
    pytest.importorskip("matplotlib")
    gzslbench.run("sae", "synth-tiny", out=tmp_path / "results", save_scores=True)
    scores = next((tmp_path / "results").rglob("seed-0.scores.npz"))
    scores.write_bytes(content)
    result = invoke("plot", "seen-unseen", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "figs"))
    assert f"{scores}: damaged saved scores" in one_line_error(result)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda a: {"unseen_scores": a["unseen_scores"][:, :3]}, "seen_scores has 15 columns but unseen_scores 3"),
        (lambda a: {"unseen_classes": a["unseen_classes"][:0]}, "unseen_classes is empty or names classes outside"),
        (lambda a: {"seen_classes": a["seen_classes"] + 100}, "seen_classes is empty or names classes outside 0..14"),
        (lambda a: {"seen_y": a["seen_y"] + 1000}, "seen_y has labels of no seen class"),
        (lambda a: {"unseen_y": a["unseen_y"][1:]}, "unseen_y has 99 labels for 100 rows of unseen_scores"),
        (lambda a: {"seen_y": a["seen_y"].astype(float)}, "seen_y is a float64 array of shape (60,), not a list of"),
        (lambda a: {"seen_scores": np.vstack([np.full((1, 15), np.nan), a["seen_scores"][1:]])}, "seen_scores holds"),
        (lambda a: {"unseen_classes": a["seen_classes"]}, "unseen_y has labels of no unseen class"),
        (lambda a: {"unseen_scores": a["unseen_scores"][0]}, "unseen_scores is a float16 array of shape (15,), not a"),
    ],
)
def test_saved_scores_that_do_not_fit_together_are_one_line_naming_the_file(invoke, tmp_path, damage, reason):
    pytest.importorskip("matplotlib")
    gzslbench.run("sae", "synth-tiny", out=tmp_path / "results", save_scores=True)
    scores = next((tmp_path / "results").rglob("seed-0.scores.npz"))
    with np.load(scores) as saved:
        arrays = dict(saved)
    np.savez(scores, **(arrays | damage(arrays)))
    result = invoke("plot", "seen-unseen", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "figs"))
    line = handled_error(result)
    assert line.startswith(f"error: {scores}: damaged saved scores ({reason}") and "--save-scores --force" in line


def test_a_report_that_fails_midway_leaves_the_previous_report_as_it_was(paper_results, tmp_path, monkeypatch):
    from gzslbench.cli import report

    out = tmp_path / "report"
    report.write_report(str(paper_results), out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report, "draw", disk_full)
    write_record(paper_results, "acmr", "synth-cub", 3, 50.0, 30.0, 60.0)  # the new report's tables would differ
    with pytest.raises(OSError):
        report.write_report(str(paper_results), out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".report.*"))  # no build folder left beside it


def test_written_files_follow_the_umask_so_a_shared_results_folder_stays_readable(tmp_path):
    previous = os.umask(0o027)
    try:
        files.write_json_atomic(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640


def test_a_file_the_user_may_not_read_is_one_line_naming_it(invoke, monkeypatch):
    """Permissions are the user's to fix, not an 'unexpected' fault: one line with the file."""
    from gzslbench.execution import resolve

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "/data/CUB/res101.mat")

    monkeypatch.setattr(resolve, "load_dataset", denied)
    result = invoke("run", "-m", "eszsl", "-d", "synth-tiny")
    assert one_line_error(result) == "error: permission denied: '/data/CUB/res101.mat'"


def test_a_method_named_twice_runs_once(tmp_path):
    records = gzslbench.run(["eszsl", "ESZSL"], ["synth-tiny", "synth_tiny"], out=tmp_path)
    assert len(records) == 1


@pytest.mark.parametrize("args", [["list"], ["plot"]])
def test_a_missing_choice_argument_is_one_line_listing_the_choices(invoke, args):
    assert "Choose from: " in one_line_error(invoke(*args))


def test_a_list_pattern_that_matches_nothing_says_so(invoke):
    assert "no methods match 'zzz*'" in one_line_error(invoke("list", "methods", "zzz*"))


@pytest.mark.parametrize("value", ["nan", "inf", "-.inf"])
def test_a_dataset_option_that_is_not_finite_is_refused_for_any_adapter(value):
    """Adapters check their own ranges or not (a plugin's may not): NaN and infinity are refused for all."""
    result = CliRunner().invoke(cli, ["run", "-m", "eszsl", "-d", "synth-tiny", "-D", f"scale={value}"])
    assert handled_error(result).startswith("error: dataset 'synth-tiny': option 'scale' = ")
    assert handled_error(result).endswith("is not finite")
