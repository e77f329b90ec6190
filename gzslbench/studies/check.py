"""Accuracy regression check: run a fixed suite and compare mean U / S / H with a committed baseline.

A *suite* (TOML, see ``gzslbench/suites/ci.toml``) names cases (method, dataset, dataset options,
config overrides), the seeds and the tolerance. A *baseline* (JSON, written by ``--update``) holds
each case's per-seed U / S / H (selection mode ``last``), the suite entry it was made from, the code
version and the environment.

Tolerance. For each case and metric, with baseline mean ``b`` and spread ``s_b`` over ``n_b`` seeds
and current mean ``c`` and spread ``s_c`` over ``n_c`` seeds (sample standard deviations)::

    tol = max(k * sqrt(s_b**2 / n_b + s_c**2 / n_c), floor)

``c - b < -tol`` is a regression, ``c - b > tol`` an unexpected improvement (the baseline must then
be updated on purpose). A fixed seed and thread count reproduce a run exactly on one machine, so
the tolerance only has to absorb other machines' arithmetic: ``k`` standard errors of the seed
spread, and the ``floor`` (percentage points) keeps small spreads from making the check flaky. A
deterministic method (ESZSL: no seed dependence) has no spread, so its floor alone applies: a golden
value with an absolute tolerance.

Verdicts and the exit status of :func:`exit_status`: ``ok`` (0); ``REGRESSION``, ``FAILED`` (a run
failed), ``MISSING`` (no result for a baseline case) (1); ``improved``, ``new`` (no baseline entry),
``stale`` (the suite entry changed since the baseline was made), ``untested`` (a registered method
the suite lacks, when the suite asks for every method) (3: update the suite or the baseline on purpose).
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from gzslbench.core.environment import code_version, environment, torch_threads
from gzslbench.core.errors import ConfigError, GZSLBenchError
from gzslbench.core.files import write_json_atomic
from gzslbench.core.registry import DATASETS, METHODS
from gzslbench.execution.api import run
from gzslbench.results.store import iter_records

CHECK_METRICS = ("H", "U", "S")
MODE = "last"  # fixed epoch counts: no selection on test data
BASELINE_FORMAT = 1
EXIT_OK, EXIT_REGRESSION, EXIT_UPDATE = 0, 1, 3
FAILING = ("REGRESSION", "FAILED", "MISSING")
NEEDS_UPDATE = ("improved", "new", "stale", "untested")
DEFAULT_K = 4.0
DEFAULT_FLOOR = 2.0


def default_suite_path() -> Path:
    """The packaged CI suite (copy it to start your own)."""
    return Path(str(resources.files("gzslbench") / "suites" / "ci.toml"))


def default_baseline_path() -> Path:
    """The committed baseline of the packaged CI suite."""
    return Path(str(resources.files("gzslbench") / "baselines" / "ci.json"))


@dataclass(frozen=True)
class Case:
    """One (method, dataset, options, overrides) cell of a suite, run over the suite's seeds."""

    method: str
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    floor: float = DEFAULT_FLOOR
    name: str = ""

    @property
    def key(self) -> str:
        return self.name or f"{self.method}@{self.dataset}"

    def entry(self) -> dict[str, Any]:
        """What the baseline stores to tell whether the suite entry changed since."""
        return {
            "method": self.method,
            "dataset": self.dataset,
            "options": _plain(self.options),
            "overrides": _plain(self.overrides),
            "seeds": list(self.seeds),
        }


@dataclass(frozen=True)
class Suite:
    """A named list of cases, the tolerance and the torch thread count the runs use."""

    name: str
    cases: tuple[Case, ...]
    k: float = DEFAULT_K
    threads: int | None = None
    all_methods: bool = False
    path: str = ""

    def untested_methods(self) -> list[str]:
        """Registered methods with no case, when the suite claims to cover every method."""
        if not self.all_methods:
            return []
        covered = {case.method for case in self.cases}
        return [name for name in METHODS.names() if name not in covered]


