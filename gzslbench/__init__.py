"""gzslbench: reproducible Generalized Zero-Shot Learning benchmarks.

Usage::

    import gzslbench
    records = gzslbench.run("eszsl", "synth-cub", seeds=3)
    frame = gzslbench.load_results("results")
    best = gzslbench.tune("eszsl", "synth-cub", seeds=3)  # hyper-parameters chosen on validation
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

from gzslbench._layout import mount_checkout_subpackages

mount_checkout_subpackages(_Path(__file__).resolve().parent)

# The public API, imported on first use (PEP 562): `import gzslbench` does not load torch and the
# rest until a name is used, so the command line starts under its own Ctrl-C handling.
_PUBLIC = {
    "DATASETS": "gzslbench.core.registry",
    "METHODS": "gzslbench.core.registry",
    "register_dataset": "gzslbench.core.registry",
    "register_method": "gzslbench.core.registry",
    "run": "gzslbench.execution.api",
    "get_method": "gzslbench.execution.resolve",
    "load_dataset": "gzslbench.execution.resolve",
    "load_results": "gzslbench.results.store",
    "sweep": "gzslbench.studies.sweep",
    "tune": "gzslbench.studies.tuning",
}

if TYPE_CHECKING:  # what the names are, for type checkers and the API reference
    from gzslbench.core.registry import register_dataset, register_method
    from gzslbench.execution.api import run
    from gzslbench.execution.resolve import get_method, load_dataset
    from gzslbench.results.store import load_results
    from gzslbench.studies.sweep import sweep
    from gzslbench.studies.tuning import tune


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'gzslbench' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch ``pattern``."""
    from gzslbench.core.registry import METHODS

    return METHODS.names(pattern)


def list_datasets(pattern: str = "*") -> list[str]:
    """Registered dataset names matching an fnmatch ``pattern``."""
    from gzslbench.core.registry import DATASETS

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
