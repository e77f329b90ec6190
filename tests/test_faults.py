"""Faults and bad input at the command line: one line and an exit code, nothing lost, nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import one_line_error

from gzslbench.cli import cli
from gzslbench.execution import execute as runner
from gzslbench.execution.resolve import plan_specs
from gzslbench.execution.schedule import run_specs
from gzslbench.results.claims import claim_path, claimed
from gzslbench.results.store import load_record, record_path, remove_partial_writes

# About a second a run on an idle CPU, so a signal lands mid-run; one torch thread per process, since
# two threads per process on a loaded 2-core machine slow each other down by orders of magnitude.
SLOW_RUN = [
    *("--set", "epochs=30", "--set", "cls_epochs=2", "--set", "visual_encoder_hidden=64"),
    *("--threads", "1", "--batch-seeds", "1"),  # one run per unit, so a signal lands between finished runs
]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--results", ""], "--results must name a folder"),
        (["--results", "/proc/gzslbench-results"], "cannot write run records under '/proc/gzslbench-results'"),
        (["--n-jobs", "0"], "--n-jobs must be a positive number of processes or -1"),
        (["--n-jobs", "-3"], "--n-jobs must be a positive number of processes or -1"),
        (["--seeds", "1000000000000"], "--seeds 1000000000000 is more than 10000"),
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--seed-start", "-1"], "seeds must lie in [0, 2147483647]"),
        (["--threads", "0"], "--threads must be at least 1"),
        (["--seed", "3", "--seed", "3"], "seed 3 is given twice"),
        (["--seed", "-2"], "seeds must lie in [0, 2147483647]; got -2"),
        (["--seed", "1", "--seeds", "2"], "give --seed or --seeds, not both"),
        (["--seed", "1", "--seed-start", "4"], "give --seed or --seed-start, not both"),
    ],
)
def test_bad_run_options_are_refused_before_any_run(invoke, tmp_path, args, message):
    line = one_line_error(invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q", *args))
    assert message in line
    assert not list(tmp_path.rglob("seed-*.json"))


@pytest.mark.parametrize(
    ("in_the_way", "message"),
    [
        ("seed-0.json/", "'{run}/seed-0.json' is a folder where gzslbench writes a file"),
        ("seed-0.json.claim/", "'{run}/seed-0.json.claim' is a folder where gzslbench writes a file"),
        ("seed-0.scores.npz/", "'{run}/seed-0.scores.npz' is a folder where gzslbench writes a file"),
        ("seed-0.model.pt/", "'{run}/seed-0.model.pt' is a folder where gzslbench writes a file"),
        ("", "cannot make the folder '{run}': a file is in its place"),
        ("../..", "cannot use '{run}': a part of that path is a file where a folder belongs"),
    ],
)
def test_a_file_or_folder_in_the_way_of_a_runs_files_is_one_line_before_training(
    invoke, monkeypatch, in_the_way, message
):
    """Found only when the record or an artifact is written, it would have cost the trained run."""
    monkeypatch.setattr(runner, "execute", lambda *args, **kwargs: pytest.fail("trained"))
    args = ["run", "-m", "cada-vae", "-d", "synth-tiny", "--set", "epochs=1", "--set", "cls_epochs=1", "-q"]
    (spec,) = plan_specs(["cada-vae"], ["synth-tiny"], [0], overrides={"epochs": 1, "cls_epochs": 1})
    run = spec.path("results").parent
    target = run / in_the_way.rstrip("/")
    if in_the_way.endswith("/"):
        target.mkdir(parents=True)
    else:
        target.resolve().parent.mkdir(parents=True, exist_ok=True)
        target.resolve().touch()
    line = one_line_error(invoke(*args, "--save-scores", "--save-model"))
    assert line.startswith("error: " + message.format(run=run))


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(invoke, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kaput")

    monkeypatch.setattr("gzslbench.cli.run.run", boom)
    monkeypatch.setenv("GZSLBENCH_DEBUG", "")  # restored after the test, whatever --debug sets
    monkeypatch.delenv("GZSLBENCH_DEBUG")
    line = one_line_error(invoke("run", "-m", "eszsl", "-d", "synth-tiny"), exit_code=1)
    assert "unexpected RuntimeError: kaput" in line and "--debug" in line
    debug = CliRunner().invoke(cli, ["--debug", "run", "-m", "eszsl", "-d", "synth-tiny"], catch_exceptions=False)
    assert debug.exit_code == 1 and "Traceback" in debug.output


@pytest.mark.parametrize(
    "damage",
    [
        lambda r: json.dumps({k: v for k, v in r.items() if k != "metrics"}),  # ok, but incomplete
        lambda r: json.dumps(r)[:200],  # truncated
    ],
)
def test_run_redoes_a_seed_whose_record_is_unusable(invoke, tmp_path, damage):
    assert invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q").exit_code == 0
    path = next(tmp_path.rglob("seed-0.json"))
    good = json.loads(path.read_text())
    path.write_text(damage(good))
    again = invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q")
    assert again.exit_code == 0, again.output
    assert load_record(path)["metrics"] == good["metrics"]


def test_a_claimed_spec_is_skipped_and_a_dead_claim_taken_over(invoke, tmp_path):
    spec = plan_specs(["eszsl"], ["synth-tiny"], [0], device="cpu")[0]
    path = spec.path(tmp_path / "results")
    with claimed(path):  # another command is running it
        busy = invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q")
        assert busy.exit_code == 0
        assert "skipped:" in busy.output and f"being run by pid {os.getpid()}" in busy.output
        assert not path.exists()
    claim_path(path).write_text('{"host": "gone", "pid": 999999}')  # left by a killed process: no lock held
    taken = invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q")
    assert taken.exit_code == 0 and path.exists() and not claim_path(path).exists()


def test_concurrent_commands_never_run_one_spec_twice(tmp_path, monkeypatch):
    """Two commands on one results folder with overlapping seeds: every spec runs exactly once."""
    executed: list[int] = []
    real_execute = runner.execute

    overlap = threading.Barrier(2, timeout=60)  # each command's first run waits for the other's
    first_run: set[int] = set()

    def slow_execute(specs, *args, **kwargs):
        executed.extend(s.seed for s in specs)
        if threading.get_ident() not in first_run:
            first_run.add(threading.get_ident())
            overlap.wait()  # both commands are running specs now, each holding a claim
        return real_execute(specs, *args, **kwargs)

    monkeypatch.setattr(runner, "execute", slow_execute)
    out = tmp_path / "results"
    first = plan_specs(["ale"], ["synth-tiny"], range(0, 8), device="cpu")
    second = plan_specs(["ale"], ["synth-tiny"], range(4, 12), device="cpu")
    errors: list[BaseException] = []

    def command(specs):
        try:
            run_specs(specs, out, quiet=True)
        except BaseException as exc:  # a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=command, args=(specs,)) for specs in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(executed) == list(range(12))
    assert sorted(int(p.stem.split("-")[1]) for p in out.rglob("seed-*.json")) == list(range(12))
    assert not list(out.rglob("*.claim"))


def test_diverging_runs_are_recorded_as_failed_with_their_reason(invoke, tmp_path):
    result = invoke("run", "-m", "cada-vae", "-d", "synth-tiny", "-q", "--set", "epochs=1", "--set", "lr=1e30")
    assert result.exit_code == 1
    record = load_record(next(tmp_path.rglob("seed-0.json")))
    assert record["status"] == "failed" and ("non-finite" in record["error"] or "NaN" in record["error"])
    assert "failed: cada-vae on synth-tiny seed 0" in result.output


# --- signals, in real processes --------------------------------------------------------------


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "gzslbench", "run", "-m", "cada-vae", "-d", "synth-tiny", "--seeds", "6"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*command, *SLOW_RUN, *extra],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_in_a_terminal,
    )


def _as_in_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a shell's background job inherits SIGINT ignored, and Python keeps that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_records(tmp_path: Path, count: int, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while len(list(tmp_path.rglob("seed-*.json"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no record appeared in time"
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _records_intact(tmp_path: Path, killed: bool = False) -> list[Path]:
    """Every record is whole; temp files only after a SIGKILL (nothing can clean up after one)."""
    paths = sorted(tmp_path.rglob("seed-*.json"))
    for path in paths:
        assert load_record(path)["status"] == "ok"
    assert killed or not list(tmp_path.rglob("*.tmp"))
    return paths


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signals_keep_finished_records_serial(tmp_path, sig):
    proc = _start(tmp_path, "--n-jobs", "1")
    _wait_for_records(tmp_path, 1, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    kept = _records_intact(tmp_path, killed=sig == signal.SIGKILL)
    assert 1 <= len(kept) < 6
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig and "interrupted: finished runs are saved" in err  # 130 or 143
        assert not list(tmp_path.rglob("*.claim"))
    resumed = _start(tmp_path, "--n-jobs", "1", "-q")  # a rerun finishes the rest, over any leftovers
    resumed.communicate(timeout=600)
    assert resumed.returncode == 0
    assert len(_records_intact(tmp_path)) == 6  # the rerun cleared a killed run's temp files too
    assert not list(tmp_path.rglob("*.claim"))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_sigterm_stops_parallel_workers_with_the_command(tmp_path):
    proc = _start(tmp_path, "--n-jobs", "2")
    _wait_for_records(tmp_path, 1, proc)
    workers = _children(proc.pid)
    assert workers, "the parallel command has worker processes"
    _terminate_and_outlive(proc, workers)
    _records_intact(tmp_path)


def _terminate_and_outlive(proc: subprocess.Popen, processes: list[int]) -> None:
    """SIGTERM ``proc``: it stops as Ctrl-C stops it, and none of ``processes`` (so none can write) outlives it."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "interrupted: finished runs are saved" in err  # 128 + SIGTERM, as shells give
    assert "resource_tracker" not in err  # the stopped workers' semaphores are cleaned up without a warning
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in processes), "a worker or child process outlived the command"