def _plain(value: Any) -> Any:
    """Numbers as floats and sequences as lists, so TOML, YAML and record values compare equal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and s >= 0 for s in value):
        return tuple(sorted(set(value)))
    raise ConfigError(f"{where}: seeds must be a count >= 1 or a list of seeds >= 0, got {value!r}")


def _number(table: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def load_suite(path: str | Path | None = None) -> Suite:
    """Read and check a suite file (the packaged CI suite when ``path`` is None)."""
    path = Path(path) if path else default_suite_path()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read suite file '{path}': {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    known = {"name", "seeds", "threads", "all_methods", "tolerance", "case"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    tolerance = data.get("tolerance", {})
    if not isinstance(tolerance, dict) or set(tolerance) - {"k", "floor"}:
        raise ConfigError(f"{path}: [tolerance] takes k and floor")
    k = _number(tolerance, "k", DEFAULT_K, f"{path} [tolerance]")
    floor = _number(tolerance, "floor", DEFAULT_FLOOR, f"{path} [tolerance]")
    seeds = _seeds(data.get("seeds", 3), str(path))
    threads = data.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"{path}: threads must be an integer >= 1, got {threads!r}")
    raw_cases = data.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError(f"{path}: no [[case]] entries")
    cases = [_case(raw, i, path, seeds, floor) for i, raw in enumerate(raw_cases, 1)]
    keys = [case.key for case in cases]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ConfigError(f"{path}: cases {', '.join(duplicates)} appear twice; give them distinct `name`s")
    return Suite(
        name=str(data.get("name", path.stem)),
        cases=tuple(cases),
        k=k,
        threads=threads,
        all_methods=bool(data.get("all_methods", False)),
        path=str(path),
    )


def _case(raw: Any, index: int, path: Path, seeds: tuple[int, ...], floor: float) -> Case:
    where = f"{path} case {index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - {"method", "dataset", "options", "overrides", "seeds", "floor", "name"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    for key in ("method", "dataset"):
        if not isinstance(raw.get(key), str):
            raise ConfigError(f"{where}: `{key}` (a name) is required")
    for key in ("options", "overrides"):
        if not isinstance(raw.get(key, {}), dict):
            raise ConfigError(f"{where}: `{key}` must be a table")
    return Case(
        method=METHODS.get(raw["method"]).name,
        dataset=DATASETS.get(raw["dataset"]).name,
        options=dict(raw.get("options", {})),
        overrides=dict(raw.get("overrides", {})),
        seeds=_seeds(raw["seeds"], where) if "seeds" in raw else seeds,
        floor=_number(raw, "floor", floor, where),
        name=str(raw.get("name", "")),
    )


def _seed_ranges(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 5]`` -> ``[(0, 3), (5, 1)]``: (start, count) runs of consecutive seeds."""
    ranges: list[tuple[int, int]] = []
    for seed in seeds:
        if ranges and ranges[-1][0] + ranges[-1][1] == seed:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
        else:
            ranges.append((seed, 1))
    return ranges


def run_suite(
    suite: Suite, out: str | Path, device: str = "cpu", progress: Any = None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, float]]:
    """Run every case afresh into ``out``; return the records and the seconds per case.

    ``progress``, when given, is called with each case's key and seconds once it finishes.
    """
    records: dict[str, list[dict[str, Any]]] = {}
    seconds: dict[str, float] = {}
    for case in suite.cases:
        tic = time.perf_counter()
        records[case.key] = [
            record
            for start, count in _seed_ranges(case.seeds)
            for record in run(
                case.method,
                case.dataset,
                seeds=count,
                seed_start=start,
                options=case.options,
                overrides=case.overrides,
                out=out,
                device=device,
                threads=suite.threads,
                force=True,
                quiet=True,
            )
        ]
        seconds[case.key] = time.perf_counter() - tic
        if progress:
            progress(case.key, seconds[case.key])
    return records, seconds


