"""``gzslbench bench``: the machine's limits and the method's throughput against them, in one run."""

from __future__ import annotations

import json

import click

from gzslbench.bench import SIZES, format_report, run_bench
from gzslbench.cli._group import cli
from gzslbench.core.environment import DEVICE_CHOICES, resolve_device


@cli.command(
    "bench",
    epilog=(
        "Examples:\n\n  gzslbench bench --quick\n\n  gzslbench bench --json > bench.json\n\n"
        "  gzslbench bench --device cuda --seeds 5\n\n  gzslbench bench --size awa2"
    ),
)
@click.option("--quick", is_flag=True, help="Time fewer iterations and epochs of the same shapes (minutes).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the report.")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device.")
@click.option("--threads", type=int, help="Torch threads [default: all cores].")
@click.option("--seeds", default=5, show_default=True, type=int, help="Seeds trained at once for the batched figure.")
@click.option(
    "--size",
    default="cub",
    show_default=True,
    type=click.Choice(tuple(SIZES)),
    help="Shapes and settings: cub; awa2 (the most instances: peak memory); tiny (for tests).",
)
def bench_command(quick: bool, as_json: bool, device: str, threads: int | None, seeds: int, size: str) -> None:
    """Measure matmul GFLOP/s, memory bandwidth, ACMR training throughput (1 and K seeds), the
    final-classifier stage, xlsa17 load times and peak RSS; print the efficiency ratios."""
    log = None if as_json else (lambda message: click.echo(f"... {message}", err=True))
    result = run_bench(quick=quick, device=resolve_device(device), threads=threads, seeds=seeds, size=size, log=log)
    click.echo(json.dumps(result, indent=1) if as_json else format_report(result))
