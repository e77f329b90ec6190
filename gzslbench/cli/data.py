"""``gzslbench data download`` and ``gzslbench data check``: get the real datasets and see what is there."""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate

from gzslbench.cli._group import cli
from gzslbench.core.errors import DataError, permission_message
from gzslbench.core.registry import DATASETS, unknown_name_message
from gzslbench.data.download import ARCHIVES, download
from gzslbench.datasets.xlsa17 import (
    FEATURES_FILE,
    HOW_TO_GET,
    SPLITS_FILE,
    XLSA17Adapter,
    candidate_folders,
    data_root,
)
from gzslbench.execution.resolve import load_dataset


@cli.group("data")
def data_group() -> None:
    """Download the xlsa17 release and check which datasets are present and valid."""


@data_group.command(
    "download",
    epilog=(
        "Examples:\n\n  gzslbench data download xlsa17\n\n"
        "  gzslbench data download xlsa17 --to ~/data --sha256 <64 hex digits>\n\n"
        "An archive is unpacked only when its SHA-256 matches --sha256 or the hash stored in gzslbench; "
        "when neither is known the download prints the hash and stops, unless --accept-unverified is given."
    ),
)
@click.argument("archive", type=click.Choice(sorted(ARCHIVES)))
@click.option(
    "--to",
    "to",
    type=click.Path(file_okay=False),
    help="Target folder (default: the data root: $GZSLBENCH_DATA, else the user cache folder).",
)
@click.option("--url", help="Fetch from here instead (default: $GZSLBENCH_<ARCHIVE>_URL, else the release URL).")
@click.option("--sha256", metavar="HEX", help="Expected SHA-256 of the archive (overrides the stored one).")
@click.option("--accept-unverified", is_flag=True, help="Unpack even though no SHA-256 is known. Not recommended.")
@click.option("--force", is_flag=True, help="Replace an already unpacked copy.")
@click.option("--keep-archive", is_flag=True, help="Keep the verified archive beside the unpacked folder.")
def download_command(
    archive: str,
    to: str | None,
    url: str | None,
    sha256: str | None,
    accept_unverified: bool,
    force: bool,
    keep_archive: bool,
) -> None:
    """Fetch a release archive (resuming a partial download), verify its SHA-256, and unpack it safely."""
    result = download(
        archive,
        to,
        url=url,
        sha256=sha256,
        accept_unverified=accept_unverified,
        force=force,
        keep_archive=keep_archive,
        log=lambda line: click.echo(line, err=True),
    )
    where = ", ".join(str(p) for p in result.unpacked)
    click.echo(f"{archive}: unpacked into {where} (sha256 {result.sha256}); `gzslbench data check` checks it")


def xlsa17_names() -> list[str]:
    """The registered datasets read from the xlsa17 release (cub, sun, awa1, awa2, apy, flo)."""
    return [n for n in DATASETS.names() if issubclass(DATASETS.get(n), XLSA17Adapter)]


def is_present(root: Path, folder: str) -> bool:
    """Whether any place the loader looks holds at least one of the dataset's two files."""
    return any((p / f).is_file() for p in candidate_folders(root, folder) for f in (FEATURES_FILE, SPLITS_FILE))


@data_group.command(
    "check", epilog="Examples:\n\n  gzslbench data check\n\n  gzslbench data check cub awa2 --data-dir ~/data/xlsa17"
)
@click.argument("datasets", nargs=-1)
@click.option("--data-dir", type=click.Path(file_okay=False), help="Data root (default: $GZSLBENCH_DATA, else cache).")
def check_command(datasets: tuple[str, ...], data_dir: str | None) -> None:
    """List the xlsa17 datasets: present or not, valid or why not, sizes and fingerprint.

    Validation is the loading itself, so a dataset marked valid is one a run can use. Absent
    datasets are not an error; a present but invalid one makes the command fail.
    """
    root = data_root(data_dir)
    if data_dir is not None and not root.is_dir():  # a named root that is not there is a typo, not "all absent"
        raise DataError(f"--data-dir '{data_dir}' does not exist (or is not a folder)")
    for name in datasets:
        if name not in DATASETS:  # the xlsa17 names only: generated datasets have nothing to check
            raise DataError(unknown_name_message("xlsa17 dataset", name, xlsa17_names()))
        if not issubclass(DATASETS.get(name), XLSA17Adapter):
            raise DataError(f"'{name}' is not an xlsa17 dataset; known: {', '.join(xlsa17_names())}")
    names = [DATASETS.get(n).name for n in datasets] if datasets else xlsa17_names()
    rows, invalid = [], []
    for name in names:
        adapter = DATASETS.get(name)
        if not is_present(root, adapter.folder):
            rows.append([name, "absent", "", "", "", ""])
            continue
        try:
            data = load_dataset(name, data_dir)
        except (DataError, PermissionError) as exc:
            reason = permission_message(exc) if isinstance(exc, PermissionError) else str(exc)
            invalid.append(name)
            rows.append([name, "INVALID", "", "", "", reason.replace(f"; {HOW_TO_GET}", "")])
            continue
        classes = f"{data.n_classes} ({len(data.seen_classes)}/{len(data.unseen_classes)})"
        rows.append([name, "valid", data.features.shape[0], classes, data.fingerprint, data.source])
        for warning in data.extra.get("warnings") or []:
            click.echo(f"warning: {name}: {warning}", err=True)
    headers = ["dataset", "status", "instances", "classes (seen/unseen)", "fingerprint", "folder / reason"]
    click.echo(f"data root: {root}")
    click.echo(tabulate(rows, headers=headers, tablefmt="github"))
    if invalid:
        raise DataError(f"{len(invalid)} present dataset(s) invalid: {', '.join(invalid)} (reasons above)")
    if all(row[1] == "absent" for row in rows):
        click.echo("no dataset found: `gzslbench data download xlsa17` fetches the release", err=True)