def _matches(wanted: Mapping[str, Any], got: Any) -> bool:
    return isinstance(got, Mapping) and all(k in got and _plain(got[k]) == _plain(v) for k, v in wanted.items())


def collect(suite: Suite, results: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The records in an existing results folder that belong to each case (same options, overrides, seeds)."""
    found: dict[str, list[dict[str, Any]]] = {case.key: [] for case in suite.cases}
    for record in iter_records(results):
        for case in suite.cases:
            if (
                record.get("method") == case.method
                and record.get("dataset") == case.dataset
                and record.get("seed") in case.seeds
                and _matches(case.options, record.get("dataset_options"))
                and _matches(case.overrides, record.get("config"))
            ):
                found[case.key].append(record)
    for key, recs in found.items():
        hashes = sorted({str(r.get("config_hash")) for r in recs})
        if len(hashes) > 1:
            raise GZSLBenchError(
                f"{results}: {len(hashes)} different configs ({', '.join(hashes)}) match case {key}; "
                "point --from-results at a folder with one"
            )
    return found


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-metric mean, sample std and per-seed values of the successful records, and the failures."""
    ok = sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r["seed"])
    summary: dict[str, Any] = {
        "seeds": [r["seed"] for r in ok],
        "config_hash": ok[0].get("config_hash") if ok else None,
        "failed": [f"seed {r.get('seed')}: {r.get('error') or r.get('status')}" for r in records if r not in ok],
    }
    for metric in CHECK_METRICS:
        values = [float(r["metrics"][MODE][metric]) for r in ok]
        summary[metric] = {
            "mean": float(np.mean(values)) if values else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values,
        }
    return summary


@dataclass
class Row:
    """One line of the check table: a case's metric, both sides, the tolerance and the verdict."""

    case: str
    metric: str
    verdict: str
    baseline: dict[str, Any] | None = None
    now: dict[str, Any] | None = None
    tolerance: float = math.nan
    note: str = ""

    @property
    def difference(self) -> float:
        if self.baseline is None or self.now is None:
            return math.nan
        return self.now["mean"] - self.baseline["mean"]


def tolerance(base: Mapping[str, Any], now: Mapping[str, Any], k: float, floor: float) -> float:
    """``max(k * combined standard error of the two means, floor)``, in percentage points."""
    n_base, n_now = max(len(base["values"]), 1), max(len(now["values"]), 1)
    stderr = math.sqrt(base["std"] ** 2 / n_base + now["std"] ** 2 / n_now)
    return max(k * stderr, floor)


def compare(suite: Suite, baseline: Mapping[str, Any] | None, current: Mapping[str, list[dict[str, Any]]]) -> list[Row]:
    """Verdict rows for every suite case, every baseline case absent from the run, and untested methods."""
    entries = dict((baseline or {}).get("cases", {}))
    rows: list[Row] = []
    for case in suite.cases:
        summary = summarize(current.get(case.key, []))
        entry = entries.pop(case.key, None)
        if summary["failed"]:
            rows.append(Row(case.key, "-", "FAILED", note="; ".join(summary["failed"])))
            continue
        if not summary["seeds"]:
            rows.append(Row(case.key, "-", "MISSING", note="no run records for this case"))
            continue
        if entry is None:
            rows += [Row(case.key, m, "new", now=summary[m], note="not in the baseline") for m in CHECK_METRICS]
            continue
        stale = entry.get("suite_entry") != case.entry()
        note = ""
        if not stale and entry.get("config_hash") != summary["config_hash"]:
            note = "resolved config differs from the baseline's (a default changed)"
        for metric in CHECK_METRICS:
            base, now = entry[metric], summary[metric]
            tol = tolerance(base, now, suite.k, case.floor)
            diff = now["mean"] - base["mean"]
            if stale:
                verdict, why = "stale", "suite entry changed since the baseline"
            elif not math.isfinite(diff) or diff < -tol:
                verdict, why = "REGRESSION", note
            elif diff > tol:
                verdict, why = "improved", note
            else:
                verdict, why = "ok", note
            rows.append(Row(case.key, metric, verdict, base, now, tol, why))
    for key in entries:
        rows.append(Row(key, "-", "MISSING", note="in the baseline but not run"))
    for method in suite.untested_methods():
        rows.append(Row(method, "-", "untested", note="registered method without a case in the suite"))
    return rows


