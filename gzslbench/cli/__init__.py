"""The ``gzslbench`` command line. One module per sub-command; importing it registers the command.

To add a sub-command, write ``gzslbench/cli/<name>.py`` with ``@cli.command(...)`` and import it in
:mod:`gzslbench.cli.commands`.

May import: every other layer (it is the top one).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gzslbench.cli.commands import cli


def main() -> None:
    """Console-script entry point: the commands load (torch with them, seconds) under the Ctrl-C handling."""
    try:
        from gzslbench.cli.commands import cli
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    cli(prog_name="gzslbench")


def __getattr__(name: str) -> Any:
    if name != "cli":
        raise AttributeError(f"module 'gzslbench.cli' has no attribute '{name}'")
    from gzslbench.cli.commands import cli

    return cli


__all__ = ["cli", "main"]
