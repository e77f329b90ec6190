"""The ``gzslbench`` command line: list, config, run, table."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click
import pandas as pd

from gzslbench.config import parse_assignments
from gzslbench.environment import DEVICE_CHOICES
from gzslbench.errors import GZSLBenchError
from gzslbench.registry import DATASETS, METHODS
from gzslbench.reporting import TABLE_FORMATS, aggregate, render
from gzslbench.results import METRICS, load_results
from gzslbench.runner import method_config, run

SELECTION_CHOICES = ("last", "val", "oracle")


class _FriendlyGroup(click.Group):
    """Turns user errors and Ctrl-C into one line and a non-zero exit, never a traceback."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.format_message())
            sys.exit(0)
        except click.UsageError as exc:  # one line instead of click's usage block
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"error: {exc.format_message()}{hint}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(130)
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GZSLBenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: finished runs are saved; run the same command again to resume", err=True)
            ctx.exit(130)
        except (click.exceptions.Exit, click.exceptions.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("GZSLBENCH_DEBUG"):
                traceback.print_exc()
            click.echo(f"error: unexpected {type(exc).__name__}: {exc} (set GZSLBENCH_DEBUG=1 for details)", err=True)
            ctx.exit(1)


def _names(values: tuple[str, ...]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: options take repeats and comma lists alike."""
    return [name for value in values for name in value.split(",") if name.strip()]


@click.group(cls=_FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gzslbench")
def cli() -> None:
    """Reproducible Generalized Zero-Shot Learning benchmarks: U / S / H over seeds."""


@cli.command("list", epilog="Examples:\n\n  gzslbench list methods\n\n  gzslbench list datasets 'synth-*'")
@click.argument("what", type=click.Choice(["methods", "datasets"]))
@click.argument("pattern", default="*")
def list_command(what: str, pattern: str) -> None:
    """Show registered methods or datasets with a one-line description."""
    registry = METHODS if what == "methods" else DATASETS
    names = registry.names(pattern)
    width = max((len(n) for n in names), default=0)
    for name in names:
        click.echo(f"{name.ljust(width)}  {registry.get(name).description}")


@cli.command("config", epilog="Example:\n\n  gzslbench config --method acmr --dataset synth-cub --set epochs=10")
@click.option("--method", "-m", required=True, help="Registered method name.")
@click.option("--dataset", "-d", required=True, help="Registered dataset name (its defaults apply).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config value.")
def config_command(method: str, dataset: str, config_file: str | None, overrides: tuple[str, ...]) -> None:
    """Print the fully resolved config a run would use."""
    defaults_from = DATASETS.get(dataset).defaults_from or dataset
    config = method_config(method, defaults_from, config_file, parse_assignments(overrides))
    for key, value in config.items():
        click.echo(f"{key} = {value!r}")


@cli.command(
    "run",
    epilog=(
        "Examples:\n\n  gzslbench run --method eszsl --dataset synth-cub --seeds 3\n\n"
        "  gzslbench run -m acmr,cada-vae -d cub --data-dir ~/xlsa17 --seeds 5 --n-jobs 2\n\n"
        "  gzslbench run -m acmr -d synth-cub -D scale=0.25 --set epochs=20 --val"
    ),
)
@click.option("--method", "-m", "methods", multiple=True, required=True, help="Method name(s); comma list or repeat.")
@click.option("--dataset", "-d", "datasets", multiple=True, required=True, help="Dataset name(s).")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1), help="Number of seeds.")
@click.option("--seed-start", default=0, show_default=True, type=click.IntRange(min=0), help="First seed.")
@click.option("--out", default="results", show_default=True, type=click.Path(file_okay=False), help="Results folder.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a method config value.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML file of config values.")
@click.option("--dataset-option", "-D", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option.")
@click.option("--data-dir", type=click.Path(), help="Root of the real data (else $GZSLBENCH_DATA).")
@click.option("--n-jobs", default=1, show_default=True, type=int, help="Runs in parallel (-1: one per core).")
@click.option("--val", "validate", is_flag=True, help="Also train on the validation split for the `val` mode.")
@click.option("--force", is_flag=True, help="Rerun runs that already have a finished record.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def run_command(
    methods: tuple[str, ...],
    datasets: tuple[str, ...],
    seeds: int,
    seed_start: int,
    out: str,
    device: str,
    overrides: tuple[str, ...],
    config_file: str | None,
    options: tuple[str, ...],
    data_dir: str | None,
    n_jobs: int,
    validate: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Train and evaluate methods on datasets over seeds; write one JSON record per run."""
    records = run(
        _names(methods),
        _names(datasets),
        seeds,
        seed_start=seed_start,
        out=out,
        device=device,
        overrides=overrides,
        config_file=config_file,
        options=options,
        data_dir=data_dir,
        n_jobs=n_jobs,
        force=force,
        validate=validate,
        quiet=quiet,
    )
    _print_summary(records, out)
    failed = [r for r in records if r.get("status") != "ok"]
    for record in failed:
        click.echo(
            f"failed: {record['method']} on {record['dataset']} seed {record['seed']}: {record.get('error')}",
            err=True,
        )
    if failed:
        sys.exit(1)


def _print_summary(records: list[dict], out: str) -> None:
    rows = [
        {"method": r["method"], "dataset": r["dataset"], "seed": r["seed"], "mode": mode, **v}
        for r in records
        if r.get("status") == "ok"
        for mode, v in r["metrics"].items()
    ]
    if rows:
        frame = pd.DataFrame(rows)
        shown = frame.pivot_table(index=["method", "dataset", "seed"], columns="mode", values=list(METRICS[:3]))
        shown.columns = [f"{mode}:{metric}" for metric, mode in shown.columns]
        order = [f"{mode}:{m}" for mode in SELECTION_CHOICES for m in METRICS[:3] if f"{mode}:{m}" in shown.columns]
        click.echo(shown[order].round(1).to_string())
        if any(c.startswith("oracle:") for c in order):
            click.echo("oracle = epoch selected on the TEST set (optimistic); last = fixed epochs; val = validation.")
    click.echo(f"{len(records)} run record(s) under {out}/runs")


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
        frame = frame[frame["method"].isin([METHODS.get(m).name for m in _names(methods)])]
    if datasets:
        frame = frame[frame["dataset"].isin([DATASETS.get(d).name for d in _names(datasets)])]
    click.echo(render(aggregate(frame, mode), fmt, mode))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gzslbench")
