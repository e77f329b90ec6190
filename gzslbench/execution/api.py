"""``gzslbench.run``: the Python twin of ``gzslbench run``.

It runs in the calling process unless told otherwise and leaves that process as it found it:
torch's thread count is restored after each run, and the allocator settings of
:func:`~gzslbench.execution.process.set_up_own_process` are made only in worker processes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gzslbench.core.config import parse_assignments
from gzslbench.core.environment import cpu_count
from gzslbench.core.errors import ConfigError
from gzslbench.core.registry import DATASETS
from gzslbench.data.dataset import GZSLData
from gzslbench.execution.options import check_execution, run_seeds
from gzslbench.execution.resolve import get_method, plan_specs
from gzslbench.execution.schedule import run_specs
from gzslbench.execution.spec import RunSpec


def as_mapping(values: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` strings (as the CLI passes them) or a mapping, as a dict."""
    if isinstance(values, str):  # would otherwise be read one character at a time
        raise ConfigError(
            f"expected a mapping or a list of key=value strings, got the string {values!r}: write [{values!r}]"
        )
    return dict(values) if isinstance(values, Mapping) else parse_assignments(values or [])


def note_plan(specs: Iterable[RunSpec], seeds: int, data_dir: str | Path | None) -> None:
    """Say on stderr what a command does otherwise than asked: a ``data_dir`` that a generated dataset does
    not read, and methods that ignore the seed, so are trained once, not ``seeds`` times."""
    specs = list(specs)
    if data_dir:
        for name in sorted({s.dataset for s in specs if not DATASETS.get(s.dataset).reads_data_dir}):
            note = f"note: {name} is generated, not read from disk: the data folder given (--data-dir) is not used"
            print(note, file=sys.stderr)
    if seeds > 1:
        for name in sorted({s.method for s in specs if not get_method(s.method).seed_dependent}):
            print(f"note: {name} does not depend on the seed: trained once, not {seeds} times", file=sys.stderr)


def run(
    method: str | Sequence[str],
    dataset: str | Sequence[str],
    seeds: int | Sequence[int] = 1,
    *,
    seed_start: int = 0,
    out: str | Path = "results",
    device: str = "auto",
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | Sequence[str] | None = None,
    data_dir: str | None = None,
    n_jobs: int | str = 1,
    threads: int | None = None,
    force: bool = False,
    validate: bool = False,
    save_scores: bool = False,
    quiet: bool = True,
    backend: str = "joblib",
    scheduler: str | None = None,
    save_model: bool = False,
    batch_seeds: int | str = 1,
) -> list[dict[str, Any]]:
    """Run methods x datasets x seeds and return the records (one per run, in that order).

    ``seeds`` is a count of seeds from ``seed_start``, or a list of the seeds themselves. ``out`` is the results
    folder. ``threads`` is the torch thread count of each run (default:
    the cores divided among the processes), so a serial and a parallel command with equal
    ``threads`` give identical records. ``n_jobs`` and ``batch_seeds`` may be ``"auto"``
    (:mod:`gzslbench.execution.planning` picks them, as the CLI does by default). ``backend``
    "dask" runs on a Dask cluster, at ``scheduler`` when given.
    """
    n_jobs, batch_seeds = check_execution(
        seeds,
        seed_start,
        out,
        cores=cpu_count(),
        n_jobs=n_jobs,
        threads=threads,
        batch_seeds=batch_seeds,
        backend=backend,
        scheduler=scheduler,
    )
    seed_values = run_seeds(seeds, seed_start)
    loaded: dict[tuple, GZSLData] = {}
    specs = plan_specs(
        [method] if isinstance(method, str) else list(method),
        [dataset] if isinstance(dataset, str) else list(dataset),
        seed_values,
        overrides=as_mapping(overrides),
        config_file=config_file,
        options=as_mapping(options),
        data_dir=data_dir,
        device=device,
        validate=validate,
        save_scores=save_scores,
        loaded=loaded,
        save_model=save_model,
    )
    if not quiet:
        note_plan(specs, len(seed_values), data_dir)
    return run_specs(
        specs,
        out,
        n_jobs=n_jobs,
        threads=threads,
        batch_seeds=batch_seeds,
        force=force,
        quiet=quiet,
        loaded=loaded,
        backend=backend,
        scheduler=scheduler,
    )
