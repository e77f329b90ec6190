"""Devices and the software environment recorded with every run."""

from __future__ import annotations

import hashlib
import os
import platform
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import torch

import gzslbench
from gzslbench.core.errors import GZSLBenchError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
# Environment variables that change which kernels the math libraries run, and so the rounding of a
# run: MKL's reproducibility mode and instruction sets, oneDNN's, OpenBLAS's, ATen's vector kernels
# and TF32 on NVIDIA GPUs. (CUBLAS_WORKSPACE_CONFIG is set by gzslbench itself on a GPU and kept in
# the record's execution block.)
ARITHMETIC_VARIABLES = (
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_DEBUG_CPU_TYPE",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "OPENBLAS_CORETYPE",
    "ATEN_CPU_CAPABILITY",
    "NVIDIA_TF32_OVERRIDE",
)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Torch uses ``threads`` intra-op threads inside the block (None: as it is), the caller's count after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def denormals_flushed() -> bool:
    """Whether this thread's CPU arithmetic flushes denormal floats to zero (a product that must underflow)."""
    return bool((torch.tensor(1e-30) * torch.tensor(1e-10)).item() == 0.0)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """CPU arithmetic flushes denormal floats (below 1.2e-38) to zero inside the block; the caller's mode after.

    Adam's first moment of a unit whose gradient is zero (a dead ReLU) decays by 0.9 a step into
    the denormal range, where x86 multiplies run many times slower: ACMR's VAE epochs took twice
    as long from the sixth epoch on. A value that small cannot move a float32 weight, so training
    gives the same parameters (bit for bit over 12 ACMR epochs); only the time changes.
    """
    before = denormals_flushed()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def cpu_count() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda``/``cuda:N`` must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise GZSLBenchError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise GZSLBenchError("--device cuda was asked for, but torch sees no CUDA GPU here (use --device cpu)")
    if device.type not in ("cpu", "cuda"):
        raise GZSLBenchError(f"unsupported device '{name}' (use auto, cpu, cuda or cuda:N)")
    return device


def _git(*args: str) -> str | None:
    """Output of a git command in the gzslbench checkout, or None outside a checkout or without git."""
    root = Path(gzslbench.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


@cache
def code_version() -> dict[str, object]:
    """The gzslbench version, the checkout's commit and whether tracked files differ from it.

    Computed once per process. An installed wheel has no checkout: commit and dirty are None.
    """
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "version": gzslbench.__version__,
        "git_commit": commit.strip() or None if commit else None,
        "git_dirty": None if status is None else bool(status.strip()),
    }


@cache
def source_digest(roots: tuple[str, ...]) -> str:
    """A short hash of every ``.py`` file under ``roots`` (paths and bytes): tells apart two edits of one commit
    (``git_dirty``), untracked modules, and installs without a checkout."""
    digest = hashlib.sha256()
    for index, root in enumerate(roots):
        for path in sorted(Path(root).rglob("*.py")):
            digest.update(f"{index}:{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def environment(device: torch.device) -> dict[str, object]:
    """Versions, device and host facts that a reader needs to judge or repeat a run."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        # The vector kernels torch's CPU ops dispatch to (e.g. AVX2, AVX512): two CPUs of one model name
        # may differ in it, and then in the last digits of a run.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "arithmetic_env": arithmetic_env(),
    }


def arithmetic_env() -> dict[str, str]:
    """The :data:`ARITHMETIC_VARIABLES` set in this process: another value rounds differently, so a
    record keeps them and its command repeats them."""
    return {name: os.environ[name] for name in ARITHMETIC_VARIABLES if name in os.environ}


def assignments(env: Mapping[str, str]) -> list[str]:
    """``env`` as shell assignments, ``["MKL_CBWR=COMPATIBLE"]``, values quoted where a shell needs it."""
    return [f"{name}={shlex.quote(value)}" for name, value in env.items()]


def with_arithmetic_env(command: str) -> str:
    """``command`` prefixed with this process's :func:`arithmetic_env` (``MKL_CBWR=COMPATIBLE gzslbench run ...``)."""
    return " ".join([*assignments(arithmetic_env()), command])
