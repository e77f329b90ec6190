"""``gzslbench plot KIND``: the paper's figures from run records, as PNG and PDF (needs the ``plots`` extra)."""

from __future__ import annotations

from pathlib import Path

import click

from gzslbench.cli._group import cli
from gzslbench.cli.table import resolve_names, selection_options, warn_skipped
from gzslbench.reports.plots import (
    PLOT_KINDS,
    plot_bars,
    plot_curves,
    plot_seen_unseen,
    plot_sensitivity,
    plot_tsne,
    require_plots,
    select_records,
)


def draw(
    kind: str,
    out_results: str,
    out: Path,
    mode: str = "last",
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    *,
    data_dir: str | None = None,
    n_classes: int = 10,
    seed: int | None = None,
    problems: list[str] | None = None,
) -> list[Path]:
    """Draw one figure kind from the records under ``out_results`` into ``out``; return the files written.

    Unusable record files are skipped, each named in ``problems`` when given.
    """
    methods, datasets = methods or [], datasets or []
    if kind == "bars":
        return plot_bars(out_results, out, mode, methods, datasets, problems)
    if kind == "seen-unseen":
        return plot_seen_unseen(out_results, out, methods, datasets, problems)
    records = select_records(out_results, methods, datasets, problems=problems)
    if kind == "curves":
        return plot_curves(records, out)
    if kind == "sensitivity":
        return plot_sensitivity(records, out, mode)
    return plot_tsne(records, out_results, out, data_dir=data_dir, n_classes=n_classes, seed=seed, problems=problems)


@cli.command(
    "plot",
    epilog=(
        "Examples:\n\n  gzslbench plot bars --out figures\n\n  gzslbench plot curves -m acmr,cada-vae -d synth-cub\n\n"
        "  gzslbench plot sensitivity -m acmr\n\n  gzslbench plot tsne -m acmr --seed 0 --classes 10\n\n"
        "Needs matplotlib (tsne: scikit-learn too): pip install 'gzslbench[plots]'."
    ),
)
@click.argument("kind", type=click.Choice(PLOT_KINDS))
@selection_options
@click.option(
    "--out",
    "figures",
    default="figures",
    show_default=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Folder the figures are written to.",
)
@click.option("--data-dir", type=click.Path(), help="Root of the real data (tsne on real datasets).")
@click.option("--classes", "n_classes", default=10, show_default=True, type=click.IntRange(min=1), help="tsne.")
@click.option("--seed", type=int, help="tsne: only the record of this seed.")
def plot_command(
    kind: str,
    out: str,
    mode: str,
    methods: tuple[str, ...],
    datasets: tuple[str, ...],
    figures: str,
    data_dir: str | None,
    n_classes: int,
    seed: int | None,
) -> None:
    """Draw figures from run records (PNG and PDF).

    curves: per-epoch losses and U/S/H; sensitivity: H against one config value; tsne: latent
    features of a saved model (run --save-model); bars: H per method and dataset; seen-unseen: the
    calibrated-stacking curves with their AUSUC, from saved test scores (run --save-scores).
    """
    require_plots(kind)
    method_names, dataset_names = resolve_names(methods, datasets, out)
    problems: list[str] = []
    try:
        paths = draw(
            kind,
            out,
            Path(figures),
            mode,
            method_names,
            dataset_names,
            data_dir=data_dir,
            n_classes=n_classes,
            seed=seed,
            problems=problems,
        )
    finally:  # also before an error: a skipped record may be why nothing could be drawn
        warn_skipped(problems)
    for path in paths:
        click.echo(str(path))
