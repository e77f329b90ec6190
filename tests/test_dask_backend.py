"""The Dask backend on real loopback clusters: same records as joblib, and a worker killed mid-run."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from distributed.diagnostics.plugin import WorkerPlugin  # noqa: E402

from gzslbench.cli import cli  # noqa: E402
from gzslbench.core.errors import GZSLBenchError  # noqa: E402
from gzslbench.core.registry import register_method  # noqa: E402
from gzslbench.execution import dask as backends  # noqa: E402
from gzslbench.execution.api import run  # noqa: E402
from gzslbench.execution.resolve import load_dataset  # noqa: E402
from gzslbench.execution.resolve import plan_specs as plan  # noqa: E402
from gzslbench.execution.schedule import run_specs  # noqa: E402
from gzslbench.execution.spec import RunSpec  # noqa: E402
from gzslbench.methods.base import Method, RunContext, Scores  # noqa: E402
from gzslbench.protocol.splits import Split  # noqa: E402
from gzslbench.results.store import iter_records  # noqa: E402

TINY_ACMR = {
    "epochs": 2,
    "cls_epochs": 2,
    "visual_encoder_hidden": 32,
    "visual_decoder_hidden": 32,
    "attribute_encoder_hidden": 16,
    "attribute_decoder_hidden": 16,
    "latent_size": 8,
    "iem_hidden": 8,
    "seen_samples": 10,
    "unseen_samples": 10,
}
HANG_METHOD = "test-hang-then-score"


class HangThenScore(Method):
    """Test-only method: its first ``hang_attempts`` attempts of a seed announce their pid and hang.

    Each attempt leaves ``<pid_dir>/seed-<seed>-<attempt>.pid``; the test kills the process named
    there. A later attempt scores at once and logs its attempt number.
    """

    defaults = {"pid_dir": "", "hang_attempts": 1}

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        pid_dir = Path(config["pid_dir"])
        attempt = len(list(pid_dir.glob(f"seed-{ctx.seed}-*.pid"))) + 1
        if attempt <= int(config["hang_attempts"]):
            tmp = pid_dir / f".seed-{ctx.seed}-{attempt}"
            tmp.write_text(str(os.getpid()))
            tmp.rename(pid_dir / f"seed-{ctx.seed}-{attempt}.pid")
            time.sleep(60)
        ctx.log("attempt", attempt)
        k = split.n_classes
        yield Scores(1, torch.zeros(len(split.test_seen_y), k), torch.zeros(len(split.test_unseen_y), k))


class RegisterHangMethod(WorkerPlugin):
    """Registers the test-only method on every worker, including those restarted after a kill."""

    def setup(self, worker: Any) -> None:
        register_method(HANG_METHOD)(HangThenScore)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes on loopback; a task may kill one worker and be rerun once."""
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as local,
        distributed.Client(local) as client,
    ):
        client.register_plugin(RegisterHangMethod())
        yield local


@pytest.fixture
def killer(tmp_path: Path) -> Iterator[tuple[Path, list[int]]]:
    """A folder to watch and the pids killed: every process that announces its pid there gets SIGKILL."""
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    killed: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        done: set[str] = set()
        while not stop.is_set():
            for path in sorted(pid_dir.glob("*.pid")):
                if path.name not in done:
                    done.add(path.name)
                    pid = int(path.read_text())
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    yield pid_dir, killed
    stop.set()
    thread.join()


def comparable(record: Mapping[str, Any]) -> dict[str, Any]:
    """What must not depend on where a run executed."""
    return {k: record[k] for k in ("config_hash", "config", "metrics")} | {
        "history": {k: record["history"][k] for k in ("train", "test")}
    }


def leftovers(out: Path) -> list[str]:
    """Claim and temp files left under the results folder."""
    return sorted(p.name for p in (out / "runs").rglob("*") if p.name.endswith((".claim", ".tmp")))


def specs_with_hang(tmp_path: Path, pid_dir: Path, hang_attempts: int) -> tuple[list[RunSpec], RunSpec]:
    """Two one-epoch ALE runs (done before any worker dies) and one run of the hanging method on synth-tiny."""
    specs = plan(["ale"], ["synth-tiny"], [0, 1], overrides={"epochs": 1}, threads=1, device="cpu")
    config = {"pid_dir": str(pid_dir), "hang_attempts": hang_attempts}
    hang = RunSpec(HANG_METHOD, "synth-tiny", 0, config, dict(specs[0].dataset_options), threads=1)
    return [*specs, hang], hang


