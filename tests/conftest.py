"""Shared fixtures: a tiny hand-built dataset, a results folder, the real xlsa17 split files, the CLI."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gzslbench.cli import cli
from gzslbench.core.environment import torch_threads
from gzslbench.data.dataset import GZSLData, validate
from gzslbench.execution.process import CUBLAS_WORKSPACE

# The tests run gzslbench in this process; on a GPU they compare runs bit for bit, as gzslbench's own
# processes would run them (cuBLAS reads this before CUDA's first product).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)

SHARED_XLSA17 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xlsa17-att"


@pytest.fixture(autouse=True, scope="session")
def no_layout_measurements(tmp_path_factory):
    """Runs in tests take the unmeasured plan (one seed after another) and never write the user's cache.

    Measuring layouts spawns processes for seconds per new config; tests/test_layouts.py measures
    on purpose, with its own cache folder. Subprocesses inherit both variables.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GZSLBENCH_LAYOUT", "sequential")
        patch.setenv("GZSLBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def make_tiny_data(seed: int = 0, n_seen: int = 6, n_unseen: int = 3, per_class: int = 30, dim: int = 16):
    """A small, easy GZSLData: features are a linear image of class attributes plus noise."""
    rng = np.random.default_rng(seed)
    n_classes = n_seen + n_unseen
    att = rng.random((n_classes, 8)).astype(np.float32)
    proj = rng.normal(size=(8, dim)).astype(np.float32)
    labels = np.repeat(np.arange(n_classes), per_class)
    feats = (att[labels] @ proj + 0.1 * rng.normal(size=(len(labels), dim))).astype(np.float32)
    idx = np.arange(len(labels))
    seen_idx = idx[labels < n_seen]
    test_seen = np.sort(np.concatenate([seen_idx[labels[seen_idx] == c][: per_class // 5] for c in range(n_seen)]))
    trainval = np.setdiff1d(seen_idx, test_seen)
    train_classes_mask = labels[trainval] < n_seen - 2
    return validate(
        GZSLData(
            name="tiny",
            features=feats,
            labels=labels.astype(np.int64),
            attributes=att,
            trainval=trainval,
            test_seen=test_seen,
            test_unseen=idx[labels >= n_seen],
            train=trainval[train_classes_mask],
            val=trainval[~train_classes_mask],
            defaults_from="cub",
            source="tests.conftest.make_tiny_data",
        ),
        "tiny",
    )


@pytest.fixture
def one_torch_thread():
    """Small networks run fastest on one thread, the more so on a shared CPU (as the protocol runs them);
    the caller's thread count comes back afterwards. Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    with torch_threads(1):
        yield


@pytest.fixture
def tiny_data() -> GZSLData:
    return make_tiny_data()


@pytest.fixture
def shared_xlsa17() -> Path:
    """The real xlsa17 att_splits.mat folder beside the checkout; the test skips when it is absent."""
    if not SHARED_XLSA17.is_dir():
        pytest.skip("real xlsa17 split files (../shared/data/xlsa17-att) are not present")
    return SHARED_XLSA17


def write_record(out: Path, method: str, dataset: str, seed: int, H: float, U: float, S: float, **extra) -> dict:
    """Write one run record JSON the way the runner lays it out; ``extra`` overrides record keys."""
    import json

    from gzslbench.results.record import SCHEMA_VERSION

    record = {
        "schema_version": SCHEMA_VERSION,
        "method": method,
        "dataset": dataset,
        "seed": seed,
        "config_hash": extra.pop("config_hash", "cfg0"),
        "config": {},
        "dataset_options": {},
        "status": "ok",
        "error": None,
        "metrics": {
            "last": {"epoch": 10, "U": U, "S": S, "H": H},
            "oracle": {"epoch": 7, "U": U + 1.0, "S": S + 1.0, "H": H + 1.0},
        },
        "history": {"train": [], "test": []},
        **extra,
    }
    path = out / "runs" / dataset / method / record["config_hash"] / f"seed-{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


@pytest.fixture
def paper_results(tmp_path) -> Path:
    """Records of acmr and cada-vae on two synthetic datasets, a 1-seed acmr on real `cub`, two dual-vae
    seeds, and one failed cada-vae run on synth-sun. H values (last mode):

    synth-cub: acmr 40, 42, 44 (mean 42.0, std 2.0); cada-vae 38, 39, 40 (39.0, 1.0); dual-vae 30, 31.
    synth-sun: acmr 20, 22 (21.0, 1.41); cada-vae 25 (1 seed) + 1 failed.  cub: acmr 54.0 (1 seed).
    """
    out = tmp_path / "results"
    for seed, h in enumerate([40.0, 42.0, 44.0]):
        write_record(out, "acmr", "synth-cub", seed, h, 30.0 + seed, 60.0)
    for seed, h in enumerate([38.0, 39.0, 40.0]):
        write_record(out, "cada-vae", "synth-cub", seed, h, 30.0, 50.0 + seed)
    for seed, h in enumerate([30.0, 31.0]):
        write_record(out, "dual-vae", "synth-cub", seed, h, 20.0, 50.0, config={"use_iem": False, "use_vsa": False})
    for seed, h in enumerate([20.0, 22.0]):
        write_record(out, "acmr", "synth-sun", seed, h, 15.0, 30.0)
    write_record(out, "cada-vae", "synth-sun", 0, 25.0, 20.0, 30.0)
    write_record(out, "cada-vae", "synth-sun", 1, 0.0, 0.0, 0.0, status="failed", error="TrainingDiverged: nan")
    write_record(out, "acmr", "cub", 0, 54.0, 50.0, 58.0)
    return out


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    """Call the CLI in ``tmp_path`` (arguments as strings), exceptions propagating to the test."""
    monkeypatch.chdir(tmp_path)
    cli_runner = CliRunner()
    return lambda *args: cli_runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(result, exit_code: int = 2) -> str:
    """The command's single ``error:`` line, after checking it exited with ``exit_code`` and printed no traceback."""
    assert result.exit_code == exit_code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]
