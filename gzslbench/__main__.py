"""``python -m gzslbench``: the same as the ``gzslbench`` command."""

from gzslbench.cli import main

main()