def test_dask_local_cluster_gives_the_joblib_records(tmp_path: Path) -> None:
    """`run --backend dask` (its own LocalCluster) writes the same ACMR records as a serial joblib run."""
    overrides = [f"{k}={v}" for k, v in TINY_ACMR.items()]
    serial = run("acmr", "synth-tiny", 2, out=tmp_path / "serial", overrides=overrides, threads=1)
    args = ["run", "-m", "acmr", "-d", "synth-tiny", "--seeds", "2", "--threads", "1", "-q"]
    args += ["--backend", "dask", "--n-jobs", "2", "--results", str(tmp_path / "dask")]
    args += [a for o in overrides for a in ("--set", o)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    on_dask = {(r["method"], r["seed"]): r for r in iter_records(tmp_path / "dask")}
    assert len(on_dask) == 2
    assert serial[0]["metrics"] != serial[1]["metrics"]  # the seeds differ, so a mix-up of seeds would show
    for record in serial:
        assert record["status"] == "ok"
        assert comparable(on_dask[(record["method"], record["seed"])]) == comparable(record)
    assert leftovers(tmp_path / "dask") == []


def test_killed_worker_run_is_retried_on_another_worker(
    cluster: Any, tmp_path: Path, killer: tuple[Path, list[int]]
) -> None:
    """A worker SIGKILLed mid-run: the run is rerun and saved once; the other runs are untouched."""
    pid_dir, killed = killer
    specs, hang = specs_with_hang(tmp_path, pid_dir, hang_attempts=1)
    out = tmp_path / "out"
    records = run_specs(specs, out, backend="dask", scheduler=cluster.scheduler_address, quiet=True)
    assert len(killed) == 1 and killed[0] != os.getpid()
    assert [r["status"] for r in records] == ["ok", "ok", "ok"]
    saved = {(r["method"], r["seed"]): r for r in iter_records(out)}
    assert set(saved) == {("ale", 0), ("ale", 1), (HANG_METHOD, 0)} and hang.path(out).is_file()
    assert saved[HANG_METHOD, 0]["history"]["train"] == [{"stage": "attempt", "epoch": 2}]
    serial = run_specs(specs[:2], tmp_path / "serial", quiet=True)
    for record in serial:
        assert comparable(saved["ale", record["seed"]]) == comparable(record)
    assert leftovers(out) == []


def test_run_that_kills_every_worker_is_reported_failed(
    cluster: Any, tmp_path: Path, killer: tuple[Path, list[int]]
) -> None:
    """A run whose every attempt dies is reported failed, with no record and no claim or temp file."""
    pid_dir, killed = killer
    specs, hang = specs_with_hang(tmp_path, pid_dir, hang_attempts=99)
    out = tmp_path / "out"
    records = run_specs(specs, out, backend="dask", scheduler=cluster.scheduler_address, quiet=True)
    assert len(killed) == 2  # the first death is forgiven (allowed-failures 1), the second is not
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert "worker died" in records[2]["error"]
    assert not hang.path(out).exists()
    assert {(r["method"], r["seed"]) for r in iter_records(out)} == {("ale", 0), ("ale", 1)}
    assert leftovers(out) == []


def test_scheduler_needs_the_dask_backend(tmp_path: Path) -> None:
    """--scheduler with the joblib backend is one clear error, before anything runs."""
    args = ["run", "-m", "eszsl", "-d", "synth-tiny", "--scheduler", "tcp://127.0.0.1:1", "--results", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert result.output.strip() == "error: --scheduler is the address of a Dask scheduler: add --backend dask"
    assert not (tmp_path / "runs" / "synth-tiny").exists()


def test_unreachable_scheduler_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduler address where nothing listens: one line naming it, no traceback."""
    monkeypatch.setattr(backends, "CONNECT_TIMEOUT_S", 1.0)
    args = ["run", "-m", "eszsl", "-d", "synth-tiny", "--backend", "dask", "--scheduler", "tcp://127.0.0.1:1"]
    result = CliRunner().invoke(cli, [*args, "--results", str(tmp_path), "-q"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot connect to the Dask scheduler at 'tcp://127.0.0.1:1'")


def test_missing_dask_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without dask.distributed installed, --backend dask says how to install it."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(GZSLBenchError, match=r"needs dask.distributed.*pip install 'gzslbench\[dask\]'"):
        run("eszsl", "synth-tiny", out=tmp_path, backend="dask")


def test_a_local_cluster_leaves_the_callers_environment_and_random_state(tmp_path: Path) -> None:
    """dask's nanny writes its workers' variables (thread caps of 1, a hash seed) into the caller's environment.

    They are put back, so the caller's later subprocesses do not inherit them, and so are the
    caller's ``random`` sequence and its unchosen multiprocessing start method (the cluster fixes it).
    """
    load_dataset("synth-tiny")  # imports threadpoolctl first, which sets KMP_DUPLICATE_LIB_OK as sklearn does
    environ = dict(os.environ)
    random.seed(7)
    expected = random.random()
    random.seed(7)
    chosen = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(None, force=True)
    try:
        (record,) = run("eszsl", "synth-tiny", out=tmp_path, backend="dask", n_jobs=1)
        unchosen = multiprocessing.get_start_method(allow_none=True) is None
    finally:
        multiprocessing.set_start_method(chosen, force=True)
    assert record["status"] == "ok"
    assert dict(os.environ) == environ
    assert random.random() == expected
    assert unchosen