# `gzslbench check --update` on six short CADA-VAE seeds in two worker processes; its noise runs run in a
# child process (with MKL_CBWR set) that has workers of its own.
CHECK_SUITE = """
name = "signals"
seeds = 6
threads = 1
jobs = 2
[noise]
seeds = 6
threads = 1
env = { MKL_CBWR = "COMPATIBLE" }
[[case]]
method = "cada-vae"
dataset = "synth-tiny"
[case.overrides]
epochs = 30
cls_epochs = 2
visual_encoder_hidden = 64
"""


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
@pytest.mark.parametrize("stage", ["runs", "noise-threads-1-env"])
def test_sigterm_stops_check_with_its_workers_and_its_child(tmp_path, stage):
    """SIGTERM while `gzslbench check` runs the suite in its workers, or while its child process runs the noise
    runs: exit 143, every finished record whole, and no process outlives the command."""
    suite = tmp_path / "suite.toml"
    suite.write_text(CHECK_SUITE)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "gzslbench", "check", "--suite", str(suite), "--update"]
    command += ["--baseline", str(tmp_path / "baseline.json"), "--results", str(results)]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal
    )
    (results / stage).mkdir(parents=True, exist_ok=True)
    _wait_for_records(results / stage, 1, proc)
    processes = _descendants(proc.pid)
    assert len(processes) >= 2, "the command has worker processes (and, for the noise runs, a child)"
    _terminate_and_outlive(proc, processes)
    _records_intact(results)
    assert not (tmp_path / "baseline.json").exists()


