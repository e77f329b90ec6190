"""``gzslbench run``: train and evaluate methods on datasets over seeds."""

from __future__ import annotations

import sys

import click
import pandas as pd
from click.core import ParameterSource

from gzslbench.cli._group import cli, names, quiet_option, results_folder, results_folder_options
from gzslbench.core.environment import DEVICE_CHOICES
from gzslbench.execution.api import run
from gzslbench.execution.options import BACKENDS
from gzslbench.protocol.selection import SELECTION_MODES
from gzslbench.results.record import METRICS

SELECTION_CHOICES = tuple(SELECTION_MODES)


@cli.command(
    "run",
    epilog=(
        "Examples:\n\n  gzslbench run --method eszsl --dataset synth-cub --seeds 3\n\n"
        "  gzslbench run -m acmr,cada-vae -d cub --data-dir ~/xlsa17 --seeds 5 --n-jobs 2\n\n"
        "  gzslbench run -m acmr -d synth-cub -D scale=0.25 --set epochs=20 --val\n\n"
        "  gzslbench run -m acmr -d cub --seeds 5 --backend dask --scheduler tcp://10.0.0.5:8786 --threads 4"
    ),
)
@click.option("--method", "-m", "methods", multiple=True, required=True, help="Method name(s); comma list or repeat.")
@click.option("--dataset", "-d", "datasets", multiple=True, required=True, help="Dataset name(s).")
@click.option("--seeds", default=1, show_default=True, type=int, help="Number of seeds.")
@click.option("--seed-start", default=0, show_default=True, type=int, help="First seed.")
@click.option(
    "--seed",
    "seed_list",
    multiple=True,
    type=int,
    help="Run exactly this seed (repeat for several), instead of --seeds and --seed-start.",
)
@results_folder_options
@click.option("--device", default="auto", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a method config value.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML file of config values.")
@click.option("--dataset-option", "-D", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option.")
@click.option("--data-dir", type=click.Path(), help="Root of the real data (else $GZSLBENCH_DATA).")
@click.option(
    "--n-jobs",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help="Runs in parallel (-1: one per core; auto: planned with --batch-seeds and --threads, see docs/speed.md).",
)
@click.option("--threads", type=int, help="Torch threads per run [default: cores / n-jobs].")
@click.option(
    "--backend",
    default="joblib",
    show_default=True,
    type=click.Choice(BACKENDS),
    help="Where runs execute: local processes (joblib) or a Dask cluster (pip install 'gzslbench[dask]').",
)
@click.option(
    "--scheduler",
    metavar="tcp://HOST:PORT",
    help="With --backend dask: an existing Dask scheduler [default: a local cluster of --n-jobs workers].",
)
@click.option(
    "--batch-seeds",
    default="auto",
    show_default=True,
    metavar="K|auto",
    help="Train up to K seeds of one method, dataset and config as one computation (VAE methods; one record each).",
)
@click.option("--val", "validate", is_flag=True, help="Also train on the validation split for the `val` mode.")
@click.option("--save-scores", is_flag=True, help="Keep each run's final test scores (float16) beside its record.")
@click.option("--force", is_flag=True, help="Rerun runs that already have a finished record.")
@click.option("--save-model", is_flag=True, help="Save the trained model's state dict beside each record.")
@quiet_option
def run_command(
    methods: tuple[str, ...],
    datasets: tuple[str, ...],
    seeds: int,
    seed_start: int,
    seed_list: tuple[int, ...],
    out: str,
    legacy_out: str | None,
    device: str,
    overrides: tuple[str, ...],
    config_file: str | None,
    options: tuple[str, ...],
    data_dir: str | None,
    n_jobs: str,
    threads: int | None,
    backend: str,
    scheduler: str | None,
    batch_seeds: str,
    validate: bool,
    save_scores: bool,
    force: bool,
    save_model: bool,
    quiet: bool,
) -> None:
    """Train and evaluate methods on datasets over seeds; write one JSON record per run (under --results)."""
    out = results_folder(out, legacy_out)
    source = click.get_current_context().get_parameter_source
    counted = [name for name in ("seeds", "seed_start") if source(name) is not ParameterSource.DEFAULT]
    if seed_list and counted:
        raise click.UsageError(f"give --seed or --{counted[0].replace('_', '-')}, not both")
    records = run(
        names(methods),
        names(datasets),
        list(seed_list) or seeds,
        seed_start=seed_start,
        out=out,
        device=device,
        overrides=overrides,
        config_file=config_file,
        options=options,
        data_dir=data_dir,
        n_jobs=n_jobs,
        threads=threads,
        force=force,
        validate=validate,
        save_scores=save_scores,
        quiet=quiet,
        backend=backend,
        scheduler=scheduler,
        save_model=save_model,
        batch_seeds=batch_seeds,
    )
    _print_summary(records, out)
    for record in records:
        for warning in record.get("warnings") or []:
            click.echo(f"warning: {record['method']} on {record['dataset']} seed {record['seed']}: {warning}", err=True)
    busy = [r for r in records if r.get("status") == "busy"]
    for record in busy:
        click.echo(f"skipped: {record['error']}; run the command again later to collect it", err=True)
    failed = [r for r in records if r.get("status") not in ("ok", "busy")]
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
