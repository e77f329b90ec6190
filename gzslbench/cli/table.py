"""``gzslbench table``: aggregate run records into U / S / H tables."""

from __future__ import annotations

import click

from gzslbench.cli._group import cli, names
from gzslbench.cli.run import SELECTION_CHOICES
from gzslbench.errors import GZSLBenchError
from gzslbench.registry import DATASETS, METHODS
from gzslbench.reporting import TABLE_FORMATS, aggregate, render
from gzslbench.results import load_results


@cli.command(
    "table",
    epilog="Examples:\n\n  gzslbench table\n\n  gzslbench table --mode oracle --format latex --method acmr,cada-vae",
)
@click.option("--results", "out", default="results", show_default=True, type=click.Path(file_okay=False))
@click.option("--mode", default="last", show_default=True, type=click.Choice(SELECTION_CHOICES), help="Selection.")
@click.option("--format", "fmt", default="markdown", show_default=True, type=click.Choice(TABLE_FORMATS))
@click.option("--method", "-m", "methods", multiple=True, help="Only these methods.")
@click.option("--dataset", "-d", "datasets", multiple=True, help="Only these datasets.")
def table_command(out: str, mode: str, fmt: str, methods: tuple[str, ...], datasets: tuple[str, ...]) -> None:
    """Aggregate run records into mean ± std over seeds of U, S, H per method and dataset."""
    frame = load_results(out)
    if frame.empty:
        raise GZSLBenchError(f"no finished run records under '{out}' (run `gzslbench run` first)")
    if methods:
        frame = frame[frame["method"].isin([METHODS.get(m).name for m in names(methods)])]
    if datasets:
        frame = frame[frame["dataset"].isin([DATASETS.get(d).name for d in names(datasets)])]
    click.echo(render(aggregate(frame, mode), fmt, mode))
