"""Aggregate run records over seeds, and the statistics tables and figures rest on.

:func:`aggregate` turns the long results frame into one row per (method, dataset, config) with
the mean, the sample std and the 95% t-interval half-width of U, S and H over seeds, the seed
count, the number of failed runs and the per-seed H values (kept for significance tests).
Renderers (:mod:`gzslbench.reports.tables`, :mod:`gzslbench.reports.plots`) only read these rows, so every format
shows the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from gzslbench.core.errors import GZSLBenchError
from gzslbench.results.store import load_results

SHOWN = ("U", "S", "H")
# Every metric a table may show (`table --metrics`): U/S/H, AUSUC and calibrated stacking (see record.METRICS).
TABLE_METRICS = ("U", "S", "H", "U_restricted", "AUSUC", "U_cs", "S_cs", "H_cs")
CONFIDENCE = 0.95
SIGNIFICANCE_LEVEL = 0.05
KEYS = ["method", "dataset", "config_hash"]


def load_frame(
    out: str | Path,
    methods: Sequence[str] = (),
    datasets: Sequence[str] = (),
    problems: list[str] | None = None,
    configs: dict[str, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Finished and failed runs under ``out`` (failed ones have ``mode`` None), optionally filtered.

    Unusable record files are skipped and named in ``problems`` when given; ``configs`` receives
    each config_hash's config (:func:`~gzslbench.results.store.load_results`).
    """
    problems = [] if problems is None else problems
    frame = load_results(out, include_failed=True, problems=problems, configs=configs)
    if frame.empty:
        if problems:
            raise GZSLBenchError(f"no usable run records under '{out}': {len(problems)} unusable, e.g. {problems[0]}")
        raise GZSLBenchError(f"no run records under '{out}' (run `gzslbench run` first)")
    if methods:
        frame = frame[frame["method"].isin(methods)]
    if datasets:
        frame = frame[frame["dataset"].isin(datasets)]
    if frame.empty:
        raise GZSLBenchError(f"no run records under '{out}' match the selected methods and datasets")
    return frame


def ci_halfwidth(std: float, n: int, confidence: float = CONFIDENCE) -> float:
    """Half-width of the t-interval of a mean over ``n`` seeds; NaN below 2 seeds (no spread to show)."""
    if n < 2 or not math.isfinite(std):
        return math.nan
    return float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n))


def aggregate(frame: pd.DataFrame, mode: str = "last") -> pd.DataFrame:
    """Per (method, dataset, config): ``<m>_mean``, ``<m>_std``, ``<m>_ci``, ``<m>_n`` per metric, ``n``, ``failed``,
    ``without_mode`` (finished runs that have no ``mode`` selection, e.g. made without ``--val``), ``H_values``.

    ``frame`` is :func:`~gzslbench.results.store.load_results` output; rows whose status is not ``ok``
    count as failed runs. A group whose runs all failed keeps ``n = 0`` and NaN statistics.
    """
    status = frame["status"] if "status" in frame else pd.Series("ok", index=frame.index)
    if "deterministic" in frame:  # a method that ignores the seed: its first finished seed stands for all
        finished = frame[status == "ok"]
        first = finished.groupby(KEYS)["seed"].transform("min")
        extra = finished.index[finished["deterministic"].astype(bool) & (finished["seed"] != first)]
        frame, status = frame.drop(extra), status.drop(extra)
    ok = frame[(status == "ok") & (frame["mode"] == mode)]
    if ok.empty:
        modes = sorted(m for m in frame.loc[status == "ok", "mode"].dropna().unique())
        raise GZSLBenchError(f"no finished runs with selection mode '{mode}' (modes present: {modes or 'none'})")
    grouped = ok.groupby(KEYS, sort=True)
    metrics = [m for m in TABLE_METRICS if m in ok.columns]
    out = grouped[metrics].agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["n"] = grouped.size()
    out["H_values"] = grouped["H"].agg(tuple)
    if "tuned" in ok:
        out["tuned"] = grouped["tuned"].agg(lambda v: bool(v.astype(bool).any()))
    if "deterministic" in ok:
        out["deterministic"] = grouped["deterministic"].agg(lambda v: bool(v.astype(bool).all()))
    failed = frame[status != "ok"].drop_duplicates([*KEYS, "seed"]).groupby(KEYS).size()
    out = out.join(failed.rename("failed"), how="outer")
    finished = frame[status == "ok"].drop_duplicates([*KEYS, "seed"]).groupby(KEYS).size()
    out = out.join(finished.rename("finished"), how="outer")
    out["n"] = out["n"].fillna(0).astype(int)
    out["failed"] = out["failed"].fillna(0).astype(int)
    out["without_mode"] = out.pop("finished").fillna(0).astype(int) - out["n"]  # e.g. runs made without --val
    out["H_values"] = out["H_values"].map(lambda v: v if isinstance(v, tuple) else ())
    for flag in ("tuned", "deterministic"):
        if flag in out:
            out[flag] = out[flag].fillna(False).astype(bool)
    for metric in metrics:  # a metric a seed lacks (an AUSUC without a curve) counts the seeds that have it
        out[f"{metric}_n"] = grouped[metric].count().reindex(out.index).fillna(0).astype(int)
        out[f"{metric}_ci"] = [
            ci_halfwidth(s, n) for s, n in zip(out[f"{metric}_std"], out[f"{metric}_n"], strict=True)
        ]
    return out.reset_index()


def not_below_best(values: Mapping[Hashable, Sequence[float]], alpha: float = SIGNIFICANCE_LEVEL) -> set[Hashable]:
    """Keys whose values are not significantly below those of the best mean (one-sided t-test over seeds).

    The best is the highest mean of all entries, one-value ones (one seed, or a method that ignores
    the seed) included, and is always in the set. An entry of 2 or more values is tested against
    it: by Welch's test when the best has 2 or more values, else against its one value (one-sample
    test). Another one-value entry cannot be tested and is left out. Spread-free samples compare by
    their means (the t statistic is undefined there).
    """
    samples = {k: np.asarray(v, dtype=float) for k, v in values.items() if len(v) >= 1}
    if not samples:
        return set()
    best = max(samples, key=lambda k: samples[k].mean())
    top = samples[best]
    keep = {best}
    for key, sample in samples.items():
        if key == best or len(sample) < 2:
            continue
        if np.ptp(sample) == 0 and np.ptp(top) == 0:
            p = 1.0 if sample[0] >= top[0] else 0.0
        elif len(top) == 1:
            p = float(sps.ttest_1samp(sample, top[0], alternative="less").pvalue)
        else:
            p = float(sps.ttest_ind(top, sample, equal_var=False, alternative="greater").pvalue)
        if p >= alpha:
            keep.add(key)
    return keep
