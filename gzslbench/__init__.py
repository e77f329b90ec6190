"""gzslbench: reproducible Generalized Zero-Shot Learning benchmarks.

Usage::

    import gzslbench
    records = gzslbench.run("eszsl", "synth-cub", seeds=3)
    frame = gzslbench.load_results("results")
"""

from __future__ import annotations

__version__ = "0.1.0"

from pathlib import Path as _Path

from gzslbench._layout import mount_checkout_subpackages as _mount

_mount(_Path(__file__).resolve().parent)
