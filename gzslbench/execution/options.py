"""The checks of a command's execution options, made once per call before anything runs."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from gzslbench.core.errors import GZSLBenchError

AUTO = "auto"
MAX_SEEDS = 10_000  # more seeds than any table needs: a larger count is a typo
MAX_SEED = 2**31 - 1
MAX_THREADS = 1024  # more torch threads than any machine has cores: OpenMP fails to start them, or crashes
BACKENDS = ("joblib", "dask")


def is_whole_number(value: object) -> bool:
    """An int, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_count(value: int | str, option: str) -> int | str:
    """An int option that also accepts ``auto`` or a number's text; a one-line error for anything else (a float
    would be cut silently)."""
    if is_whole_number(value) or value == AUTO:
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise GZSLBenchError(f"{option} must be a whole number or 'auto', got '{value}'")


def check_whole_number(value: object, option: str) -> None:
    """Refuse a value that is not an int (a string, a float, a bool) with one line, as the CLI's parser would."""
    if not is_whole_number(value):
        raise GZSLBenchError(f"{option} must be a whole number, got {value!r}")


def check_seeds(seeds: int, seed_start: int) -> None:
    """Refuse seed counts and ranges no table needs (a typo would otherwise exhaust memory)."""
    check_whole_number(seeds, "--seeds")
    check_whole_number(seed_start, "--seed-start")
    if seeds < 1:
        raise GZSLBenchError("--seeds must be at least 1")
    if seeds > MAX_SEEDS:
        raise GZSLBenchError(f"--seeds {seeds} is more than {MAX_SEEDS}; run seeds in batches with --seed-start")
    if seed_start < 0 or seed_start + seeds - 1 > MAX_SEED:
        raise GZSLBenchError(f"seeds must lie in [0, {MAX_SEED}]; got {seed_start}..{seed_start + seeds - 1}")


def run_seeds(seeds: int | Sequence[int], seed_start: int = 0) -> list[int]:
    """The seeds a command runs: ``seeds`` seeds from ``seed_start``, or the list ``seeds`` itself (as a record's
    replay command names a batch of seeds that are not consecutive); checked."""
    if not isinstance(seeds, Sequence) or isinstance(seeds, str):
        check_seeds(seeds, seed_start)  # a count; refuses what is not a whole number
        return list(range(seed_start, seed_start + seeds))
    if seed_start != 0:
        raise GZSLBenchError("give a list of seeds or a first seed (--seed-start), not both")
    listed = list(seeds)
    for seed in listed:
        check_whole_number(seed, "a seed")
    if not 1 <= len(listed) <= MAX_SEEDS:
        raise GZSLBenchError(f"give between 1 and {MAX_SEEDS} seeds, got {len(listed)}")
    outside = [seed for seed in listed if not 0 <= seed <= MAX_SEED]
    if outside:
        raise GZSLBenchError(f"seeds must lie in [0, {MAX_SEED}]; got {outside[0]}")
    twice = sorted(seed for seed, count in Counter(listed).items() if count > 1)
    if twice:
        raise GZSLBenchError(f"seed {twice[0]} is given twice")
    return listed


def check_batch_seeds(batch_seeds: int | str, backend: str = "joblib") -> None:
    """Refuse a batch size below one seed, and batches on a backend that runs specs one by one."""
    if batch_seeds == AUTO:
        return
    assert isinstance(batch_seeds, int)
    if batch_seeds < 1:
        raise GZSLBenchError(f"--batch-seeds must be at least 1, got {batch_seeds}")
    if batch_seeds > 1 and backend != "joblib":
        raise GZSLBenchError("--batch-seeds runs on the joblib backend only; leave it out with --backend dask")


def check_backend(backend: str, scheduler: str | None) -> None:
    """Refuse an unknown backend, and a scheduler address without the backend that uses it."""
    if backend not in BACKENDS:
        raise GZSLBenchError(f"unknown backend '{backend}'; known: {', '.join(BACKENDS)}")
    if scheduler and backend != "dask":
        raise GZSLBenchError("--scheduler is the address of a Dask scheduler: add --backend dask")


def check_n_jobs(n_jobs: int | str, cores: int) -> int | str:
    """``n_jobs`` as a process count or ``auto``: -1 means one per core; 0 and other negatives are refused."""
    if n_jobs == AUTO:
        return n_jobs
    assert isinstance(n_jobs, int)
    if n_jobs == -1:
        return cores
    if n_jobs < 1:
        raise GZSLBenchError(f"--n-jobs must be a positive number of processes or -1 (one per core), got {n_jobs}")
    return n_jobs


def check_threads(threads: int | None) -> None:
    """Refuse a thread count below one or above :data:`MAX_THREADS` (None: planned)."""
    if threads is None:
        return
    check_whole_number(threads, "--threads")
    if threads > MAX_THREADS:
        raise GZSLBenchError(f"--threads {threads} is more than {MAX_THREADS}; give at most the cores a run may use")
    if threads < 1:
        raise GZSLBenchError(f"--threads must be at least 1, got {threads}")


def check_writable(out: str | Path) -> None:
    """Fail before any run if records cannot be written under ``out``."""
    if str(out).strip() == "":
        raise GZSLBenchError("--results must name a folder (got an empty string)")
    runs = Path(out) / "runs"
    try:
        runs.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=runs):  # a unique name: concurrent commands probe at once
            pass
    except OSError as exc:
        raise GZSLBenchError(f"cannot write run records under '{out}': {exc.strerror or exc}") from None


def check_execution(
    seeds: int | Sequence[int],
    seed_start: int,
    out: str | Path,
    *,
    cores: int,
    n_jobs: int | str = 1,
    threads: int | None = None,
    batch_seeds: int | str = 1,
    backend: str = "joblib",
    scheduler: str | None = None,
) -> tuple[int | str, int | str]:
    """Every check of a command's execution options, in one place; returns (n_jobs, batch_seeds) parsed."""
    run_seeds(seeds, seed_start)
    n_jobs = check_n_jobs(parse_count(n_jobs, "--n-jobs"), cores)
    batch_seeds = parse_count(batch_seeds, "--batch-seeds")
    check_batch_seeds(batch_seeds, backend)
    check_backend(backend, scheduler)
    check_threads(threads)
    check_writable(out)
    return n_jobs, batch_seeds
