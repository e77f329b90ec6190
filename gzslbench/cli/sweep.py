"""``gzslbench sweep`` and ``gzslbench tune``: grids of configs, and hyper-parameters chosen on validation."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click
import pandas as pd

from gzslbench.cli._group import cli, quiet_option, results_folder, results_folder_options
from gzslbench.core.environment import DEVICE_CHOICES
from gzslbench.studies.sweep import parse_grid, sweep, values_of
from gzslbench.studies.tuning import TuneResult, tune


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``sweep`` and ``tune`` share with ``run``."""
    options = [
        click.option("--method", "-m", required=True, help="Method name."),
        click.option("--dataset", "-d", required=True, help="Dataset name."),
        click.option(
            "--grid",
            "grid",
            multiple=True,
            metavar="KEY=AXIS",
            help="Axis of the grid: KEY=[v1,v2], KEY=logspace(a,b,n), KEY=linspace(a,b,n), or a .yaml file; "
            "repeat for more keys. KEY[i] sweeps one element of a list-valued key.",
        ),
        click.option("--random", "random", type=int, help="Sample this many points of the grid (fixed seed)."),
        click.option("--random-seed", default=0, show_default=True, type=int, help="Seed of --random sampling."),
        click.option("--name", help="Name tagging the records [default: method and a hash of the grid]."),
        click.option("--seeds", default=1, show_default=True, type=int, help="Number of seeds."),
        click.option("--seed-start", default=0, show_default=True, type=int, help="First seed."),
        results_folder_options,
        click.option(
            "--device", default="auto", show_default=True, type=click.Choice(DEVICE_CHOICES), help="Torch device."
        ),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Fixed config value."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML config file."),
        click.option("--dataset-option", "-D", "options", multiple=True, metavar="KEY=VALUE", help="Dataset option."),
        click.option("--data-dir", type=click.Path(), help="Root of the real data (else $GZSLBENCH_DATA)."),
        click.option("--n-jobs", default=1, show_default=True, type=int, help="Runs in parallel (-1: one per core)."),
        click.option("--threads", type=int, help="Torch threads per run [default: cores / n-jobs]."),
        click.option("--force", is_flag=True, help="Rerun finished runs and search points."),
        quiet_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())


def _mean_std(series: pd.Series) -> str:
    if series.count() < 2:
        return f"{series.mean():.1f}"
    return f"{series.mean():.1f} ± {series.std():.1f}"


def _failures(records: list[dict[str, Any]]) -> bool:
    """Report busy and failed runs on stderr; True if any failed."""
    failed = False
    for record in records:
        if record.get("status") == "busy":
            click.echo(f"skipped: {record['error']}; run the command again later to collect it", err=True)
        elif record.get("status") != "ok":
            failed = True
            click.echo(f"failed: {record.get('method')} seed {record.get('seed')}: {record.get('error')}", err=True)
    return failed


@cli.command(
    "sweep",
    epilog=(
        "Examples:\n\n  gzslbench sweep -m eszsl -d synth-cub --grid 'gamma=logspace(-3,3,7)' --grid lam=[1,10]\n\n"
        "  gzslbench sweep -m acmr -d synth-cub -D scale=0.25 --grid 'kl_schedule[0]=[1,3,5]' --random 2\n\n"
        "  gzslbench sweep -m eszsl -d synth-cub --grid 'gamma=[0.1,1,10]' --select val --seeds 3"
    ),
)
@_run_options
@click.option(
    "--select",
    type=click.Choice(["val"]),
    help="Choose the point on the validation split and run only it on the test split (same as `tune`).",
)
def sweep_command(select: str | None, **kwargs: Any) -> None:
    """Run every point of a grid over seeds: one record per (point, seed), tagged with the sweep's name.

    Without --select it reports the test numbers of every point; picking the best of them is
    selection on test data. --select val chooses on the validation split instead.
    """
    kwargs["out"] = results_folder(kwargs["out"], kwargs.pop("legacy_out"))
    if select == "val":
        _tune(**kwargs)
        return
    if not kwargs["grid"]:
        raise click.UsageError("give the grid with --grid KEY=AXIS (or use `gzslbench tune` for the method's own)")
    grid = parse_grid(list(kwargs.pop("grid")))
    records = sweep(kwargs.pop("method"), kwargs.pop("dataset"), grid, **kwargs)
    rows = [
        {**values_of(r["config"], grid), "config_hash": r["config_hash"], **r["metrics"]["last"]}
        for r in records
        if r.get("status") == "ok"
    ]
    if rows:
        keys = [*grid, "config_hash"]
        frame = pd.DataFrame(rows).astype({k: str for k in grid})
        shown = frame.groupby(keys, sort=False).agg(
            n=("H", "count"), U=("U", _mean_std), S=("S", _mean_std), H=("H", _mean_std)
        )
        click.echo(shown.reset_index().to_string(index=False))
        click.echo(
            "test U / S / H of every point (mode last), mean ± std over seeds. Choosing among them is selection "
            "on the test set: use `gzslbench tune` (or --select val) for a reportable choice."
        )
    click.echo(f"{len(records)} run record(s) under {kwargs['out']}/runs")
    if _failures(records):
        sys.exit(1)


