"""A training process keeps the memory it frees, so a step's large buffers are not page-faulted in anew."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from gzslbench.execution import runner
from gzslbench.execution.process import RETAIN_MEMORY_ENV

FAULTS_OF_A_REALLOCATED_BLOCK = """
import json, resource, torch
from gzslbench.execution.process import set_up_process, retain_freed_memory
set_up_process(1)

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


def test_every_run_sets_up_its_process(monkeypatch, tmp_path) -> None:
    calls: list[int] = []
    monkeypatch.setattr(runner, "set_up_process", calls.append)
    specs = runner.plan(["eszsl"], ["synth-tiny"], range(2), device="cpu")
    runner.run_specs(specs, tmp_path, quiet=True)
    assert calls == [spec.threads for spec in specs]
