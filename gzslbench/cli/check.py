"""``gzslbench check``: the accuracy regression check that CI runs after the unit tests."""

from __future__ import annotations

import sys
import time

import click

from gzslbench.cli._group import cli
from gzslbench.core.environment import DEVICE_CHOICES
from gzslbench.core.errors import GZSLBenchError
from gzslbench.studies import check


@cli.command(
    "check",
    epilog=(
        "Exit status: 0 every case within tolerance; 1 a regression, a failed run or a missing case; "
        "3 an improvement beyond tolerance or a suite/baseline change (update the baseline on purpose).\n\n"
        "Examples:\n\n  gzslbench check\n\n  gzslbench check --update\n\n"
        "  gzslbench check --from-results results/check\n\n"
        "  gzslbench check --suite my_suite.toml --baseline my_baseline.json --update"
    ),
)
@click.option("--suite", "suite_file", type=click.Path(dir_okay=False), help="Suite file (default: the CI suite).")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False), help="Baseline JSON (default: CI's).")
@click.option(
    "--results",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Results folder the suite's run records are written under (default: a temporary folder).",
)
@click.option(
    "--from-results",
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Compare the records already in this results folder instead of running the suite.",
)
@click.option("--update", is_flag=True, help="Rewrite the baseline from this run (code version and environment).")
@click.option("--device", default="cpu", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device.")
def check_command(
    suite_file: str | None,
    baseline_file: str | None,
    results: str | None,
    from_results: str | None,
    update: bool,
    device: str,
) -> None:
    """Run a fixed suite (or read its results) and compare mean U / S / H with a committed baseline."""
    if results and from_results:
        raise GZSLBenchError("give --results (run the suite) or --from-results (read records), not both")
    suite = check.load_suite(suite_file)
    baseline_path = baseline_file or (check.default_baseline_path() if suite_file is None else None)
    if baseline_path is None:
        raise GZSLBenchError("a custom --suite needs its own --baseline file (made with --update)")
    baseline = check.read_baseline(baseline_path)
    if baseline is None and not update:
        raise GZSLBenchError(f"no baseline at '{baseline_path}'; make one with --update")
    tic = time.perf_counter()
    if from_results:
        current = check.collect(suite, from_results)
        click.echo(f"suite '{suite.name}': {len(suite.cases)} case(s) read from {from_results}")
    else:
        click.echo(f"suite '{suite.name}': {len(suite.cases)} case(s), torch threads {suite.threads or 'default'}")
        with check.results_folder(results) as out:
            current, _ = check.run_suite(
                suite, out, device, progress=lambda key, s: click.echo(f"  {key}: {s:.1f} s", err=True)
            )
        click.echo(f"ran the suite in {time.perf_counter() - tic:.0f} s")
    rows = check.compare(suite, baseline, current)
    click.echo(check.render(rows))
    if update:
        check.write_baseline(baseline_path, check.make_baseline(suite, current, device))
        click.echo(f"baseline written to {baseline_path}")
        return
    status = check.exit_status(rows)
    click.echo(check.verdict_line(status))
    if status:
        sys.exit(status)
