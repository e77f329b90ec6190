"""``gzslbench check``: the accuracy regression check that CI runs after the unit tests."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import click

from gzslbench.cli._group import cli
from gzslbench.core.environment import DEVICE_CHOICES, assignments
from gzslbench.core.errors import GZSLBenchError
from gzslbench.studies import check


@cli.command(
    "check",
    epilog=(
        "Exit status: 0 every case within tolerance; 1 a regression, a failed run or a missing case; "
        "2 an error (a bad option, a damaged suite or baseline file); "
        "3 an improvement beyond tolerance or a suite/baseline change (update the baseline on purpose).\n\n"
        "Examples:\n\n  gzslbench check\n\n  gzslbench check --threads 2\n\n  gzslbench check --update\n\n"
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
@click.option(
    "--case",
    "case_keys",
    multiple=True,
    metavar="KEY",
    help="Run and compare only this case (e.g. acmr@synth-awa1; repeatable); not with --update.",
)
@click.option(
    "--update",
    is_flag=True,
    help="Rewrite the baseline from this run (code version and environment); measures the noise model of every "
    "case whose suite entry changed.",
)
@click.option(
    "--recalibrate",
    is_flag=True,
    help="With --update: measure every case's noise model again (after a change to a method's arithmetic).",
)
@click.option("--device", default="cpu", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch threads of every run, overriding the suite's `threads` (the baseline's thread count by default).",
)
@click.option(
    "--n-jobs",
    "--jobs",
    "jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes the runs are spread over, overriding the suite's `jobs` (results do not depend on it).",
)
def check_command(
    suite_file: str | None,
    baseline_file: str | None,
    results: str | None,
    from_results: str | None,
    case_keys: tuple[str, ...],
    update: bool,
    recalibrate: bool,
    device: str,
    threads: int | None,
    jobs: int | None,
) -> None:
    """Run a fixed suite (or read its results) and compare H / U / S / AUSUC seed by seed with a committed baseline."""
    if results and from_results:
        raise GZSLBenchError("give --results (run the suite) or --from-results (read records), not both")
    if case_keys and update:
        raise GZSLBenchError("--case checks a part of the suite; a baseline is made from all of it (drop --case)")
    if recalibrate and not update:
        raise GZSLBenchError("--recalibrate measures the noise model for a new baseline: give it with --update")
    suite = check.load_suite(suite_file)
    if threads is not None:
        if update and threads == suite.noise_threads and not suite.noise_env:
            raise GZSLBenchError(
                f"--threads {threads} is the suite's noise thread count: a baseline needs another ([noise] threads)"
            )
        suite = dataclasses.replace(suite, threads=threads)
    if jobs is not None:
        suite = dataclasses.replace(suite, jobs=jobs)
    baseline_path = baseline_file or (check.default_baseline_path() if suite_file is None else None)
    if baseline_path is None:
        raise GZSLBenchError("a custom --suite needs its own --baseline file (made with --update)")
    baseline = _readable(baseline_path) if update else check.read_baseline(baseline_path)
    if baseline is None and not update:
        raise GZSLBenchError(f"no baseline at '{baseline_path}'; make one with --update")
    if case_keys:
        suite, baseline = check.select_cases(suite, baseline, case_keys)
    tic = time.perf_counter()
    with check.results_folder(None if from_results else results) as out:
        if from_results:
            current = check.collect(suite, from_results)
            click.echo(f"suite '{suite.name}': {len(suite.cases)} case(s) read from {from_results}")
        else:
            click.echo(
                f"suite '{suite.name}': {len(suite.cases)} case(s), torch threads {suite.threads or 'default'}, "
                f"up to {suite.jobs} process(es)"
            )
            current, _ = check.run_suite(
                suite, out, device, progress=lambda key, s: click.echo(f"  {key}: {s:.1f} s", err=True)
            )
            click.echo(f"ran the suite in {time.perf_counter() - tic:.0f} s")
        rows = check.compare(suite, baseline, current)
        click.echo(check.render(rows))
        if update:
            env = " ".join(assignments(suite.noise_env))
            noise_side = f"{suite.noise_threads} torch thread(s)" + (f" with {env}" if env else "")
            click.echo(f"noise models: {noise_side} against {suite.threads}", err=True)
            noise = check.calibrate(
                suite,
                current,
                baseline,
                out,
                device,
                recalibrate=recalibrate,
                progress=lambda key, what: click.echo(f"  {key}: {what}", err=True),
            )
            check.write_baseline(baseline_path, check.make_baseline(suite, current, device, noise))
            click.echo(f"baseline written to {baseline_path}")
            return
    status = check.exit_status(rows)
    click.echo(check.verdict_line(status))
    if status:
        sys.exit(status)


def _readable(path: str | Path) -> dict | None:
    """The baseline at ``path`` when this version reads it, else None: it is being rewritten from scratch."""
    try:
        return check.read_baseline(path)
    except GZSLBenchError:
        return None
