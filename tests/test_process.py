"""A training process keeps the memory it frees, so a step's large buffers are not page-faulted in anew."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from gzslbench.execution.process import CUBLAS_WORKSPACE, RETAIN_MEMORY_ENV

FAULTS_OF_A_REALLOCATED_BLOCK = """
import json, resource, torch
from gzslbench.execution.process import retain_freed_memory
torch.set_num_threads(1)
retain_freed_memory()

def faults_of_a_fresh_64mb_tensor():
    block = torch.empty(16 * 2**20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block.fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

# as a training loop does: the same block again and again; the last ones show the steady state
faults = [faults_of_a_fresh_64mb_tensor() for _ in range(8)]
print(json.dumps([retain_freed_memory(), sum(faults[4:])]))
"""


def _reallocation(retain: str) -> tuple[bool, int]:
    env = {**os.environ, RETAIN_MEMORY_ENV: retain}
    out = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_A_REALLOCATED_BLOCK], env=env, capture_output=True, text=True, check=True
    )
    retained, faults = json.loads(out.stdout.strip().splitlines()[-1])
    return retained, faults


@pytest.mark.slow  # counts page faults, which the machine's allocator state decides (about 1 process in 40 misses)
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_a_freed_block_is_reused_instead_of_faulted_in_again() -> None:
    # The fewest of three processes: in about 1 process in 40 (with or without address-space
    # randomisation) glibc did not hand the freed block back, and each round's 64 MB came from new
    # heap pages further up. With glibc's defaults every process faults them in.
    attempts = [_reallocation("1") for _ in range(3)]
    retained, faults = min(attempts, key=lambda attempt: attempt[1])
    assert retained and faults < 16  # the freed 64 MB block came back as it was
    default, default_faults = _reallocation("0")
    assert not default and default_faults >= 4 * 32  # glibc's default: fresh mappings, a fault per page (<= 2 MB)


IN_PROCESS_RUN = """
import json, multiprocessing, os, threading, torch
import gzslbench
from gzslbench.core.environment import denormals_flushed
from gzslbench.execution import process
torch.set_num_threads(3)
def settings():
    environ = (os.environ.get(k) for k in ("THP_MEM_ALLOC_ENABLE", "CUBLAS_WORKSPACE_CONFIG"))
    threads = [t.name for t in threading.enumerate()]
    return (torch.get_num_threads(), *environ, denormals_flushed(), multiprocessing.get_start_method(True), threads)
before = settings()
record = gzslbench.run(os.environ["METHOD"], "synth-tiny", seeds=1, threads=1, out=os.environ["OUT"],
                       quiet=os.environ["QUIET"] == "1", overrides=json.loads(os.environ["OVERRIDES"]))[0]
after = settings()
print(json.dumps([before, after, record["threads"], record["execution"]["flush_denormals"],
                  process.retain_freed_memory.cache_info().currsize]))
"""


@pytest.mark.parametrize(
    ("method", "quiet", "overrides"),
    [
        ("eszsl", True, {}),
        ("acmr", True, {"epochs": 1, "cls_epochs": 2}),
        ("acmr", False, {"epochs": 1, "cls_epochs": 2}),
    ],
)
def test_an_in_process_run_leaves_the_callers_threads_and_allocator_as_they_were(
    tmp_path, method: str, quiet: bool, overrides: dict[str, int]
) -> None:
    """A notebook calling gzslbench.run keeps its thread count, its environment, glibc's defaults and its denormals.

    Its multiprocessing start method stays unset and no thread is left running, with the run's
    progress bars shown or not (a plain tqdm bar, even a hidden one, would fix the one and start the other).
    """
    own = ("THP_MEM_ALLOC_ENABLE", "CUBLAS_WORKSPACE_CONFIG")
    env = {k: v for k, v in os.environ.items() if k not in own}
    env |= {"OUT": str(tmp_path), "METHOD": method, "QUIET": str(int(quiet)), "OVERRIDES": json.dumps(overrides)}
    out = subprocess.run([sys.executable, "-c", IN_PROCESS_RUN], env=env, capture_output=True, text=True, check=True)
    before, after, run_threads, run_flushed, allocator_calls = json.loads(out.stdout.strip().splitlines()[-1])
    assert before == after == [3, None, None, False, None, ["MainThread"]]
    assert run_threads == 1  # the run itself had the threads it asked for
    assert run_flushed is True  # and flushed denormals, which the caller's arithmetic does not
    assert allocator_calls == 0  # retain_freed_memory never ran in the caller's process


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is glibc's")
def test_gzslbench_s_own_processes_ask_glibc_to_keep_freed_memory() -> None:
    """The setting is made (an event), and ``GZSLBENCH_RETAIN_MEMORY=0`` keeps glibc's defaults."""
    code = "from gzslbench.execution.process import retain_freed_memory as r; print(r())"
    for value, expected in (("1", "True"), ("0", "False")):
        env = {**os.environ, RETAIN_MEMORY_ENV: value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


def test_gzslbench_s_own_processes_fix_cublas_s_workspace_unless_the_user_did() -> None:
    """cuBLAS's bits repeat with several streams active only with a fixed workspace (CUDA graphs use side streams)."""
    code = (
        "import os; from gzslbench.execution.process import set_up_own_process as s; "
        "s(); print(os.environ['CUBLAS_WORKSPACE_CONFIG'])"
    )
    for given, expected in ((None, CUBLAS_WORKSPACE), (":16:8", ":16:8")):
        env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
        env |= {"CUBLAS_WORKSPACE_CONFIG": given} if given else {}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected


PARALLEL_RUN = """
import json, os, sys
from pathlib import Path
from joblib import Parallel, delayed
import gzslbench

def workers():
    pids = [int(p) for f in Path(f"/proc/{os.getpid()}/task").glob("*/children") for p in f.read_text().split()]
    return [p for p in pids if b"popen_loky" in Path(f"/proc/{p}/cmdline").read_bytes()]

def own_settings(_):
    return os.environ.get("THP_MEM_ALLOC_ENABLE")

tiny = {"epochs": 1, "cls_epochs": 1, "oracle_from_epoch": 1}
records = gzslbench.run("acmr", "synth-tiny", seeds=2, n_jobs=2, batch_seeds=1, overrides=tiny, out=sys.argv[1])
left = workers()
callers_jobs = Parallel(n_jobs=2)(delayed(own_settings)(i) for i in range(2))
print(json.dumps([[r["status"] for r in records], left, callers_jobs]))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads a process's children from Linux's /proc")
def test_a_parallel_run_stops_its_workers_and_keeps_their_settings_from_the_callers_own_jobs(tmp_path) -> None:
    """Workers of ``n_jobs=2`` are gzslbench's own: gone when run() returns, never shared with the caller's joblib.

    joblib's pool is reused for the whole session, so workers taken from it would outlive the call
    and hand the caller's later jobs the allocator settings and huge pages of a training process.
    """
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    out = subprocess.run(
        [sys.executable, "-c", PARALLEL_RUN, str(tmp_path)], env=env, capture_output=True, text=True, check=True
    )
    statuses, workers_left, callers_jobs = json.loads(out.stdout.strip().splitlines()[-1])
    assert statuses == ["ok", "ok"]
    assert workers_left == []
    assert callers_jobs == [None, None]
