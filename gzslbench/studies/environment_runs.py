"""Runs of a check case in a child Python process whose environment adds variables.

Math libraries read some settings once, when they load: MKL's reproducibility mode
(``MKL_CBWR=COMPATIBLE`` rounds as a conservative CPU would) cannot be switched inside a process
that has already multiplied matrices. A suite's ``[noise] env`` therefore runs its noise runs in a
fresh interpreter started with those variables (:func:`run_case_in_env`); its worker processes
inherit them. The child is this module run as a script: it reads the job from a JSON file and
writes the run records back to another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gzslbench.core.errors import GZSLBenchError

if TYPE_CHECKING:
    from gzslbench.studies.check import Case


def run_case_in_env(
    case: Case,
    seeds: Sequence[int],
    out: str | Path,
    threads: int | None,
    device: str,
    jobs: int,
    env: Mapping[str, str],
) -> list[dict[str, Any]]:
    """:func:`~gzslbench.studies.check.run_case` in a child process whose environment adds ``env``.

    A failed child is a one-line :class:`~gzslbench.core.errors.GZSLBenchError` with the child's
    last line of output; the records it finished are in ``out`` as for any run.
    """
    job = {
        "case": asdict(case),
        "seeds": list(seeds),
        "out": str(out),
        "threads": threads,
        "device": device,
        "jobs": jobs,
    }
    with tempfile.TemporaryDirectory(prefix="gzslbench-env-run-") as tmp:
        job_file, records_file = Path(tmp) / "job.json", Path(tmp) / "records.json"
        job_file.write_text(json.dumps(job))
        command = [sys.executable, "-m", __name__, str(job_file), str(records_file)]
        child = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=False)
        if child.returncode != 0 or not records_file.exists():
            lines = (child.stderr or child.stdout).strip().splitlines() or [f"exit status {child.returncode}"]
            settings = " ".join(f"{k}={v}" for k, v in env.items())
            raise GZSLBenchError(f"runs of case {case.key} with {settings} failed: {lines[-1]}")
        return json.loads(records_file.read_text())


def main(job_file: str, records_file: str) -> None:
    """The child: run the job in ``job_file`` and write its records to ``records_file``."""
    from gzslbench.studies.check import Case, run_case

    job = json.loads(Path(job_file).read_text())
    fields = job["case"]
    case = Case(**{**fields, "seeds": tuple(fields["seeds"]), "noise_seeds": tuple(fields["noise_seeds"])})
    records = run_case(case, job["seeds"], job["out"], job["threads"], job["device"], job["jobs"])
    Path(records_file).write_text(json.dumps(records))  # NaN kept: a metric a method does not report


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except GZSLBenchError as exc:
        sys.exit(f"error: {exc}")
