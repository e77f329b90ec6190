"""``gzslbench table``: paper tables (Table 2, Table 3) from run records, with reported numbers and statistics."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import click

from gzslbench.cli._group import cli, names, results_option
from gzslbench.cli.run import SELECTION_CHOICES
from gzslbench.core.errors import GZSLBenchError, UnknownNameError
from gzslbench.core.registry import DATASETS, METHODS, Registry, normalise_name, unknown_name_message
from gzslbench.reports.tables import (
    TABLE_FORMATS,
    TABLE_STYLES,
    Table,
    build_table2,
    build_table3,
    config_variants,
    render,
)
from gzslbench.results.frame import SHOWN, TABLE_METRICS, aggregate, load_frame
from gzslbench.results.store import mixed_provenance, recorded_names


def selection_options(func):
    """--results, --mode, --method, --dataset: shared by ``table``, ``plot`` and ``report``."""
    func = click.option("--dataset", "-d", "datasets", multiple=True, help="Only these datasets.")(func)
    func = click.option("--method", "-m", "methods", multiple=True, help="Only these methods.")(func)
    func = click.option(
        "--mode", default="last", show_default=True, type=click.Choice(SELECTION_CHOICES), help="Model selection."
    )(func)
    return results_option("Results folder: the run records are read from it.")(func)


def resolve_names(methods: tuple[str, ...], datasets: tuple[str, ...], out: str) -> tuple[list[str], list[str]]:
    """The names of --method / --dataset: registered, or with records under ``out`` (unknown: an error)."""
    recorded_methods, recorded_datasets = recorded_names(out)
    return (
        [_known_name(METHODS, m, recorded_methods) for m in names(methods)],
        [_known_name(DATASETS, d, recorded_datasets) for d in names(datasets)],
    )


def _known_name(registry: Registry, name: str, recorded: set[str]) -> str:
    """The registered name, else the recorded one (a script's method, an uninstalled plugin's records)."""
    if name in registry:
        return registry.get(name).name
    if normalise_name(name) in recorded:
        return normalise_name(name)
    raise UnknownNameError(unknown_name_message(registry.kind, name, sorted(set(registry.names()) | recorded)))


def make_table(
    out: str,
    style: str,
    mode: str = "last",
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    *,
    with_reported: bool = False,
    compare: bool = False,
    ci: bool = False,
    significance: bool = False,
    metrics: Sequence[str] = SHOWN,
    strict: bool = False,
) -> Table:
    """The Table 2 / Table 3 of the records under ``out`` (shared by ``table`` and ``report``).

    Skipped record files, cells whose seeds mix data, code versions, devices or executions, and rows tuned on
    validation are reported as warnings and table notes; ``strict`` makes the first two errors.
    """
    problems: list[str] = []
    configs: dict[str, dict[str, Any]] = {}
    frame = load_frame(out, methods or [], datasets or [], problems, configs)
    mixed = mixed_provenance(frame)
    warn_skipped(problems)
    for line in mixed:
        click.echo(f"warning: {line}", err=True)
    if strict and (problems or mixed):
        raise GZSLBenchError(
            f"--strict: {len(problems)} unusable record(s) and {len(mixed)} cell(s) mixing data, code, devices or "
            "executions (see the warnings above)"
        )
    stats = aggregate(frame, mode)
    stats = stats.assign(variant=config_variants(stats, configs))
    options = dict(
        with_reported=with_reported, compare=compare, spread="ci" if ci else "std", significance=significance
    )
    if style == "table3":
        table = build_table3(stats, mode, configs=configs, **options)
    else:
        table = build_table2(stats, mode, metrics=metrics, **options)
    if problems:
        table.notes.append((None, f"{len(problems)} unusable record file(s) skipped (named on stderr)."))
    if mixed:
        table.notes.append((None, f"{len(mixed)} cell(s) mix seeds of different provenance (named in the warnings)."))
    tuned = sorted(set(frame.loc[frame.get("tuned", False) == True, "method"]))  # noqa: E712
    if tuned:
        table.notes.append(
            (None, f"Hyper-parameters chosen on the validation split (`gzslbench tune`): {', '.join(tuned)}.")
        )
    return table


def warn_skipped(problems: Iterable[str], shown: Collection[str] = ()) -> None:
    """One ``warning: skipped`` line on stderr per unusable record file, each once and none of ``shown`` (already
    printed): a figure skips the records a table does."""
    for line in dict.fromkeys(problems):
        if line not in shown:
            click.echo(f"warning: skipped {line}", err=True)


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """``u,s,h,ausuc,h_cs`` -> the canonical metric names (None: U, S, H); one-line error for an unknown one."""
    if text is None:
        return SHOWN
    canonical = {m.lower(): m for m in TABLE_METRICS}
    chosen = []
    for name in (part.strip().lower() for part in text.split(",") if part.strip()):
        if name not in canonical:
            raise GZSLBenchError(f"unknown metric '{name}' (choose from {', '.join(m.lower() for m in TABLE_METRICS)})")
        chosen.append(canonical[name])
    if not chosen:
        raise GZSLBenchError(
            f"--metrics names no metric (got {text!r}); choose from {', '.join(m.lower() for m in TABLE_METRICS)}"
        )
    return tuple(chosen)


@cli.command(
    "table",
    epilog=(
        "Examples:\n\n  gzslbench table\n\n  gzslbench table --style table3 --reported\n\n"
        "  gzslbench table --mode oracle --format latex --method acmr,cada-vae\n\n"
        "  gzslbench table --compare reported --ci --significance"
    ),
)
@selection_options
@click.option("--style", default="table2", show_default=True, type=click.Choice(TABLE_STYLES), help="Layout.")
@click.option("--format", "fmt", default="markdown", show_default=True, type=click.Choice(TABLE_FORMATS))
@click.option("--reported", "with_reported", is_flag=True, help="Add the published numbers (real datasets only).")
@click.option("--compare", type=click.Choice(["reported"]), help="Add Δ = ours − reported columns (real datasets).")
@click.option("--ci", is_flag=True, help="95% t-intervals over seeds instead of the std.")
@click.option("--significance", is_flag=True, help="Mark runs not significantly below the best H (t-test over seeds).")
@click.option("--metrics", help="Table 2 columns per dataset, e.g. u,s,h,ausuc,h_cs [default: u,s,h].")
@click.option("--strict", is_flag=True, help="Refuse unusable records and cells of mixed provenance.")
def table_command(
    out: str,
    mode: str,
    methods: tuple[str, ...],
    datasets: tuple[str, ...],
    style: str,
    fmt: str,
    with_reported: bool,
    compare: str | None,
    ci: bool,
    significance: bool,
    metrics: str | None,
    strict: bool,
) -> None:
    """Paper tables from run records: U / S / H mean ± std over seeds per method and dataset.

    table2: methods grouped by family, datasets spanning U, S, H; table3: the ACMR ablation (H,
    with IEM / VSA marks). Best H per dataset in bold, second underlined.
    """
    method_names, dataset_names = resolve_names(methods, datasets, out)
    table = make_table(
        out,
        style,
        mode,
        method_names,
        dataset_names,
        with_reported=with_reported,
        compare=compare == "reported",
        ci=ci,
        significance=significance,
        metrics=parse_metrics(metrics),
        strict=strict,
    )
    click.echo(render(table, fmt).rstrip("\n"))