@cli.command(
    "tune",
    epilog=(
        "Examples:\n\n  gzslbench tune --method eszsl --dataset synth-cub --seeds 3\n\n"
        "  gzslbench tune -m eszsl -d cub --grid 'gamma=logspace(-3,3,13)' --grid 'lam=logspace(-3,3,13)'\n\n"
        "  gzslbench tune -m acmr -d synth-cub -D scale=0.25 --random 4 --seeds 3"
    ),
)
@_run_options
def tune_command(**kwargs: Any) -> None:
    """Choose hyper-parameters on the validation split, then train on trainval and test the chosen point.

    --grid defaults to the method's search space (`gzslbench config -m M -d D --grid`). Every
    point is trained on the validation split's train part and scored on the validation split;
    no test data is read before the final runs.
    """
    kwargs["out"] = results_folder(kwargs["out"], kwargs.pop("legacy_out"))
    _tune(**kwargs)


def _tune(**kwargs: Any) -> None:
    result = tune(kwargs.pop("method"), kwargs.pop("dataset"), list(kwargs.pop("grid")) or None, **kwargs)
    _print_search(result)
    _print_final(result)
    out = kwargs["out"]
    click.echo(f"search results under {out}/tuning; {len(result.records)} run record(s) under {out}/runs")
    if _failures(result.records):
        sys.exit(1)


def _print_search(result: TuneResult) -> None:
    rows = []
    for i, point in enumerate(result.points):
        row: dict[str, Any] = {" ": "*" if i == result.chosen_index else ""}
        row |= {k: f"{v:g}" if isinstance(v, float) else str(v) for k, v in point["values"].items()}
        for metric in ("U", "S", "H"):
            value = point[f"val_{metric}"]  # type: ignore[literal-required]
            row[f"val {metric}"] = "–" if value is None else f"{value:.1f}"
        if any((p["epoch"] or 1) > 1 for p in result.points):
            row["epoch"] = point["epoch"]
        if point["status"] != "ok":
            row["status"] = point["status"]
        rows.append(row)
    block = result.block
    click.echo(
        f"validation search '{result.name}': {len(result.points)} point(s), trained with seed {block['search_seed']} "
        f"on the validation split ({block['validation']['source']})"
    )
    click.echo(pd.DataFrame(rows).to_string(index=False))
    chosen = result.points[result.chosen_index]
    epoch = f", epoch {chosen['epoch']}" if (chosen["epoch"] or 1) > 1 else ""
    click.echo(f"chosen on validation: {_values(chosen['values'])} (validation H {chosen['val_H']:.1f}{epoch})")


def _print_final(result: TuneResult) -> None:
    ok = [r for r in result.records if r.get("status") == "ok"]
    if not ok:
        return
    frame = pd.DataFrame([r["metrics"][result.mode] for r in ok])
    note = "epoch chosen on validation" if result.mode == "val" else "last epoch"
    once = ok[0].get("seed_dependent") is False
    runs = "once: the method does not depend on the seed" if once else f"{len(ok)} seed(s)"
    click.echo(
        f"test (trained on trainval, {runs}; {note}): U {_mean_std(frame['U'])}  "
        f"S {_mean_std(frame['S'])}  H {_mean_std(frame['H'])}"
    )
