"""Aggregate run records over seeds and render U / S / H tables as Markdown, LaTeX or CSV.

The rows are built once (:func:`aggregate`) and rendered by each writer, so the formats never
disagree. Cells read ``mean ± std`` over seeds in percent, with the seed count beside them.
"""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from gzslbench.errors import GZSLBenchError

TABLE_FORMATS = ("markdown", "latex", "csv")
SHOWN = ("U", "S", "H")
MODE_NOTES = {
    "last": "model selection: fixed epoch count, last epoch",
    "val": "model selection: epoch chosen on the validation split",
    "oracle": "model selection: ORACLE, best epoch chosen on the test set (optimistic, not a valid protocol)",
}


def aggregate(frame: pd.DataFrame, mode: str = "last") -> pd.DataFrame:
    """Mean, std and seed count of U/S/H per (method, dataset, config) for one selection mode."""
    ok = frame[(frame["status"] == "ok") & (frame["mode"] == mode)]
    if ok.empty:
        modes = sorted(m for m in frame["mode"].dropna().unique())
        raise GZSLBenchError(f"no finished runs with selection mode '{mode}' (modes present: {modes or 'none'})")
    grouped = ok.groupby(["method", "dataset", "config_hash"], sort=True)
    stats = grouped[list(SHOWN)].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    stats["n"] = grouped.size()
    return stats.reset_index()


def _cell(mean: float, std: float, latex: bool) -> str:
    """``mean ± std``; a single seed has no spread to show."""
    if pd.isna(std):
        return f"{mean:.1f}"
    return f"{mean:.1f} $\\pm$ {std:.1f}" if latex else f"{mean:.1f} ± {std:.1f}"


def _wide(stats: pd.DataFrame, latex: bool) -> tuple[list[str], list[list[str]]]:
    """Rows = methods (with the config hash where a method has several), columns = dataset x U/S/H, n."""
    several = stats.groupby(["method", "dataset"])["config_hash"].transform("nunique") > 1
    stats = stats.assign(row=stats["method"].where(~several, stats["method"] + " [" + stats["config_hash"] + "]"))
    datasets = sorted(stats["dataset"].unique())
    header = ["method"] + [f"{d} {m}" for d in datasets for m in SHOWN] + [f"{d} n" for d in datasets]
    body = []
    for row_name, group in stats.groupby("row", sort=True):
        by_dataset = {r["dataset"]: r for _, r in group.iterrows()}
        cells = [row_name]
        for d in datasets:
            r = by_dataset.get(d)
            cells += [_cell(r[f"{m}_mean"], r[f"{m}_std"], latex) if r is not None else "–" for m in SHOWN]
        cells += [str(int(by_dataset[d]["n"])) if d in by_dataset else "0" for d in datasets]
        body.append(cells)
    return header, body


def render(stats: pd.DataFrame, fmt: str = "markdown", mode: str = "last") -> str:
    """The aggregated table as text, with a caption naming the selection mode."""
    if fmt == "csv":
        return stats.assign(mode=mode).to_csv(index=False, float_format="%.2f")
    if fmt not in TABLE_FORMATS:
        raise GZSLBenchError(f"unknown table format '{fmt}' (choose from {', '.join(TABLE_FORMATS)})")
    latex = fmt == "latex"
    header, body = _wide(stats, latex)
    note = f"U / S / H in %, mean ± std over n seeds; {MODE_NOTES[mode]}."
    if latex:
        table = tabulate(body, headers=header, tablefmt="latex_raw", colalign=["left"] + ["right"] * (len(header) - 1))
        return f"% {note}\n{table}"
    return f"{tabulate(body, headers=header, tablefmt='github')}\n\n{note}"
