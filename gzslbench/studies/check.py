"""Accuracy regression check: run a fixed suite and compare it, seed by seed, with a committed baseline.

A *suite* (TOML, see ``gzslbench/suites/ci.toml``) names cases (method, dataset, dataset options,
config overrides), the seeds, the torch thread count, the tolerance and how the noise model is
measured. A *baseline* (JSON, written by ``--update``) holds each case's per-seed H / U / S / AUSUC
(selection mode ``last``), the suite entry it was made from, the case's noise model, the code
version and the environment.

Paired statistic. A seed's run is reproducible given the seed and the thread count, so seed ``j`` of
the current run is compared with seed ``j`` of the baseline: the seed-to-seed spread cancels. For
each case and metric, over the case's ``n`` seeds::

    d_j  = now_j - baseline_j                   (per-seed difference, percentage points)
    diff = mean_j d_j

Noise model. What is left between two runs of one seed is the arithmetic: another machine, BLAS or
thread count rounds differently, and training amplifies the rounding. ``sigma`` is that per-seed
difference measured on unchanged code: the root mean square, over the ``noise.seeds`` calibration
seeds, of ``run_j(noise.threads) - run_j(threads)`` (by default 2 threads against the suite's 1;
with ``noise.env``, the noise runs also run with those environment variables, e.g. MKL's
``MKL_CBWR=COMPATIBLE``, which perturbs the rounding on CPUs whose thread counts do not).
``--update`` measures it and stores it in the baseline with the differences it came from. The
current run's own spread never enters the tolerance, so a change that makes results noisier does
not widen its own tolerance. Then::

    tol             = max(k * sigma / sqrt(n), floor)
    detectable drop = tol + z * sigma / sqrt(n)        (z = 1.645)

``diff < -tol`` is a regression, ``diff > tol`` an unexpected improvement (the baseline must then be
updated on purpose). Under the noise model ``diff`` is normal with mean 0 and standard deviation
``sigma / sqrt(n)``: unchanged code on another machine fails a metric with probability
``2 * Phi(-k)`` (6e-5 for ``k = 4``), and a true drop of ``detectable drop`` points is flagged with
probability ``Phi(z) = 95%``. The ``floor`` (percentage points) is the tolerance of a case whose
noise is zero: the closed-form, seed-independent ESZSL and SAE (one run per config), and methods
that reproduce bit for bit across thread counts.

Verdicts and the exit status of :func:`exit_status`: ``ok`` (0); ``REGRESSION`` (also a case whose
seeds all gave one H where the baseline's differ), ``FAILED`` (a run failed), ``MISSING`` (no result
for a baseline case or seed) (1); ``improved``, ``new`` (no baseline entry), ``stale`` (the suite
entry changed since the baseline was made), ``uncalibrated`` (no noise model for the case's current
suite entry), ``untested`` (a registered method the suite lacks, when the suite asks for every
method), ``changed`` (a method's resolved default config on a dataset differs from the one the
baseline keeps, :func:`defaults_rows`) (3: update the suite or the baseline on purpose).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tabulate import tabulate

from gzslbench.core.environment import code_version, cpu_count, environment, torch_threads
from gzslbench.core.errors import ConfigError, GZSLBenchError
from gzslbench.core.files import write_json_atomic
from gzslbench.core.registry import DATASETS, METHODS, is_builtin
from gzslbench.execution.api import run
from gzslbench.execution.resolve import method_config
from gzslbench.results.store import iter_records
from gzslbench.studies.environment_runs import run_in_env

CHECK_METRICS = ("H", "U", "S", "AUSUC")
MODE = "last"  # fixed epoch counts: no selection on test data
BASELINE_FORMAT = 2
EXIT_OK, EXIT_REGRESSION, EXIT_UPDATE = 0, 1, 3
FAILING = ("REGRESSION", "FAILED", "MISSING")
NEEDS_UPDATE = ("improved", "new", "stale", "uncalibrated", "untested", "changed")
# The datasets whose settings the methods' per-dataset defaults hold (the synthetic ones borrow them): the
# baseline keeps each method's resolved config on each, so a changed default shows where no case trains on it.
DEFAULTS_DATASETS = ("cub", "sun", "awa1", "awa2", "apy", "flo")
SHOWN_CHANGES = 4  # changed keys named in a defaults row's note
DEFAULT_K = 4.0
DEFAULT_FLOOR = 0.5
POWER_Z = 1.645  # one-sided normal quantile of the power the detectable drop is quoted at (95%)
DEFAULT_NOISE_SEEDS = 16
DEFAULT_NOISE_THREADS = 2


def default_suite_path() -> Path:
    """The packaged CI suite (copy it to start your own)."""
    return Path(str(resources.files("gzslbench") / "suites" / "ci.toml"))


def default_baseline_path() -> Path:
    """The committed baseline of the packaged CI suite."""
    return Path(str(resources.files("gzslbench") / "baselines" / "ci.json"))


@dataclass(frozen=True)
class Case:
    """One (method, dataset, options, overrides) cell of a suite, run over the suite's seeds.

    ``noise_seeds`` are the seeds the noise model is measured on (a superset of ``seeds``).
    """

    method: str
    dataset: str
    options: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = ()
    floor: float = DEFAULT_FLOOR
    name: str = ""
    noise_seeds: tuple[int, ...] = ()

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
    """A named list of cases, the tolerance, the torch thread count the runs use and the noise calibration."""

    name: str
    cases: tuple[Case, ...]
    k: float = DEFAULT_K
    threads: int | None = None
    all_methods: bool = False
    path: str = ""
    noise_threads: int = DEFAULT_NOISE_THREADS
    jobs: int = 1
    noise_env: dict[str, str] = field(default_factory=dict)

    def methods(self) -> list[str]:
        """The methods the suite's cases run."""
        return sorted({case.method for case in self.cases})

    def untested_methods(self) -> list[str]:
        """gzslbench's own methods with no case, when the suite claims to cover them all (plugins are not its)."""
        if not self.all_methods:
            return []
        covered = {case.method for case in self.cases}
        builtin = [name for name in METHODS.names() if is_builtin(METHODS.get(name))]
        return [name for name in builtin if name not in covered]


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


