"""``gzslbench list`` and ``gzslbench config``: what is registered, and the config a run would use."""

from __future__ import annotations

import click

from gzslbench.cli._group import cli
from gzslbench.core.config import describe_range, parse_assignments
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.registry import DATASETS, METHODS
from gzslbench.execution.resolve import defaults_source, method_config
from gzslbench.studies.sweep import default_grid, grid_points, point_configs


@cli.command("list", epilog="Examples:\n\n  gzslbench list methods\n\n  gzslbench list datasets 'synth-*'")
@click.argument("what", type=click.Choice(["methods", "datasets"]))
@click.argument("pattern", default="*")
def list_command(what: str, pattern: str) -> None:
    """Show registered methods or datasets with a one-line description."""
    registry = METHODS if what == "methods" else DATASETS
    names = registry.names(pattern)
    if not names:
        raise GZSLBenchError(f"no {what} match '{pattern}' (`gzslbench list {what}` lists them all)")
    width = max((len(n) for n in names), default=0)
    for name in names:
        click.echo(f"{name.ljust(width)}  {registry.get(name).description}")


@cli.command("config", epilog="Example:\n\n  gzslbench config --method acmr --dataset synth-cub --set epochs=10")
@click.option("--method", "-m", required=True, help="Registered method name.")
@click.option("--dataset", "-d", required=True, help="Registered dataset name (its defaults apply).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML or YAML config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override one config value.")
@click.option("--grid", "show_grid", is_flag=True, help="Print the method's search space (what `tune` searches).")
def config_command(
    method: str, dataset: str, config_file: str | None, overrides: tuple[str, ...], show_grid: bool
) -> None:
    """Print the fully resolved config a run would use (with --grid: the method's search space)."""
    defaults_from = DATASETS.get(dataset).defaults_from or dataset
    if show_grid:
        _print_search_space(method, dataset, defaults_from)
        return
    config = method_config(method, defaults_from, config_file, parse_assignments(overrides))
    click.echo(f"# per-dataset defaults: {defaults_source(method, defaults_from)[1]['note']}")
    ranges = METHODS.get(method).ranges
    lines = [f"{key} = {value!r}" for key, value in config.items()]
    width = max((len(line) for line in lines), default=0)
    for line, key in zip(lines, config, strict=True):
        click.echo(f"{line.ljust(width)}  # {describe_range(key, config, ranges)}")
    adapter = DATASETS.get(dataset)
    if adapter.options:
        options = ", ".join(f"{key}={value!r}" for key, value in adapter.options.items())
        click.echo(f"# dataset options of {adapter.name} (-D KEY=VALUE), defaults: {options}")


def _print_search_space(method: str, dataset: str, defaults_from: str) -> None:
    cls = METHODS.get(method)
    space = cls.search_space_for(defaults_from)
    if not space:
        click.echo(f"# method '{cls.name}' declares no search space; `gzslbench tune` needs --grid KEY=[values]")
        return
    points = grid_points(default_grid(method, defaults_from))
    point_configs(method, defaults_from, points, method_config(method, defaults_from))  # what tune would refuse
    for key, values in space.items():
        click.echo(f"{key} = {values!r}")
    click.echo(f"# {len(points)} points; `gzslbench tune -m {cls.name} -d {dataset}` chooses among them on validation")
