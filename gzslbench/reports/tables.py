"""Paper tables from aggregated runs: Table 2 (methods by family x datasets x U/S/H) and Table 3 (ablation).

A table is built once as a :class:`Table` (header, grouped rows of :class:`Cell` values, footnotes
and a tidy list of entries) and written by each format: Markdown, LaTeX (booktabs, no siunitx),
CSV and JSON, so the formats never disagree.

* Cells read ``mean ± std`` over seeds (``--ci``: the 95% t-interval half-width); a cell with one
  seed shows no spread. The best H per dataset column is bold, the second best underlined.
* Published numbers (:mod:`gzslbench.reports.reported`) appear only for real datasets: as rows marked
  "(reported)" in Table 2, beside our H in Table 3, and as Δ = ours − reported with ``compare``.
* The oracle selection mode marks every run cell; failed runs and varying seed counts get footnotes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd
from tabulate import tabulate

from gzslbench.core.errors import GZSLBenchError
from gzslbench.protocol.selection import SELECTION_MODES
from gzslbench.reports.reported import (
    ABLATIONS,
    FAMILIES,
    counterpart,
    dataset_order,
    display_dataset,
    display_method,
    family,
    is_synthetic,
    real_twin,
    reported,
)
from gzslbench.results.frame import SHOWN, TABLE_METRICS, not_below_best
from gzslbench.results.store import OPTION_PREFIX

TABLE_FORMATS = ("markdown", "latex", "csv", "json")
TABLE_STYLES = ("table2", "table3")
# Characters that fit across one column of a two-column paper (3.3 in at \\small, about 4.5 pt a digit),
# counting two for the space between columns.
ONE_COLUMN_CHARACTERS = 55
_MARKDOWN_MARKUP = re.compile(r"\*\*|</?u>|</?sup>")
# A method's own paper first (ACMR's Table 2 swaps U and S for some rows), then ACMR's quote, then Xian 2018.
TABLE2_SOURCES = ("original", "table2", "xian2018")
TABLE3_SOURCES = ("table3",)
ORACLE, SIGNIFICANT = "oracle", "sig"
SYMBOLS = {
    "markdown": {ORACLE: "†", SIGNIFICANT: "‡"},
    "latex": {ORACLE: r"$^{\dagger}$", SIGNIFICANT: r"$^{\ddagger}$"},
}


@dataclass
class Cell:
    """One number of the grid: a mean with its spread, emphasis (1 best, 2 second) and footnote markers."""

    value: float | None = None
    spread: float | None = None
    emphasis: int = 0
    markers: list[str] = field(default_factory=list)
    signed: bool = False
    text: str | None = None
    deterministic: bool = False  # a seed-independent method's single run: "(det.)" instead of a spread


@dataclass
class Row:
    lead: list[str]
    cells: list[Cell | None]


@dataclass
class Table:
    """Header (lead columns, then datasets each spanning sub-columns), grouped rows, notes, tidy entries."""

    title: str
    lead: list[str]
    datasets: list[tuple[str, list[str]]]
    groups: list[tuple[str | None, list[Row]]]
    notes: list[tuple[str | None, str]]
    entries: list[dict[str, Any]]
    meta: dict[str, Any]


def _fmt_spread(spread: str) -> str:
    return "± 95% CI (t-distribution over seeds)" if spread == "ci" else "± std over seeds"


class _Notes:
    """Cell footnotes: equal texts share one letter, assigned in order of first use."""

    def __init__(self) -> None:
        self.letters: dict[str, str] = {}

    def mark(self, text: str) -> str:
        if text not in self.letters:
            self.letters[text] = "abcdefghijklmnopqrstuvwxyz"[len(self.letters) % 26]
        return self.letters[text]

    def items(self, groups: list[tuple[str | None, list[Row]]]) -> list[tuple[str, str]]:
        """The notes, relettered in reading order of ``groups`` (whose cell markers are updated)."""
        texts = {letter: text for text, letter in self.letters.items()}
        order: dict[str, str] = {}
        for _, rows in groups:
            for row in rows:
                for cell in row.cells:
                    for i, key in enumerate(cell.markers if cell else []):
                        if key in texts:
                            order.setdefault(key, "abcdefghijklmnopqrstuvwxyz"[len(order) % 26])
                            cell.markers[i] = order[key]
        return [(new, texts[old]) for old, new in order.items()]


def config_variants(stats: pd.DataFrame, configs: Mapping[str, Mapping[str, Any]]) -> list[str | None]:
    """Per stats row: "" for the method's default config on that dataset, else what differs from it
    (``lr=0.001, epochs=50``, ``-D scale=0.25`` for a dataset option; at most :data:`VARIANT_KEYS` keys,
    else the config hash); None when the default is unknown (a method no longer registered)."""
    labels: list[str | None] = []
    for method, dataset, config_hash in zip(stats["method"], stats["dataset"], stats["config_hash"], strict=True):
        config, default = configs.get(config_hash), _default_config(method, dataset)
        if config is None or default is None:
            labels.append(None)
            continue
        # A record that does not list a dataset option ran with its default.
        config = {**{key: value for key, value in default.items() if key.startswith(OPTION_PREFIX)}, **config}
        differ = [key for key in sorted(set(config) | set(default)) if config.get(key) != default.get(key)]
        if len(differ) > VARIANT_KEYS:
            labels.append(config_hash)
        else:
            labels.append(", ".join(f"{key}={config.get(key)}" for key in differ))
    return labels


VARIANT_KEYS = 2  # a row label names at most this many changed keys; more: the config hash


@cache
def _default_config(method: str, dataset: str) -> dict[str, Any] | None:
    from gzslbench.core.registry import DATASETS
    from gzslbench.execution.resolve import method_config

    try:
        adapter = DATASETS.get(dataset)
        config = method_config(method, adapter.defaults_from or dataset)
    except GZSLBenchError:
        return None
    return {**config, **{f"{OPTION_PREFIX}{key}": value for key, value in adapter.options.items()}}


def _row_ids(stats: pd.DataFrame) -> pd.Series:
    """Row label per stats row: the method, and where the method has several configs in the table, the
    config's ``variant`` (:func:`config_variants`; the config hash where it is unknown), none for the
    default. Per-dataset defaults differ in hash but not in variant, so they share one row."""
    variant = stats["variant"] if "variant" in stats else pd.Series(None, index=stats.index, dtype=object)
    variant = variant.where(variant.notna(), stats["config_hash"])
    by_cell = [stats["method"], stats["dataset"]]
    ambiguous = variant.groupby(by_cell).transform("nunique") < stats["config_hash"].groupby(by_cell).transform(
        "nunique"
    )
    variant = variant.where(~ambiguous, stats["config_hash"])  # two configs of one label (records without config)
    several = variant.groupby(stats["method"]).transform("nunique") > 1
    ids = stats["method"].where(~several | (variant == ""), stats["method"] + " [" + variant + "]")
    if "tuned" in stats:
        ids = ids.where(~stats["tuned"].astype(bool), ids + " (tuned)")
    return ids


def _row_label(row_id: str, method: str) -> str:
    return display_method(method) + row_id[len(method) :]


def _seed_counts(group: pd.DataFrame, mode: str) -> tuple[str, dict[str, str]]:
    """(n shown in the row's n column, per-dataset cell notes) for one row's stats."""
    by_dataset = group.set_index("dataset")
    counts = by_dataset["n"].to_dict()
    values = sorted(set(counts.values()))
    shown = str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"
    notes = {}
    for dataset, n in counts.items():
        failed = int(by_dataset["failed"].get(dataset, 0))
        without = int(by_dataset["without_mode"].get(dataset, 0)) if "without_mode" in by_dataset else 0
        parts = [f"{failed} failed"] if failed else []
        if without:
            parts.append(f"{without} without a '{mode}' selection" + (" (run with --val)" if mode == "val" else ""))
        if parts or len(values) > 1:
            notes[dataset] = ", ".join([f"n={n}", *parts])
    return shown, notes


def _fewer_seeds(stat: pd.Series, metric: str) -> str | None:
    """The note of a cell whose metric some seeds lack (an AUSUC without a curve), or None."""
    have, runs = int(stat.get(f"{metric}_n", stat["n"])), int(stat["n"])
    return f"{metric} over {have} of {runs} seeds (the others have none)" if 0 < have < runs else None


def _rank(values: Mapping[Any, float]) -> dict[Any, int]:
    """1 for the best value (ties included), 2 for the next distinct one; compared as printed (1 decimal)."""
    shown = {k: round(v, 1) for k, v in values.items() if v is not None and math.isfinite(v)}
    distinct = sorted(set(shown.values()), reverse=True)
    ranks = {}
    for k, v in shown.items():
        if v == distinct[0]:
            ranks[k] = 1
        elif len(distinct) > 1 and v == distinct[1]:
            ranks[k] = 2
    return ranks


def _entry(stat: pd.Series | None, *, mode: str, style: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"method": None, "dataset": None, "config_hash": None}
    for metric in TABLE_METRICS:
        if metric not in SHOWN and (stat is None or f"{metric}_mean" not in stat):
            continue
        for part in ("mean", "std", "ci"):
            entry[f"{metric}_{part}"] = None if stat is None else _num(stat.get(f"{metric}_{part}"))
    entry.update(n=None if stat is None else int(stat["n"]), failed=None if stat is None else int(stat["failed"]))
    entry["deterministic"] = None if stat is None else bool(stat.get("deterministic", False))
    entry.update(style=style, mode=mode)
    return entry


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _run_cell(stat: pd.Series, metric: str, spread: str, mode: str) -> Cell:
    if int(stat["n"]) == 0:
        all_failed = int(stat["failed"]) and not int(stat.get("without_mode", 0))
        return Cell(text="failed" if all_failed else "–")  # else some finished without this mode's selection
    if f"{metric}_mean" not in stat or _num(stat[f"{metric}_mean"]) is None:
        return Cell(text="–")
    value = _num(stat[f"{metric}_mean"])
    markers = [ORACLE] if mode == "oracle" else []
    if bool(stat.get("deterministic", False)):
        return Cell(value, None, markers=markers, deterministic=True)
    width = _num(stat[f"{metric}_{'ci' if spread == 'ci' else 'std'}"])
    return Cell(value, width, markers=markers)


def _common_notes(
    mode: str, spread: str, n_varies: bool, stats: pd.DataFrame, shown: str = "U / S / H"
) -> list[tuple[str | None, str]]:
    notes: list[tuple[str | None, str]] = [
        (None, f"{shown} in %: mean {_fmt_spread(spread)}; n = seeds; model selection: {SELECTION_MODES[mode]}.")
    ]
    if "deterministic" in stats and stats["deterministic"].astype(bool).any():
        notes.append((None, "(det.): the method does not depend on the seed; trained once, so no spread to show."))
    if mode == "oracle":
        notes.append((ORACLE, "oracle: every run number here selects its epoch on the test set."))
    if n_varies:
        notes.append((None, "Where the seed count varies along a row, its cells name their n."))
    return notes


# --reported with nothing to add: say so rather than print the same table as without it.
NO_REPORTED_NOTE = (
    None,
    "reported: no published numbers for these datasets (there are some for the real benchmarks and their synthetic "
    "twins).",
)


def _usual_source(frame: pd.DataFrame | None) -> str | None:
    """The source of most published numbers: named once in a note; a cell from another names its own."""
    return None if frame is None or frame.empty else str(frame["source"].value_counts().index[0])


def _reported_note(frame: pd.DataFrame) -> tuple[str | None, str]:
    return None, (
        f"(reported): published numbers, not run here; from {_usual_source(frame)} unless the cell's note names "
        "another source."
    )


def _table2_reported(stats: pd.DataFrame, datasets: list[str]) -> pd.DataFrame:
    """Reported rows for Table 2: the methods ACMR's table quotes, plus any other method that has runs here."""
    published = reported(TABLE2_SOURCES, datasets)
    shown = set(reported(("table2", "xian2018"))["method"]) | {display_method(m) for m in stats["method"]}
    return published[published["method"].isin(shown)].reset_index(drop=True)


def build_table2(
    stats: pd.DataFrame,
    mode: str = "last",
    *,
    with_reported: bool = False,
    compare: bool = False,
    spread: str = "std",
    significance: bool = False,
    metrics: Sequence[str] = SHOWN,
) -> Table:
    """Table 2: rows are methods grouped by family, columns datasets x (``metrics``, by default U, S, H[, ΔH])."""
    stats = stats.assign(row=_row_ids(stats))
    run_datasets = dataset_order(list(stats["dataset"]))
    twins = {real_twin(d) for d in run_datasets} - {None}
    shown_datasets = dataset_order(run_datasets + sorted(twins)) if with_reported else run_datasets
    published = _table2_reported(stats, [d for d in shown_datasets if not is_synthetic(d)]) if with_reported else None
    deltas = _deltas(stats, TABLE2_SOURCES) if compare else {}
    delta_datasets = {d for (_, d) in deltas}

    notes = _Notes()
    rows: dict[str, list[tuple[Row, dict]]] = {f: [] for f in FAMILIES}
    h_values: dict[str, dict[Any, float]] = {d: {} for d in shown_datasets}
    by_cell: dict[tuple[Any, str], Cell] = {}
    n_varies = False
    entries: list[dict[str, Any]] = []

    if published is not None:
        usual = _usual_source(published)
        for name, group in published.groupby("method", sort=False):
            by_dataset = group.set_index("dataset")
            cells: list[Cell | None] = []
            for d in shown_datasets:
                for metric in metrics:
                    known = d in by_dataset.index and metric in by_dataset.columns
                    value = _num(by_dataset[metric].get(d)) if known else None
                    cell = Cell(value) if value is not None else None
                    cells.append(cell)
                    if metric == "H" and cell is not None:
                        h_values[d][("reported", name)] = value
                        by_cell[(("reported", name), d)] = cell
                    source = by_dataset["source"].get(d) if known else None
                    if cell is not None and metric == metrics[-1] and source != usual:
                        cell.markers.append(notes.mark(f"published in {source}"))
                if d in delta_datasets:
                    cells.append(None)
            for d, rec in by_dataset.iterrows():
                entry = _entry(None, mode=mode, style="table2")
                entry.update(method=name, dataset=d, kind="reported", label=f"{name} (reported)")
                entry.update({f"{m}_mean": _num(rec[m]) for m in SHOWN}, source=rec["source"])
                entries.append(entry)
            rows[group["family"].iloc[0]].append((Row([f"{name} (reported)", ""], cells), {}))

    ablation_order = list(ABLATIONS)
    for row_id, group in sorted(
        stats.groupby("row"),
        key=lambda item: (ablation_order.index(m) if (m := item[1]["method"].iloc[0]) in ABLATIONS else -1, item[0]),
    ):
        method = group["method"].iloc[0]
        shown_n, cell_notes = _seed_counts(group, mode)
        n_varies |= "–" in shown_n
        by_dataset = {r["dataset"]: r for _, r in group.iterrows()}
        cells = []
        for d in shown_datasets:
            stat = by_dataset.get(d)
            for metric in metrics:
                cell = _run_cell(stat, metric, spread, mode) if stat is not None else None
                if cell is not None and d in cell_notes and metric == metrics[-1]:
                    cell.markers.append(notes.mark(cell_notes[d]))
                if cell is not None and cell.value is not None and (fewer := _fewer_seeds(stat, metric)):
                    cell.markers.append(notes.mark(fewer))
                cells.append(cell)
                if metric == "H" and cell is not None and cell.value is not None:
                    h_values[d][("run", row_id)] = cell.value
                    by_cell[(("run", row_id), d)] = cell
            if d in delta_datasets:
                delta = deltas.get((stat["config_hash"] if stat is not None else None, d))
                cells.append(_delta_cell(delta, mode))
            if stat is not None:
                entry = _entry(stat, mode=mode, style="table2")
                entry.update(method=method, dataset=d, config_hash=stat["config_hash"], kind="run")
                entry["label"] = _row_label(row_id, method)
                delta = deltas.get((stat["config_hash"], d))
                if delta:
                    entry.update({f"delta_{m}": delta[m] for m in SHOWN}, reported_source=delta["source"])
                entries.append(entry)
        rows[family(method)].append((Row([_row_label(row_id, method), shown_n], cells), {"row": row_id}))

    sig_keys = _mark_best_and_significance(stats, shown_datasets, h_values, by_cell, significance, "row")
    _flag_entries(entries, h_values, sig_keys, significance)

    groups = [(FAMILIES[f], [r for r, _ in rows[f]]) for f in FAMILIES if rows[f]]
    cell_notes_items = notes.items(groups)
    table_notes = _common_notes(mode, spread, n_varies, stats, shown=" / ".join(metrics))
    if published is not None and not published.empty:
        table_notes.append(_reported_note(published))
    elif published is not None:
        table_notes.append(NO_REPORTED_NOTE)
    if compare:
        table_notes.append(_delta_note(bool(deltas), TABLE2_SOURCES))
    if significance:
        table_notes.append((SIGNIFICANT, _significance_text()))
    table_notes += cell_notes_items
    if "H" in metrics:
        table_notes.append((None, "Best H per dataset in bold, second best underlined."))
    subs = [(display_dataset(d), [*metrics] + (["ΔH"] if d in delta_datasets else [])) for d in shown_datasets]
    return Table(
        title=f"GZSL results ({', '.join(metrics)} in %), selection mode: {mode}",
        lead=["Method", "n"],
        datasets=subs,
        groups=groups,
        notes=table_notes,
        entries=entries,
        meta={"style": "table2", "mode": mode, "spread": spread, "datasets": shown_datasets},
    )


def build_table3(
    stats: pd.DataFrame,
    mode: str = "last",
    *,
    configs: Mapping[str, Mapping[str, Any]] | None = None,
    with_reported: bool = False,
    compare: bool = False,
    spread: str = "std",
    significance: bool = False,
) -> Table:
    """Table 3: H of the ACMR ablations per dataset, with IEM / VSA marks; reported H beside ours."""
    stats = stats[stats["method"].isin(list(ABLATIONS))]
    if stats.empty:
        raise GZSLBenchError(f"Table 3 needs runs of the ablation methods ({', '.join(ABLATIONS)}); none selected")
    configs = configs or {}
    stats = stats.assign(row=_row_ids(stats))
    run_datasets = dataset_order(list(stats["dataset"]))
    twins = {real_twin(d) for d in run_datasets} - {None}
    shown = dataset_order(run_datasets + sorted(twins)) if with_reported else run_datasets
    published = reported(TABLE3_SOURCES, [d for d in shown if not is_synthetic(d)]) if with_reported else None
    deltas = _deltas(stats, TABLE3_SOURCES) if compare else {}
    delta_datasets = {d for (_, d) in deltas}
    has_reported = set(published["dataset"]) if published is not None else set()

    subs: list[tuple[str, list[str]]] = []
    for d in shown:
        cols = (["ours"] if d in run_datasets else []) + (["reported"] if d in has_reported else [])
        cols += ["Δ"] if d in delta_datasets else []
        if cols:
            subs.append((d, cols))

    notes = _Notes()
    h_values: dict[str, dict[Any, float]] = {d: {} for d in shown}
    by_cell: dict[tuple[Any, str], Cell] = {}
    entries: list[dict[str, Any]] = []
    rows: list[Row] = []
    n_varies = False
    ran = {m for m in stats["method"]}
    listed = [m for m in ABLATIONS if m in ran or with_reported]
    for method in listed:
        group = stats[stats["method"] == method]
        row_ids = sorted(group["row"].unique()) or [method]
        for row_id in row_ids:
            rows_stats = group[group["row"] == row_id]
            by_dataset = {r["dataset"]: r for _, r in rows_stats.iterrows()}
            iem, vsa = ABLATIONS[method]
            if not rows_stats.empty:
                config = configs.get(rows_stats["config_hash"].iloc[0], {})
                iem, vsa = bool(config.get("use_iem", iem)), bool(config.get("use_vsa", vsa))
            shown_n, cell_notes = _seed_counts(rows_stats, mode) if not rows_stats.empty else ("", {})
            n_varies |= "–" in shown_n
            cells: list[Cell | None] = []
            for d, cols in subs:
                stat = by_dataset.get(d)
                for col in cols:
                    if col == "ours":
                        cell = _run_cell(stat, "H", spread, mode) if stat is not None else None
                        if cell is not None and d in cell_notes:
                            cell.markers.append(notes.mark(cell_notes[d]))
                        if cell is not None and cell.value is not None:
                            h_values[d][("run", row_id)] = cell.value
                            by_cell[(("run", row_id), d)] = cell
                    elif col == "reported":
                        hit = counterpart(method, d, TABLE3_SOURCES)
                        cell = Cell(_num(hit["H"])) if hit is not None else None
                        if cell is not None and hit["source"] != _usual_source(published):
                            cell.markers.append(notes.mark(f"published in {hit['source']}"))
                    else:
                        delta = deltas.get((stat["config_hash"], d)) if stat is not None else None
                        cell = _delta_cell(delta, mode)
                    cells.append(cell)
                if stat is not None:
                    entry = _entry(stat, mode=mode, style="table3")
                    entry.update(method=method, dataset=d, config_hash=stat["config_hash"], kind="run")
                    entry.update(label=_row_label(row_id, method), IEM=iem, VSA=vsa)
                    delta = deltas.get((stat["config_hash"], d))
                    if delta:
                        entry.update({f"delta_{m}": delta[m] for m in SHOWN}, reported_source=delta["source"])
                    entries.append(entry)
                hit = counterpart(method, d, TABLE3_SOURCES) if d in has_reported else None
                if hit is not None:
                    entry = _entry(None, mode=mode, style="table3")
                    entry.update(method=display_method(method), dataset=d, kind="reported", IEM=iem, VSA=vsa)
                    entry.update(label=f"{display_method(method)} (reported)", H_mean=_num(hit["H"]))
                    entries.append(entry | {"source": hit["source"]})
            label = _row_label(row_id, method)
            rows.append(Row([label, "✓" if iem else "", "✓" if vsa else "", shown_n], cells))

    sig_keys = _mark_best_and_significance(stats, shown, h_values, by_cell, significance, "row")
    _flag_entries(entries, h_values, sig_keys, significance)
    cell_notes_items = notes.items([(None, rows)])
    table_notes = _common_notes(mode, spread, n_varies, stats, shown="H")
    if published is not None and not published.empty:
        table_notes.append(_reported_note(published))
    elif published is not None:
        table_notes.append(NO_REPORTED_NOTE)
    if compare:
        table_notes.append(_delta_note(bool(deltas), TABLE3_SOURCES))
    if significance:
        table_notes.append((SIGNIFICANT, _significance_text()))
    table_notes += cell_notes_items
    table_notes.append(
        (
            None,
            (
                "IEM: information enhancement module; VSA: visual-semantic alignment. "
                "Best H of our runs per dataset in bold, second best underlined."
            ),
        )
    )
    return Table(
        title=f"Ablation (H in %), selection mode: {mode}",
        lead=["Method", "IEM", "VSA", "n"],
        datasets=[(display_dataset(d), cols) for d, cols in subs],
        groups=[(None, rows)],
        notes=table_notes,
        entries=entries,
        meta={"style": "table3", "mode": mode, "spread": spread, "datasets": [d for d, _ in subs]},
    )


def _delta_cell(delta: Mapping[str, Any] | None, mode: str) -> Cell | None:
    """ΔH of a row and dataset; in ``oracle`` mode marked like the run number it is taken from."""
    if not delta or delta["H"] is None:
        return None
    return Cell(delta["H"], signed=True, markers=[ORACLE] if mode == "oracle" else [])


def _deltas(stats: pd.DataFrame, sources: tuple[str, ...]) -> dict[tuple[str, str], dict[str, Any]]:
    """(config_hash, dataset) -> ours − reported for U/S/H (None where the paper prints no number)."""
    out = {}
    for _, stat in stats.iterrows():
        if stat["n"] == 0:
            continue
        hit = counterpart(stat["method"], stat["dataset"], sources)
        if hit is None:
            continue
        delta = {m: _delta(stat[f"{m}_mean"], hit[m]) for m in SHOWN}
        out[(stat["config_hash"], stat["dataset"])] = {**delta, "source": hit["source"]}
    return out


def _delta(ours: float, theirs: float) -> float | None:
    value = float(ours) - float(theirs)
    return value if math.isfinite(value) else None


def _delta_note(any_delta: bool, sources: tuple[str, ...]) -> tuple[str | None, str]:
    if any_delta:
        return None, "Δ: ours − reported, for our runs on a real dataset with a published counterpart."
    return None, "Δ: no run here has a published counterpart (reported numbers exist only for real datasets)."


def _significance_text() -> str:
    return (
        "not significantly below our best H of the dataset (one-sided t-test over seeds, p ≥ 0.05: Welch's, or "
        "against the best's one value); rows of one seed other than the best are not tested."
    )


def _mark_best_and_significance(
    stats: pd.DataFrame,
    datasets: list[str],
    h_values: dict[str, dict[Any, float]],
    by_cell: dict[tuple[Any, str], Cell],
    significance: bool,
    row_col: str,
) -> dict[str, set]:
    """Bold / underline the best two H per dataset and, with ``significance``, mark the tied-with-best runs."""
    sig: dict[str, set] = {}
    for d in datasets:
        for key, rank in _rank(h_values[d]).items():
            by_cell[(key, d)].emphasis = rank
        if significance:
            samples = {
                ("run", r[row_col]): r["H_values"] for _, r in stats[stats["dataset"] == d].iterrows() if r["n"] > 0
            }
            sig[d] = not_below_best(samples)
            for key in sig[d]:
                if (key, d) in by_cell:
                    by_cell[(key, d)].markers.insert(0, SIGNIFICANT)
    return sig


def _flag_entries(
    entries: list[dict[str, Any]], h_values: dict[str, dict[Any, float]], sig: dict[str, set], significance: bool
) -> None:
    ranks = {d: _rank(v) for d, v in h_values.items()}
    for entry in entries:
        d = entry["dataset"]
        key = ("reported", entry["method"]) if entry["kind"] == "reported" else None
        if entry["kind"] == "run":
            key = next((k for k in h_values.get(d, {}) if k[0] == "run" and _matches(k[1], entry)), None)
        rank = ranks.get(d, {}).get(key, 0)
        entry["best_H"], entry["second_H"] = rank == 1, rank == 2
        if significance and entry["kind"] == "run":
            entry["not_below_best_H"] = key in sig.get(d, set())


def _matches(row_id: str, entry: dict[str, Any]) -> bool:
    return row_id in (entry["method"], f"{entry['method']} [{entry['config_hash']}]")


# ---- writers -------------------------------------------------------------------------------------


def render(table: Table, fmt: str = "markdown") -> str:
    """``table`` as Markdown, LaTeX, CSV (tidy entries) or JSON (entries, header and notes)."""
    if fmt == "markdown":
        return _markdown(table)
    if fmt == "latex":
        return _latex(table)
    if fmt == "csv":
        return pd.DataFrame(_ordered(table.entries)).to_csv(index=False, float_format="%.4f")
    if fmt == "json":
        payload = {
            **table.meta,
            "title": table.title,
            "columns": [{"dataset": d, "sub": subs} for d, subs in table.datasets],
            "notes": [text for _, text in table.notes],
            "entries": table.entries,
        }
        return json.dumps(payload, indent=1, allow_nan=False, default=str)
    raise GZSLBenchError(f"unknown table format '{fmt}' (choose from {', '.join(TABLE_FORMATS)})")


def _ordered(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    first = ["method", "dataset", "config_hash", *[f"{m}_{p}" for m in SHOWN for p in ("mean", "std", "ci")]]
    keys = first + [k for e in entries for k in e if k not in first]
    keys = list(dict.fromkeys(keys))
    return [{k: e.get(k) for k in keys} for e in entries]


def _cell_text(cell: Cell | None, fmt: str) -> str:
    if cell is None:
        return "–" if fmt == "markdown" else "--"
    if cell.text is not None:
        body = cell.text if fmt == "markdown" else latex_escape(cell.text)
    else:
        body = f"{cell.value:+.1f}" if cell.signed else f"{cell.value:.1f}"
        if cell.spread is not None:
            body += f" ± {cell.spread:.1f}" if fmt == "markdown" else f" $\\pm$ {cell.spread:.1f}"
        elif cell.deterministic:
            body += " (det.)"
    if cell.emphasis == 1:
        body = f"**{body}**" if fmt == "markdown" else f"\\textbf{{{body}}}"
    elif cell.emphasis == 2:
        body = f"<u>{body}</u>" if fmt == "markdown" else f"\\underline{{{body}}}"
    return body + "".join(_marker(m, fmt) for m in cell.markers)


def _marker(key: str, fmt: str) -> str:
    if key in SYMBOLS[fmt]:
        return SYMBOLS[fmt][key]
    return f"<sup>{key}</sup>" if fmt == "markdown" else f"\\textsuperscript{{{key}}}"


def _markdown(table: Table) -> str:
    top = list(table.lead)
    sub = [""] * len(table.lead)
    for name, cols in table.datasets:
        top += [name] + [""] * (len(cols) - 1)
        sub += cols
    body: list[list[str]] = [sub]
    width = len(top)
    for label, rows in table.groups:
        if label:
            body.append([f"*{label}*"] + [""] * (width - 1))
        body += [[_markdown_text(x) for x in row.lead] + [_cell_text(c, "markdown") for c in row.cells] for row in rows]
    align = ["left"] * len(table.lead) + ["right"] * (width - len(table.lead))
    grid = tabulate(body, headers=top, tablefmt="github", disable_numparse=True, colalign=align)
    notes = [f"{_marker(k, 'markdown') + ' ' if k else ''}{text}" for k, text in table.notes]
    return f"**{table.title}**\n\n{grid}\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def _markdown_text(text: str) -> str:
    """A row label from the records (a plugin's method name) as literal Markdown: no cell breaks, no emphasis."""
    return "".join("\\" + c if c in "|*_`\\" else c for c in text)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "–": "--",
    "−": "$-$",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "Δ": r"$\Delta$",
    "✓": r"$\surd$",
    "†": r"$^{\dagger}$",
    "‡": r"$^{\ddagger}$",
}


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX that compiles with a plain preamble (no unicode, special characters escaped)."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def _printed_width(table: Table) -> int:
    """The characters a row of the table takes in print: its widest cell per column, two between columns."""
    header = [*table.lead, *(c for _, cols in table.datasets for c in cols)]
    body = [[*row.lead, *(_cell_text(c, "markdown") for c in row.cells)] for _, rows in table.groups for row in rows]
    widths = (
        max(len(_MARKDOWN_MARKUP.sub("", str(text))) for text in column) for column in zip(header, *body, strict=True)
    )
    return sum(width + 2 for width in widths)


def _latex(table: Table) -> str:
    lead = len(table.lead)
    n_cols = lead + sum(len(cols) for _, cols in table.datasets)
    # Wider than a column of a two-column paper: span the page, as the ACMR paper's Table 2 does (in a
    # one-column document table* is an ordinary table).
    environment = "table*" if _printed_width(table) > ONE_COLUMN_CHARACTERS else "table"
    spec = "l" + "c" * (lead - 1) + "".join("r" * len(cols) for _, cols in table.datasets)
    top, rules, col = [""] * lead, [], lead + 1
    for name, cols in table.datasets:
        top.append(f"\\multicolumn{{{len(cols)}}}{{c}}{{{latex_escape(name)}}}")
        rules.append(f"\\cmidrule(lr){{{col}-{col + len(cols) - 1}}}")
        col += len(cols)
    sub = [latex_escape(h) for h in table.lead] + [latex_escape(c) for _, cols in table.datasets for c in cols]
    lines = [
        f"% {latex_escape(table.title)}",
        f"\\begin{{{environment}}}[t]",
        "\\centering",
        "\\small",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(top) + " \\\\",
        " ".join(rules),
        " & ".join(sub) + " \\\\",
    ]
    for label, rows in table.groups:
        lines.append("\\midrule")
        if label:
            lines.append(f"\\multicolumn{{{n_cols}}}{{l}}{{\\textit{{{latex_escape(label)}}}}} \\\\")
        for row in rows:
            cells = [latex_escape(x) for x in row.lead] + [_cell_text(c, "latex") for c in row.cells]
            lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "", "\\smallskip", "{\\footnotesize"]
    for key, text in table.notes:
        mark = _marker(key, "latex") + " " if key else ""
        lines.append(f"{mark}{latex_escape(text)}\\par")
    lines += ["}", f"\\caption{{{latex_escape(table.title)}}}", f"\\end{{{environment}}}"]
    return "\n".join(lines) + "\n"