def _threads(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: threads must be an integer >= 1, got {value!r}")
    return value


def load_suite(path: str | Path | None = None) -> Suite:
    """Read and check a suite file (the packaged CI suite when ``path`` is None)."""
    path = Path(path) if path else default_suite_path()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read suite file '{path}': {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    known = {"name", "seeds", "threads", "jobs", "all_methods", "tolerance", "noise", "case"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    tolerance = data.get("tolerance", {})
    if not isinstance(tolerance, dict) or set(tolerance) - {"k", "floor"}:
        raise ConfigError(f"{path}: [tolerance] takes k and floor")
    k = _number(tolerance, "k", DEFAULT_K, f"{path} [tolerance]")
    floor = _number(tolerance, "floor", DEFAULT_FLOOR, f"{path} [tolerance]")
    noise = data.get("noise", {})
    if not isinstance(noise, dict) or set(noise) - {"seeds", "threads", "env"}:
        raise ConfigError(f"{path}: [noise] takes seeds, threads and env")
    noise_env = noise.get("env", {})
    if not isinstance(noise_env, dict) or not all(isinstance(v, str) for v in noise_env.values()):
        raise ConfigError(f'{path}: [noise] env must map variable names to strings, e.g. {{ MKL_CBWR = "COMPATIBLE" }}')
    noise_seeds = _seeds(noise.get("seeds", DEFAULT_NOISE_SEEDS), f"{path} [noise]")
    seeds = _seeds(data.get("seeds", 3), str(path))
    threads = data.get("threads")
    if threads is not None:
        threads = _threads(threads, str(path))
    noise_threads = _threads(noise.get("threads", DEFAULT_NOISE_THREADS), f"{path} [noise]")
    jobs = data.get("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"{path}: jobs must be an integer >= 1, got {jobs!r}")
    if noise_threads == (threads or 0) and not noise_env:
        raise ConfigError(f"{path}: [noise] threads must differ from the suite's threads ({threads}) unless env is set")
    raw_cases = data.get("case", [])
    if not isinstance(raw_cases, list) or not raw_cases:
        raise ConfigError(f"{path}: no [[case]] entries")
    cases = [_case(raw, i, path, seeds, floor, noise_seeds) for i, raw in enumerate(raw_cases, 1)]
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
        noise_threads=noise_threads,
        jobs=jobs,
        noise_env=dict(noise_env),
    )


def _case(raw: Any, index: int, path: Path, seeds: tuple[int, ...], floor: float, noise_seeds: tuple[int, ...]) -> Case:
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
    method = METHODS.get(raw["method"])
    case_seeds = _seeds(raw["seeds"], where) if "seeds" in raw else seeds
    if not method.seed_dependent:
        # One run per config (gzslbench runs a seed-independent method once): one seed, a golden value.
        case_seeds, case_noise_seeds = case_seeds[:1], case_seeds[:1]
    else:
        case_noise_seeds = tuple(sorted(set(case_seeds) | set(noise_seeds)))
    return Case(
        method=method.name,
        dataset=DATASETS.get(raw["dataset"]).name,
        options=dict(raw.get("options", {})),
        overrides=dict(raw.get("overrides", {})),
        seeds=case_seeds,
        floor=_number(raw, "floor", floor, where),
        name=str(raw.get("name", "")),
        noise_seeds=case_noise_seeds,
    )


def select_cases(
    suite: Suite, baseline: Mapping[str, Any] | None, keys: Sequence[str]
) -> tuple[Suite, dict[str, Any] | None]:
    """The suite and baseline cut down to the cases ``keys`` (a quick re-check of a few cases).

    The cut suite does not claim every method, and the baseline's other cases are left out, so
    neither is reported as untested or missing.
    """
    known = [case.key for case in suite.cases]
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ConfigError(f"no case {', '.join(unknown)} in suite '{suite.name}'; its cases: {', '.join(known)}")
    cases = tuple(case for case in suite.cases if case.key in keys)
    cut = dataclasses.replace(suite, cases=cases, all_methods=False)
    if baseline is None:
        return cut, None
    entries = {key: entry for key, entry in baseline.get("cases", {}).items() if key in keys}
    return cut, {**baseline, "cases": entries}


def _seed_ranges(seeds: Sequence[int]) -> list[tuple[int, int]]:
    """``[0, 1, 2, 5]`` -> ``[(0, 3), (5, 1)]``: (start, count) runs of consecutive seeds."""
    ranges: list[tuple[int, int]] = []
    for seed in seeds:
        if ranges and ranges[-1][0] + ranges[-1][1] == seed:
            ranges[-1] = (ranges[-1][0], ranges[-1][1] + 1)
        else:
            ranges.append((seed, 1))
    return ranges


def run_case(
    case: Case,
    seeds: Sequence[int],
    out: str | Path,
    threads: int | None,
    device: str = "cpu",
    jobs: int = 1,
    env: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``case`` afresh for ``seeds`` at ``threads`` torch threads into ``out``; its records, seed by seed.

    The seeds are spread over up to ``jobs`` processes, no more than the cores hold at ``threads``
    threads each; a run's result does not depend on the process it ran in. With ``env``, the runs
    run in a child process whose environment adds those variables (:func:`run_in_env`).
    """
    n_jobs = max(1, min(jobs, len(seeds), cpu_count() // (threads or 1)))
    calls = [
        {
            "method": case.method,
            "dataset": case.dataset,
            "seeds": count,
            "seed_start": start,
            "options": case.options,
            "overrides": case.overrides,
            "out": str(out),
            "device": device,
            "threads": threads,
            "n_jobs": n_jobs,
            "force": True,
            "quiet": True,
        }
        for start, count in _seed_ranges(sorted(seeds))
    ]
    if env:
        return run_in_env(calls, env, f"case {case.key}")
    return [record for call in calls for record in run(**call)]


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
        records[case.key] = run_case(case, case.seeds, out, suite.threads, device, suite.jobs)
        seconds[case.key] = time.perf_counter() - tic
        if progress:
            progress(case.key, seconds[case.key])
    return records, seconds


def _matches(wanted: Mapping[str, Any], got: Any) -> bool:
    return isinstance(got, Mapping) and all(k in got and _plain(got[k]) == _plain(v) for k, v in wanted.items())


NOISE_RUNS = "noise-threads-"  # the folders beside a suite's records that hold its noise-model runs (calibrate)


def suite_runs_folder(results: Path) -> Path:
    """Where the suite's own records under ``results`` are: its ``runs`` sub-folder, or else the one ``runs`` folder
    further down (``results`` is a parent of the folder the suite ran into), or else ``results`` itself.

    The noise-model runs that ``--update`` writes beside a suite's records (:func:`calibrate`) are runs of the same
    seeds; read with them, each seed's first record found would be taken, the suite's or the noise run's.
    """
    own = results / "runs"
    if own.is_dir():
        return own
    below = [
        folder
        for folder in sorted(results.rglob("runs"))
        if folder.is_dir() and not any(part.startswith(NOISE_RUNS) for part in folder.relative_to(results).parts)
    ]
    if len(below) > 1:
        listed = ", ".join(str(folder.parent) for folder in below[:3]) + (", ..." if len(below) > 3 else "")
        raise GZSLBenchError(f"{results}: holds {len(below)} results folders ({listed}); point --from-results at one")
    return below[0] if below else results


def collect(suite: Suite, results: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The records in an existing results folder that belong to each case (same options, overrides, seeds,
    and the suite's thread count when it sets one).

    A folder the suite ran into is read from its ``runs`` sub-folder (:func:`suite_runs_folder`).
    """
    found: dict[str, list[dict[str, Any]]] = {case.key: [] for case in suite.cases}
    for record in iter_records(suite_runs_folder(Path(results))):
        if suite.threads is not None and record.get("threads") not in (None, suite.threads):
            continue
        for case in suite.cases:
            if (
                record.get("method") == case.method
                and record.get("dataset") == case.dataset
                and record.get("seed") in case.seeds
                and _matches(case.options, record.get("dataset_options"))
                and _matches(case.overrides, record.get("config"))
            ):
                found[case.key].append(record)
    for case in suite.cases:
        recs = found[case.key]
        if len({str(r.get("config_hash")) for r in recs}) > 1:  # e.g. a case and its variant: keep the case's own
            defaults_from = DATASETS.get(case.dataset).defaults_from or case.dataset
            resolved = _plain(method_config(case.method, defaults_from, overrides=case.overrides))
            found[case.key] = recs = [r for r in recs if _plain(r.get("config")) == resolved] or recs
        hashes = sorted({str(r.get("config_hash")) for r in recs})
        if len(hashes) > 1:
            raise GZSLBenchError(
                f"{results}: {len(hashes)} different configs ({', '.join(hashes)}) match case {case.key}; "
                "point --from-results at a folder with one"
            )
    return found


def _metric(record: Mapping[str, Any], metric: str) -> float:
    value = record.get("metrics", {}).get(MODE, {}).get(metric)
    return float(value) if isinstance(value, int | float) else math.nan


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-metric mean, sample std and per-seed values (in ``seeds`` order) of the successful records; the failures."""
    ok = sorted((r for r in records if r.get("status") == "ok"), key=lambda r: r["seed"])
    summary: dict[str, Any] = {
        "seeds": [r["seed"] for r in ok],
        "config_hash": ok[0].get("config_hash") if ok else None,
        "failed": [f"seed {r.get('seed')}: {r.get('error') or r.get('status')}" for r in records if r not in ok],
    }
    for metric in CHECK_METRICS:
        values = [_metric(r, metric) for r in ok]
        summary[metric] = {
            "mean": float(np.mean(values)) if values else math.nan,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": values,
        }
    return summary


def paired_differences(base: Mapping[str, Any], now: Mapping[str, Any], metric: str) -> list[float]:
    """``now - base`` of ``metric`` seed by seed, over the baseline's seeds (each must be in ``now``)."""
    now_values = dict(zip(now["seeds"], now[metric]["values"], strict=True))
    return [now_values[seed] - value for seed, value in zip(base["seeds"], base[metric]["values"], strict=True)]


def tolerance(sigma: float, n: int, k: float, floor: float) -> float:
    """``max(k * sigma / sqrt(n), floor)``: ``k`` noise standard errors of the mean of ``n`` paired differences."""
    return max(k * sigma / math.sqrt(max(n, 1)), floor)


def detectable_drop(sigma: float, n: int, k: float, floor: float, z: float = POWER_Z) -> float:
    """The smallest true drop of the mean that the check flags with probability ``Phi(z)`` (95%):
    ``tolerance + z * sigma / sqrt(n)``."""
    return tolerance(sigma, n, k, floor) + z * sigma / math.sqrt(max(n, 1))


def measure_noise(
    case: Case,
    reference: Sequence[Mapping[str, Any]],
    other: Sequence[Mapping[str, Any]],
    threads: Sequence[Any],
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The noise model of ``case``: per metric the RMS of the per-seed differences ``other - reference``.

    ``reference`` are the case's runs at the suite's thread count, ``other`` the same seeds at the
    noise thread count (with the environment variables ``env``), both of unchanged code. The
    differences are kept for inspection.
    """
    ref, oth = summarize(reference), summarize(other)
    missing = sorted((set(case.noise_seeds) - set(ref["seeds"])) | (set(case.noise_seeds) - set(oth["seeds"])))
    problems = ref["failed"] + oth["failed"] + ([f"no runs of seed(s) {missing}"] if missing else [])
    if problems:
        raise GZSLBenchError(f"cannot measure the noise of case {case.key}: {'; '.join(problems)}")
    noise: dict[str, Any] = {
        "suite_entry": case.entry(),
        "seeds": list(case.noise_seeds),
        "threads": list(threads),
        "env": dict(env or {}),
        "config_hash": ref["config_hash"],
    }
    for metric in CHECK_METRICS:
        before = dict(zip(ref["seeds"], ref[metric]["values"], strict=True))
        after = dict(zip(oth["seeds"], oth[metric]["values"], strict=True))
        diffs = [after[seed] - before[seed] for seed in case.noise_seeds]
        noise[metric] = {
            "sigma": float(math.sqrt(np.mean(np.square(diffs)))),
            "differences": [round(d, 4) for d in diffs],
        }
    return noise


def noise_model(
    entry: Mapping[str, Any] | None,
    case: Case,
    threads: Sequence[Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any] | None:
    """A baseline entry's noise model when it was measured for this suite entry, noise seeds and config
    (and, given ``threads`` and ``env``, those two thread counts and noise environment); else None."""
    noise = (entry or {}).get("noise")
    if not isinstance(noise, Mapping) or entry is None:
        return None
    # The case's own seeds may change within the noise seeds: the noise model does not depend on them.
    measured_for = {k: v for k, v in dict(noise.get("suite_entry") or {}).items() if k != "seeds"}
    if measured_for != {k: v for k, v in case.entry().items() if k != "seeds"}:
        return None
    if noise.get("seeds") != list(case.noise_seeds):
        return None
    if noise.get("config_hash") != entry.get("config_hash"):
        return None
    if threads is not None and noise.get("threads") != list(threads):
        return None
    if env is not None and dict(noise.get("env") or {}) != dict(env):
        return None
    return dict(noise)


@dataclass
class Row:
    """One line of the check table: a case's metric, both sides, the paired difference, tolerance and verdict."""

    case: str
    metric: str
    verdict: str
    baseline: dict[str, Any] | None = None
    now: dict[str, Any] | None = None
    difference: float = math.nan
    sigma: float = math.nan
    tolerance: float = math.nan
    detectable: float = math.nan
    note: str = ""


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
        if entry.get("suite_entry") != case.entry():
            note = "suite entry changed since the baseline"
            rows += [Row(case.key, m, "stale", entry.get(m), summary[m], note=note) for m in CHECK_METRICS]
            continue
        missing = [seed for seed in entry["seeds"] if seed not in summary["seeds"]]
        if missing:
            rows.append(Row(case.key, "-", "MISSING", note=f"no run of baseline seed(s) {missing}"))
            continue
        note = ""
        if entry.get("config_hash") != summary["config_hash"]:
            note = "resolved config differs from the baseline's (a default changed)"
        noise = noise_model(entry, case)
        n = len(entry["seeds"])
        if len(set(summary["H"]["values"])) == 1 < len(set(entry["H"]["values"])):
            why = "every seed gave the same H where the baseline's differ: the seed no longer reaches the run"
            rows.append(Row(case.key, "seeds", "REGRESSION", entry["H"], summary["H"], note=why))
        for metric in CHECK_METRICS:
            base, now = entry.get(metric), summary[metric]
            if base is None:
                rows.append(Row(case.key, metric, "new", now=now, note="metric not in the baseline"))
                continue
            if all(math.isnan(v) for v in base["values"]) and all(math.isnan(v) for v in now["values"]):
                continue  # not reported by this method
            diff = float(np.mean(paired_differences(entry, summary, metric)))
            if noise is None or metric not in noise:
                why = "no noise model for this suite entry: update the baseline"
                rows.append(Row(case.key, metric, "uncalibrated", base, now, diff, note=why))
                continue
            sigma = float(noise[metric]["sigma"])
            tol = tolerance(sigma, n, suite.k, case.floor)
            if not math.isfinite(diff) or diff < -tol:
                verdict = "REGRESSION"
            elif diff > tol:
                verdict = "improved"
            else:
                verdict = "ok"
            drop = detectable_drop(sigma, n, suite.k, case.floor)
            rows.append(Row(case.key, metric, verdict, base, now, diff, sigma, tol, drop, note))
    for key in entries:
        rows.append(Row(key, "-", "MISSING", note="in the baseline but not run"))
    rows += defaults_rows(suite, baseline)
    for method in suite.untested_methods():
        rows.append(Row(method, "-", "untested", note="registered method without a case in the suite"))
    return rows


def default_configs(methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each method's resolved default config on each of :data:`DEFAULTS_DATASETS` (no training)."""
    return {m: {d: _plain(method_config(m, d)) for d in DEFAULTS_DATASETS} for m in methods}


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """``key old -> new`` for every key whose value differs (a key on one side only: ``-`` on the other)."""
    keys = sorted(set(before) | set(after))
    return [f"{k} {before.get(k, '-')!r} -> {after.get(k, '-')!r}" for k in keys if before.get(k) != after.get(k)]


def defaults_rows(suite: Suite, baseline: Mapping[str, Any] | None) -> list[Row]:
    """A ``changed`` row per method whose default config on a dataset differs from the baseline's, ``new`` if absent.

    The cases train on one dataset's settings and override some keys; a default they never use
    (AWA2's sample counts, a learning rate a case sets) changes nothing they measure.
    """
    recorded = (baseline or {}).get("defaults", {})
    rows: list[Row] = []
    for method, configs in default_configs(suite.methods()).items():
        key = f"{method} defaults"
        if method not in recorded:
            rows.append(Row(key, "-", "new", note="the method's per-dataset defaults are not in the baseline"))
            continue
        changes = [
            f"{dataset}: {change}"
            for dataset, config in configs.items()
            for change in _changes(recorded[method].get(dataset, {}), config)
        ]
        if changes:
            more = f" and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
            rows.append(Row(key, "-", "changed", note="; ".join(changes[:SHOWN_CHANGES]) + more))
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
    if len(side["values"]) < 2:
        return f"{side['mean']:.2f}"
    return f"{side['mean']:.2f} ± {side['std']:.2f}"


def _number_cell(value: float, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "-"
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def render(rows: Sequence[Row]) -> str:
    """The check table: case, metric, baseline and now (mean ± std over seeds), the mean paired difference,
    the noise model's per-seed sigma, the tolerance, the detectable drop and the verdict."""
    table = [
        [
            row.case,
            row.metric,
            _cell(row.baseline),
            _cell(row.now),
            _number_cell(row.difference, sign=True),
            _number_cell(row.sigma),
            _number_cell(row.tolerance),
            _number_cell(row.detectable),
            row.verdict,
            row.note,
        ]
        for row in rows
    ]
    headers = ["case", "metric", "baseline", "now", "diff", "noise", "tol", "detectable drop", "verdict", "note"]
    return tabulate(table, headers=headers, tablefmt="github", disable_numparse=True)


def verdict_line(status: int) -> str:
    """One line that says what the exit status means and what to do."""
    if status == EXIT_REGRESSION:
        return "FAIL: accuracy regression or failed runs (see the table)"
    if status == EXIT_UPDATE:
        return "improved or changed: update the baseline with --update (on purpose, and commit it)"
    return "ok: every case within tolerance of the baseline"


def read_baseline(path: str | Path) -> dict[str, Any] | None:
    """The baseline at ``path``, or None when there is none yet; a damaged file or case entry is one line.

    Values written as null (strict JSON for NaN: a metric the method does not report) are read as NaN.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise GZSLBenchError(f"baseline '{path}' is not readable JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        raise GZSLBenchError(f"baseline '{path}' has no `cases` mapping; rewrite it with --update")
    if data.get("format") != BASELINE_FORMAT:
        raise GZSLBenchError(
            f"baseline '{path}' has format {data.get('format')}, this gzslbench reads {BASELINE_FORMAT}; "
            "rewrite it with --update"
        )
    defaults = data.get("defaults", {})
    nested = isinstance(defaults, dict) and all(
        isinstance(configs, dict) and all(isinstance(config, dict) for config in configs.values())
        for configs in defaults.values()
    )
    if not nested:
        raise GZSLBenchError(f"baseline '{path}': 'defaults' is not method -> dataset -> config; rewrite it (--update)")
    for key, entry in data["cases"].items():
        problem = _entry_problem(entry)
        if problem:
            raise GZSLBenchError(f"baseline '{path}': case {key}: {problem}; rewrite it with --update")
        for metric in CHECK_METRICS:
            if isinstance(entry.get(metric), dict):
                side = entry[metric]
                side.update({stat: _nan_for_null(side.get(stat)) for stat in ("mean", "std")})
                side["values"] = [_nan_for_null(v) for v in side["values"]]
    return data


def _entry_problem(entry: Any) -> str | None:
    """Why a baseline case entry cannot be compared with a run, or None: the fields :func:`compare` and
    :func:`noise_model` read, of the types :func:`make_baseline` writes."""
    if not isinstance(entry, dict):
        return f"not a JSON object (a JSON {type(entry).__name__})"
    seeds = entry.get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return f"'seeds' = {repr(seeds)[:40]} is not a list of seeds"
    for key in ("suite_entry", "noise"):
        if entry.get(key) is not None and not isinstance(entry[key], dict):
            return f"'{key}' = {repr(entry[key])[:40]} is not a JSON object"
    for metric in CHECK_METRICS:
        side = entry.get(metric)
        if side is None:
            continue
        if not isinstance(side, dict):
            return f"'{metric}' = {repr(side)[:40]} is not a JSON object"
        values = side.get("values")
        if not isinstance(values, list) or len(values) != len(seeds) or not all(map(_number_or_null, values)):
            return f"'{metric}.values' = {repr(values)[:40]} is not one number per seed"
        for stat in ("mean", "std"):
            if not _number_or_null(side.get(stat)):
                return f"'{metric}.{stat}' = {repr(side.get(stat))[:40]} is not a number"
    noise = entry.get("noise") or {}
    for key in ("suite_entry", "env"):
        if noise.get(key) is not None and not isinstance(noise[key], dict):
            return f"'noise.{key}' = {repr(noise[key])[:40]} is not a JSON object"
    for metric in CHECK_METRICS:
        if metric in noise:
            sigma = noise[metric].get("sigma") if isinstance(noise[metric], dict) else None
            if sigma is None or not _number_or_null(sigma) or not sigma >= 0:
                return f"'noise.{metric}' = {repr(noise[metric])[:40]} has no 'sigma' (a number >= 0)"
    return None


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def _nan_for_null(value: Any) -> Any:
    return math.nan if value is None else value


def calibrate(
    suite: Suite,
    current: Mapping[str, list[dict[str, Any]]],
    previous: Mapping[str, Any] | None,
    out: str | Path,
    device: str = "cpu",
    recalibrate: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """The noise model of every case: kept from ``previous`` (a baseline) where still valid, else measured.

    Measuring runs the case's noise seeds that ``current`` lacks at the suite's thread count (into
    ``out``), and all of them at ``suite.noise_threads`` (into ``out/noise-threads-<t>``; with
    ``suite.noise_env`` in a child process with those variables, into ``out/noise-threads-<t>-env``),
    then :func:`measure_noise`. ``progress`` is called with the case key and what was done.
    """
    entries = (previous or {}).get("cases", {})
    models: dict[str, dict[str, Any]] = {}
    other_out = Path(out) / f"{NOISE_RUNS}{suite.noise_threads}{'-env' if suite.noise_env else ''}"
    for case in suite.cases:
        entry = entries.get(case.key)
        kept = None
        if not recalibrate and entry is not None:
            config_hash = summarize(current.get(case.key, []))["config_hash"]
            kept = noise_model(
                {**entry, "config_hash": config_hash}, case, [suite.threads, suite.noise_threads], suite.noise_env
            )
        if kept is not None:
            models[case.key] = kept
            if progress:
                progress(case.key, "noise model kept")
            continue
        tic = time.perf_counter()
        have = [r for r in current.get(case.key, []) if r.get("status") == "ok" and r["seed"] in case.noise_seeds]
        extra = sorted(set(case.noise_seeds) - {r["seed"] for r in have})
        reference = have + (run_case(case, extra, out, suite.threads, device, suite.jobs) if extra else [])
        other = run_case(case, case.noise_seeds, other_out, suite.noise_threads, device, suite.jobs, suite.noise_env)
        model = measure_noise(case, reference, other, [suite.threads, suite.noise_threads], suite.noise_env)
        models[case.key] = model
        if progress:
            seconds = time.perf_counter() - tic
            sigma = model["H"]["sigma"]
            what = f"noise measured on {len(case.noise_seeds)} seed(s) in {seconds:.1f} s: H sigma {sigma:.2f}"
            if sigma == 0 and METHODS.get(case.method).seed_dependent:
                what += " (the same bits on both settings: where a CPU's rounding ignores threads, set [noise] env)"
            progress(case.key, what)
    return models


def make_baseline(
    suite: Suite,
    current: Mapping[str, list[dict[str, Any]]],
    device: str = "cpu",
    noise: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A baseline from a complete, successful run of ``suite`` and its noise models, code version and environment."""
    cases: dict[str, Any] = {}
    for case in suite.cases:
        summary = summarize(current.get(case.key, []))
        if summary["failed"] or summary["seeds"] != list(case.seeds):
            problem = "; ".join(summary["failed"]) or f"records for seeds {summary['seeds']} of {list(case.seeds)}"
            raise GZSLBenchError(f"not writing a baseline: case {case.key}: {problem}")
        cases[case.key] = {"suite_entry": case.entry(), **summary}
        del cases[case.key]["failed"]
        if noise and case.key in noise:
            cases[case.key]["noise"] = dict(noise[case.key])
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
        "defaults": default_configs(suite.methods()),
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
