"""Runs in a child Python process whose environment adds variables (a check suite's noise runs).

Math libraries read some settings once, when they load: MKL's reproducibility mode
(``MKL_CBWR=COMPATIBLE`` rounds as a conservative CPU would) cannot be switched inside a process
that has already multiplied matrices. A suite's ``[noise] env`` therefore runs its noise runs in a
fresh interpreter started with those variables (:func:`run_in_env`); its worker processes
inherit them. The child is this module run as a script: it reads the runs' arguments from a JSON
file and writes their records back to another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from subprocess import PIPE
from typing import Any

from gzslbench.core.environment import assignments
from gzslbench.core.errors import GZSLBenchError
from gzslbench.execution.api import run
from gzslbench.execution.process import interrupt_exit_code, set_up_own_process, sigterm_as_interrupt

STOP_TIMEOUT_S = 60.0  # how long a stopped child may take to stop its workers before it is killed


def run_in_env(calls: Sequence[Mapping[str, Any]], env: Mapping[str, str], what: str) -> list[dict[str, Any]]:
    """:func:`~gzslbench.execution.api.run` once per keyword set of ``calls``, in a child process whose
    environment adds ``env``; the records of every call, in order.

    A failed child is a one-line :class:`~gzslbench.core.errors.GZSLBenchError` naming ``what`` with
    the child's last line of output; the records it finished are in their results folder as for any run.
    """
    job = {"calls": [dict(call) for call in calls]}
    with tempfile.TemporaryDirectory(prefix="gzslbench-env-run-") as tmp:
        job_file, records_file = Path(tmp) / "job.json", Path(tmp) / "records.json"
        job_file.write_text(json.dumps(job))
        command = [sys.executable, "-m", __name__, str(job_file), str(records_file)]
        # Its own session: a terminal's Ctrl-C reaches this process only, which stops the child once.
        with subprocess.Popen(
            command, env={**os.environ, **env}, stdout=PIPE, stderr=PIPE, text=True, start_new_session=True
        ) as child:
            try:
                stdout, stderr = child.communicate()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the child stops its workers, keeps finished records
                child.send_signal(signal.SIGTERM)
                try:
                    child.communicate(timeout=STOP_TIMEOUT_S)  # reading on, so that a full pipe cannot block it
                except subprocess.TimeoutExpired:
                    child.kill()
                raise
        if child.returncode != 0 or not records_file.exists():
            lines = (stderr or stdout).strip().splitlines() or [f"exit status {child.returncode}"]
            raise GZSLBenchError(f"runs of {what} with {' '.join(assignments(env))} failed: {lines[-1]}")
        return json.loads(records_file.read_text())


def main(job_file: str, records_file: str) -> None:
    """The child: run the calls in ``job_file`` and write their records to ``records_file``.

    Set up as the command line's process is (the same runs), and stopped by SIGTERM as a command is.
    """
    set_up_own_process()
    calls = json.loads(Path(job_file).read_text())["calls"]
    with sigterm_as_interrupt():
        records = [record for call in calls for record in run(**call)]
    Path(records_file).write_text(json.dumps(records))  # NaN kept: a metric a method does not report


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except GZSLBenchError as exc:
        sys.exit(f"error: {exc}")
    except KeyboardInterrupt as exc:
        sys.exit(interrupt_exit_code(exc))