KILLED_MID_WRITE = """
import os, sys
from pathlib import Path
from gzslbench.core.files import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_text("half")
    os.kill(os.getpid(), 9)
"""


def test_partial_writes_of_a_killed_run_are_removed_unless_a_live_process_holds_its_claim(tmp_path):
    record = record_path(tmp_path, "d", "m", "h", 1)
    for name in ("seed-1.json", "seed-1.scores.npz", "seed-1.model.pt", "seed-10.json"):
        killed = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(record.with_name(name))])
        assert killed.returncode == -signal.SIGKILL
    assert len(list(record.parent.glob(".*.tmp"))) == 4
    with claimed(record):  # a live holder may still be writing: its files stay
        remove_partial_writes(record)
        assert len(list(record.parent.glob(".*.tmp"))) == 4
    claim_path(record).write_text("{}")  # a dead holder's claim file (its lock died with it)
    remove_partial_writes(record)
    assert [p.name.split(".")[1] for p in record.parent.glob(".*.tmp")] == ["seed-10"]
    assert not claim_path(record).exists()
    assert not list(record.parent.glob("seed-*"))  # nothing half-written became a record


def test_record_path_and_claim_path_are_siblings(tmp_path):
    path = record_path(tmp_path, "d", "m", "h", 0)
    assert claim_path(path).parent == path.parent and claim_path(path).name == "seed-0.json.claim"


def test_logs_get_one_line_per_run_and_no_progress_bars(tmp_path):
    """stderr to a file (a CI log): no carriage-return progress bars, one line per finished run."""
    small = ["--set", "epochs=2", "--set", "cls_epochs=2", "--set", "visual_encoder_hidden=24", "--threads", "1"]
    command = [sys.executable, "-m", "gzslbench", "run", "-m", "cada-vae", "-d", "synth-tiny", "--seeds", "2", *small]
    with open(tmp_path / "log", "w") as log:
        done = subprocess.run(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log, timeout=600, check=False)
    assert done.returncode == 0
    text = (tmp_path / "log").read_text()
    assert "\r" not in text and "VAE epochs" not in text
    plan, *runs = text.splitlines()
    assert plan.startswith("plan: 2 processes x 1 thread (auto:")
    assert sorted(line.split(":")[0].split("] ")[1] for line in runs) == [
        "cada-vae on synth-tiny seed 0",
        "cada-vae on synth-tiny seed 1",
    ]
    assert sorted(line.split("]")[0] for line in runs) == ["[1/2", "[2/2"]
