"""The ``gzslbench`` command line. One module per sub-command; importing it registers the command.

To add a sub-command, write ``gzslbench/cli/<name>.py`` with ``@cli.command(...)`` and add it to
``COMMANDS`` of :mod:`gzslbench.cli._group` (its module and the first paragraph of its help); the
module is imported when the command is called.

May import: every other layer (it is the top one).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gzslbench.cli._group import cli


def main() -> None:
    """Console-script entry point; a sub-command loads (torch with it, seconds) under the Ctrl-C handling."""
    try:
        from gzslbench.cli._group import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli(prog_name="gzslbench")


def __getattr__(name: str) -> Any:
    if name != "cli":
        raise AttributeError(f"module 'gzslbench.cli' has no attribute '{name}'")
    from gzslbench.cli._group import cli

    return cli


__all__ = ["cli", "main"]
