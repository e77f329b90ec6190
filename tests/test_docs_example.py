"""The documentation's worked example (docs/examples/add_method.py, shown verbatim in docs/adding.md) runs.

It runs in a subprocess, as a reader would run it, so that its registrations do not leak into
the registries of the other tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import gzslbench

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "add_method.py"

# Runs the example as a script (it registers its method and dataset, runs them and prints U / S / H),
# then reports what a reader relies on as one JSON line.
DRIVER = """
import json, runpy, sys
import gzslbench
runpy.run_path(sys.argv[1], run_name="__main__")
report = {
    "methods": gzslbench.list_methods("example-*"),
    "datasets": gzslbench.list_datasets("example-*"),
    "n_classes": int(gzslbench.load_dataset("example-blobs").n_classes),
    "reads_data_dir": gzslbench.DATASETS.get("example-blobs").reads_data_dir,
}
parallel = gzslbench.run(["example-prototype", "eszsl"], "example-blobs", n_jobs=2, out="jobs")
report["parallel"] = sorted((record["method"], record["status"]) for record in parallel)
try:
    gzslbench.run("example-prototype", "example-blobs", overrides={"lam": -1.0})
except Exception as exc:
    report["refused"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    folder = tmp_path_factory.mktemp("docs-example")
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(EXAMPLE)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return folder, json.loads(lines[-1]), "\n".join(lines[:-1])


def test_example_registers_its_method_and_dataset(example_run: tuple[Path, dict, str]) -> None:
    _, report, _ = example_run
    assert report["methods"] == ["example-prototype"]
    assert report["datasets"] == ["example-blobs"]
    assert report["reads_data_dir"] is False  # generated, as docs/adding.md asks such an adapter to say


def test_methods_registered_by_a_script_run_in_worker_processes(example_run: tuple[Path, dict, str]) -> None:
    """The workers of ``n_jobs=2`` are fresh processes: the script's registrations must reach them."""
    _, report, _ = example_run
    assert report["parallel"] == [["eszsl", "ok"], ["example-prototype", "ok"]]


def test_example_run_beats_chance(example_run: tuple[Path, dict, str]) -> None:
    folder, report, printed = example_run
    frame = gzslbench.load_results(folder / "results")
    rows = frame[(frame["method"] == "example-prototype") & (frame["mode"] == "last")]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["dataset"] == "example-blobs"
    assert row["status"] == "ok"
    # Guessing uniformly over all classes gets 1/C of each class right: U = S = H = 100 / C.
    chance = 100.0 / report["n_classes"]
    assert row["U"] > 4 * chance and row["S"] > 4 * chance
    assert row["H"] > 4 * chance
    assert f"H {row['H']:.1f}" in printed  # the script printed the record's numbers


def test_example_config_check_refuses_bad_values(example_run: tuple[Path, dict, str]) -> None:
    _, report, _ = example_run
    assert "lam must be > 0" in report.get("refused", "")
