"""gzslbench: reproducible Generalized Zero-Shot Learning benchmarks.

Usage::

    import gzslbench
    records = gzslbench.run("eszsl", "synth-cub", seeds=3)
    frame = gzslbench.load_results("results")
    best = gzslbench.tune("eszsl", "synth-cub", seeds=3)  # hyper-parameters chosen on validation
"""

from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path as _Path

from gzslbench._layout import mount_checkout_subpackages

mount_checkout_subpackages(_Path(__file__).resolve().parent)

from gzslbench.core.registry import DATASETS, METHODS, register_dataset, register_method  # noqa: E402
from gzslbench.execution.api import run  # noqa: E402
from gzslbench.execution.resolve import get_method, load_dataset  # noqa: E402
from gzslbench.results.store import load_results  # noqa: E402
from gzslbench.studies.sweep import sweep  # noqa: E402
from gzslbench.studies.tuning import tune  # noqa: E402


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch ``pattern``."""
    return METHODS.names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching an fnmatch ``pattern``."""
    return DATASETS.names(pattern)


__all__ = [
    "get_method",
    "list_datasets",
    "list_methods",
    "load_dataset",
    "load_results",
    "register_dataset",
    "register_method",
    "run",
    "sweep",
    "tune",
]
