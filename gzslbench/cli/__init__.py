"""The ``gzslbench`` command line. One module per sub-command; importing it registers the command.

To add a sub-command, write ``gzslbench/cli/<name>.py`` with ``@cli.command(...)`` and import it here.

May import: every other layer (it is the top one).
"""

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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gzslbench")


__all__ = ["cli", "main"]
