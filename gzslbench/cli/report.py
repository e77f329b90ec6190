"""``gzslbench report``: the tables (Markdown and LaTeX) and the figures in one folder, with an index.

Without the ``plots`` extra (matplotlib) the report holds the tables only; the index and stderr say
why in one line.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from gzslbench.cli._group import cli
from gzslbench.cli.plot import draw
from gzslbench.cli.table import make_table, resolve_names, selection_options, warn_skipped
from gzslbench.core.errors import GZSLBenchError, MissingExtraError
from gzslbench.reports.plots import require_plots
from gzslbench.reports.reported import ABLATIONS, real_twin
from gzslbench.reports.tables import render
from gzslbench.results.frame import load_frame

REPORT_ENTRIES = ("tables", "figures", "index.md")


def write_report(
    results: str,
    out: Path,
    mode: str = "last",
    methods: list[str] | None = None,
    datasets: list[str] | None = None,
    *,
    data_dir: str | None = None,
) -> Path:
    """Write ``out/index.md`` linking tables/ (md + tex) and figures/ (png + pdf); return the index path.

    The report is built in a hidden folder beside ``out`` and moved in only when complete, so a
    failure (a full disk, Ctrl-C) leaves the previous report as it was, never half of a new one.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _build_report(building, results, mode, methods, datasets, data_dir)
        out.mkdir(exist_ok=True)
        for name in REPORT_ENTRIES:  # the index last: it links the others
            target, built = out / name, building / name
            if target.is_dir():  # an earlier report's: its figures may be of runs gone since
                shutil.rmtree(target)
            if built.exists():
                built.replace(target)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out / "index.md"


def _build_report(
    out: Path,
    results: str,
    mode: str,
    methods: list[str] | None,
    datasets: list[str] | None,
    data_dir: str | None,
) -> None:
    """Write the report's entries (:data:`REPORT_ENTRIES`; figures/ only if any is drawn) into the empty ``out``."""
    shown: list[str] = []  # the unusable records that the tables name on stderr
    frame = load_frame(results, methods or [], datasets or [], shown)
    ran = set(frame["method"])
    has_real = any(real_twin(d) for d in frame["dataset"])
    tables_dir, figures_dir = out / "tables", out / "figures"
    tables_dir.mkdir()
    plan = [("table2", "Table 2: methods by family", {})]
    if has_real:
        plan.append(("table2-reported", "Table 2 with reported numbers", {"with_reported": True, "compare": True}))
    if ran & set(ABLATIONS):
        plan.append(("table3", "Table 3: ablation", {"with_reported": has_real, "compare": has_real}))
    sections = [f"# gzslbench report\n\nRecords: `{results}`; selection mode: `{mode}`.\n"]
    for name, title, options in plan:
        table = make_table(results, name.split("-")[0], mode, methods, datasets, **options)
        markdown = render(table, "markdown")
        (tables_dir / f"{name}.md").write_text(markdown)
        (tables_dir / f"{name}.tex").write_text(render(table, "latex"))
        sections.append(f"## {title}\n\n[Markdown](tables/{name}.md) · [LaTeX](tables/{name}.tex)\n\n{markdown}")
    figures = ["## Figures\n"]
    try:
        require_plots()
    except MissingExtraError as exc:
        figures.append(f"Not drawn: {exc}.\n")
        kinds: tuple[str, ...] = ()
    else:
        kinds = ("bars", "curves", "sensitivity", "tsne", "seen-unseen")
    problems: list[str] = []
    for kind in kinds:
        try:
            paths = draw(kind, results, figures_dir, mode, methods, datasets, data_dir=data_dir, problems=problems)
        except GZSLBenchError as exc:
            figures.append(f"- {kind}: not drawn ({exc}).\n")
            continue
        for png in (p for p in paths if p.suffix == ".png"):
            rel = png.relative_to(out).as_posix()
            figures.append(
                f"### {png.stem}\n\n![{png.stem}]({rel})\n\n[PDF]({Path(rel).with_suffix('.pdf').as_posix()})\n"
            )
    warn_skipped(problems, shown)  # those only a figure skips, e.g. a config that cannot rebuild a saved model
    (out / "index.md").write_text("\n".join(sections + figures))


@cli.command(
    "report",
    epilog=(
        "Without matplotlib (pip install 'gzslbench[plots]') the report holds the tables only, and one "
        "line on stderr and in the index says so; t-SNE also needs scikit-learn.\n\n"
        "Examples:\n\n  gzslbench report --out report\n\n  gzslbench report --mode oracle -d synth-cub"
    ),
)
@selection_options
@click.option(
    "--out",
    "report_dir",
    default="report",
    show_default=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Folder the report (index.md, tables/, figures/) is written to.",
)
@click.option("--data-dir", type=click.Path(), help="Root of the real data (t-SNE on real datasets).")
def report_command(
    out: str, mode: str, methods: tuple[str, ...], datasets: tuple[str, ...], report_dir: str, data_dir: str | None
) -> None:
    """Write the tables (Markdown, LaTeX) and every figure that the records allow into one folder."""
    method_names, dataset_names = resolve_names(methods, datasets, out)
    try:
        require_plots()
    except MissingExtraError as exc:
        click.echo(f"note: tables only, no figures: {exc}", err=True)
    index = write_report(out, Path(report_dir), mode, method_names, dataset_names, data_dir=data_dir)
    click.echo(str(index))
