"""The command group with every sub-command registered (importing a sub-command's module registers it)."""

from __future__ import annotations

from gzslbench.cli import (  # noqa: F401  (registers the sub-commands)
    check,
    data,
    listing,
    plot,
    report,
    run,
    sweep,
    table,
)
from gzslbench.cli._group import cli

__all__ = ["cli"]
