"""``python -m gzslbench`` runs the command line."""

from gzslbench.cli import main

main()
