"""Devices and the software environment recorded with every run."""

from __future__ import annotations

import platform
import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import torch

import gzslbench
from gzslbench.errors import GZSLBenchError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


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


@cache
def git_commit() -> str | None:
    """The commit of the gzslbench checkout, when it runs from one; None for an installed wheel."""
    root = Path(gzslbench.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: torch.device) -> dict[str, object]:
    """Versions, device and host facts that a reader needs to judge or repeat a run."""
    return {
        "gzslbench": gzslbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch_threads": torch.get_num_threads(),
    }