def exit_status(rows: Sequence[Row]) -> int:
    """0 all ok; 1 a regression, failed or missing run; 3 only improvements or suite/baseline updates due."""
    verdicts = {row.verdict for row in rows}
    if verdicts & set(FAILING):
        return EXIT_REGRESSION
    if verdicts & set(NEEDS_UPDATE):
        return EXIT_UPDATE
    return EXIT_OK


def _cell(side: Mapping[str, Any] | None) -> str:
    if side is None or not math.isfinite(side["mean"]):
        return "-"
    return f"{side['mean']:.2f} ± {side['std']:.2f}"


def render(rows: Sequence[Row]) -> str:
    """The check table: case, metric, baseline and now (mean ± std over seeds), difference, tolerance, verdict."""
    table = [
        [
            row.case,
            row.metric,
            _cell(row.baseline),
            _cell(row.now),
            f"{row.difference:+.2f}" if math.isfinite(row.difference) else "-",
            f"{row.tolerance:.2f}" if math.isfinite(row.tolerance) else "-",
            row.verdict,
            row.note,
        ]
        for row in rows
    ]
    headers = ["case", "metric", "baseline", "now", "diff", "tol", "verdict", "note"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def verdict_line(status: int) -> str:
    """One line that says what the exit status means and what to do."""
    if status == EXIT_REGRESSION:
        return "FAIL: accuracy regression or failed runs (see the table)"
    if status == EXIT_UPDATE:
        return "improved or changed: update the baseline with --update (on purpose, and commit it)"
    return "ok: every case within tolerance of the baseline"


def read_baseline(path: str | Path) -> dict[str, Any] | None:
    """The baseline at ``path``, or None when there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GZSLBenchError(f"baseline '{path}' is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        raise GZSLBenchError(f"baseline '{path}' has no `cases` mapping; rewrite it with --update")
    return data


def make_baseline(suite: Suite, current: Mapping[str, list[dict[str, Any]]], device: str = "cpu") -> dict[str, Any]:
    """A baseline from a complete, successful run of ``suite``, with the code version and environment."""
    cases: dict[str, Any] = {}
    for case in suite.cases:
        summary = summarize(current.get(case.key, []))
        if summary["failed"] or summary["seeds"] != list(case.seeds):
            problem = "; ".join(summary["failed"]) or f"records for seeds {summary['seeds']} of {list(case.seeds)}"
            raise GZSLBenchError(f"not writing a baseline: case {case.key}: {problem}")
        cases[case.key] = {"suite_entry": case.entry(), **summary}
        del cases[case.key]["failed"]
    with torch_threads(suite.threads):
        env = environment(torch.device(device))
    code = code_version()
    return {
        "format": BASELINE_FORMAT,
        "suite": suite.name,
        "mode": MODE,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code": {"gzslbench": code["version"], "git_commit": code["git_commit"], "git_dirty": code["git_dirty"]},
        "environment": env,
        "cases": cases,
    }


def write_baseline(path: str | Path, baseline: Mapping[str, Any]) -> None:
    """Write the baseline atomically."""
    write_json_atomic(Path(path), dict(baseline))


@contextlib.contextmanager
def results_folder(path: str | Path | None) -> Iterator[Path]:
    """``path`` (created), or a temporary folder removed afterwards."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="gzslbench-check-") as tmp:
            yield Path(tmp)
