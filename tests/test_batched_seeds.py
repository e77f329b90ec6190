"""Seeds trained as one batched computation (``--batch-seeds``) against the same seeds run one by one."""

from __future__ import annotations

import signal
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_data
from test_vae_methods import TINY, tiny_config

from gzslbench.cli import cli
from gzslbench.core.errors import GZSLBenchError
from gzslbench.core.files import write_json_atomic
from gzslbench.core.registry import METHODS
from gzslbench.execution import execute, process
from gzslbench.execution.api import run
from gzslbench.execution.planning import seed_batches
from gzslbench.execution.spec import RunSpec
from gzslbench.methods.base import RunContext, TrainingDiverged
from gzslbench.protocol.splits import make_split
from gzslbench.results.store import iter_records, record_path

SEEDS = (0, 1, 2)
CPU = torch.device("cpu")


def numeric(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k not in ("stage", "epoch")}


@pytest.mark.parametrize("name", ["acmr", "cada-vae"])
def test_batched_seeds_follow_their_single_runs(name: str) -> None:
    split = make_split(make_tiny_data(), "test")
    config = tiny_config(name)
    method = METHODS.get(name)()
    singles = []
    for seed in SEEDS:
        ctx = RunContext(seed=seed, device=CPU)
        singles.append((ctx, [entry for (entry,) in method.predict_seeds(split, config, [ctx])]))
    ctxs = [RunContext(seed=seed, device=CPU) for seed in SEEDS]
    batched = list(method.predict_seeds(split, config, ctxs))

    assert len(batched) == config["cls_epochs"] and all(len(entries) == len(SEEDS) for entries in batched)
    for k, (single_ctx, single_scores) in enumerate(singles):
        assert [(r["stage"], r["epoch"]) for r in ctxs[k].history] == [
            (r["stage"], r["epoch"]) for r in single_ctx.history
        ]
        for mine, alone in zip(ctxs[k].history, single_ctx.history, strict=True):
            assert numeric(mine) == pytest.approx(numeric(alone), rel=1e-4), (k, mine["stage"], mine["epoch"])
        for entries, alone in zip(batched, single_scores, strict=True):
            assert entries[k].epoch == alone.epoch
            torch.testing.assert_close(entries[k].seen, alone.seen, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(entries[k].unseen, alone.unseen, rtol=1e-4, atol=1e-4)
    # Each seed trained its own model: the seeds' first VAE losses differ.
    first = [ctx.history[0]["total"] for ctx in ctxs]
    assert len(set(first)) == len(SEEDS)


def _records(out: Any) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["config_hash"], r["seed"]): r for r in iter_records(out)}


def test_batched_records_match_single_records(tmp_path: Any) -> None:
    args: dict[str, Any] = dict(
        seeds=3, overrides=TINY, device="cpu", threads=1, validate=True, save_model=True, save_scores=True
    )
    run("acmr", "synth-tiny", out=tmp_path / "single", **args)
    run("acmr", "synth-tiny", out=tmp_path / "batched", batch_seeds=3, **args)
    single, batched = _records(tmp_path / "single"), _records(tmp_path / "batched")

    assert single.keys() == batched.keys() and len(batched) == 3
    for key, alone in single.items():
        mine = batched[key]
        assert mine["status"] == alone["status"] == "ok"
        assert set(mine) == set(alone)
        assert set(mine["timings"]) - set(alone["timings"]) == {"batch_seeds"} and mine["timings"]["batch_seeds"] == 3
        assert mine["config"] == alone["config"]
        # The replay repeats how each was executed: the batch of three, or the seed alone.
        assert "--seeds 3 --seed-start 0" in mine["command"] and "--batch-seeds 3" in mine["command"]
        assert f"--seeds 1 --seed-start {alone['seed']}" in alone["command"] and "--batch-seeds 1" in alone["command"]
        same_run = [c.split("--threads")[1].split("--results")[0] for c in (mine["command"], alone["command"])]
        assert same_run[0] == same_run[1]
        assert set(mine["history"]) == set(alone["history"])
        for part in ("train", "val_train"):
            for a, b in zip(mine["history"][part], alone["history"][part], strict=True):
                assert numeric(a) == pytest.approx(numeric(b), rel=1e-4)
        for mode, metrics in alone["metrics"].items():
            assert mine["metrics"][mode]["epoch"] == metrics["epoch"]
            assert mine["metrics"][mode]["H"] == pytest.approx(metrics["H"], abs=0.5)
        models = [
            torch.load(
                record_path(out, r["dataset"], r["method"], r["config_hash"], r["seed"]).with_name(r["model_file"])
            )
            for out, r in ((tmp_path / "single", alone), (tmp_path / "batched", mine))
        ]
        assert models[0].keys() == models[1].keys()
        for name, weight in models[0].items():
            torch.testing.assert_close(models[1][name], weight, rtol=1e-4, atol=1e-5)
    h_single = sorted(r["metrics"]["last"]["H"] for r in single.values())
    h_batched = sorted(r["metrics"]["last"]["H"] for r in batched.values())
    assert np.allclose(h_batched, h_single, atol=0.5)


def test_a_diverging_seed_fails_alone(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log = RunContext.log

    def diverge_seed_one(self: RunContext, stage: str, epoch: int, **values: float) -> None:
        if self.seed == 1 and stage == "vae" and epoch == 2:
            raise TrainingDiverged("vae epoch 2: non-finite total")
        log(self, stage, epoch, **values)

    args: dict[str, Any] = dict(seeds=3, overrides=TINY, device="cpu", threads=1)
    run("acmr", "synth-tiny", out=tmp_path / "single", **args)
    monkeypatch.setattr(RunContext, "log", diverge_seed_one)
    run("acmr", "synth-tiny", out=tmp_path / "batched", batch_seeds=3, **args)
    single, batched = _records(tmp_path / "single"), _records(tmp_path / "batched")

    by_seed = {seed: r for (_, seed), r in batched.items()}
    assert by_seed[1]["status"] == "failed" and "non-finite total" in by_seed[1]["error"]
    assert [row["epoch"] for row in by_seed[1]["history"]["train"]] == [1]
    for key, alone in single.items():
        if key[1] != 1:
            assert batched[key]["status"] == "ok"
            assert batched[key]["metrics"]["last"]["H"] == pytest.approx(alone["metrics"]["last"]["H"], abs=0.5)


def test_seed_batches_group_only_seeds_of_batched_methods() -> None:
    def spec(method: str, seed: int, **config: Any) -> RunSpec:
        return RunSpec(method=method, dataset="synth-tiny", seed=seed, config=config)

    acmr = [spec("acmr", s) for s in range(5)]
    other = [spec("acmr", s, epochs=3) for s in range(2)]
    eszsl = [spec("eszsl", s) for s in range(3)]
    units = seed_batches([*acmr, *eszsl, *other], 2)
    assert [[(u.method, u.seed, bool(u.config)) for u in unit] for unit in units] == [
        [("acmr", 0, False), ("acmr", 1, False)],
        [("acmr", 2, False), ("acmr", 3, False)],
        [("acmr", 4, False)],
        [("eszsl", 0, False)],
        [("eszsl", 1, False)],
        [("eszsl", 2, False)],
        [("acmr", 0, True), ("acmr", 1, True)],
    ]
    assert seed_batches(acmr, 1) == [[s] for s in acmr]


def test_a_method_without_the_hook_runs_one_by_one(tmp_path: Any) -> None:
    records = run("ale", "synth-tiny", seeds=3, out=tmp_path / "batched", batch_seeds=3, threads=1)
    alone = run("ale", "synth-tiny", seeds=3, out=tmp_path / "single", threads=1)
    assert [r["status"] for r in records] == ["ok"] * 3 and [r["seed"] for r in records] == [0, 1, 2]
    assert all("batch_seeds" not in r["timings"] for r in records)
    assert [r["metrics"] for r in records] == [r["metrics"] for r in alone]


def test_batch_seeds_is_refused_on_dask(tmp_path: Any) -> None:
    with pytest.raises(GZSLBenchError, match="joblib backend only"):
        run("acmr", "synth-tiny", seeds=2, out=tmp_path, batch_seeds=2, backend="dask")


def test_cli_refuses_a_batch_below_one_seed(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", "-m", "acmr", "-d", "synth-tiny", "--batch-seeds", "0", "-q"])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1] == "error: --batch-seeds must be at least 1, got 0"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_while_a_batchs_records_are_written_waits_for_all_of_them(tmp_path, monkeypatch, signum) -> None:
    """The interrupt arrives after the first of two batched seeds' records: both are written, then it acts."""
    written = []

    def write_then_interrupt(path: Any, record: dict[str, Any]) -> None:
        write_json_atomic(path, record)
        written.append(path)
        if len(written) == 1:
            signal.raise_signal(signum)

    monkeypatch.setattr(execute, "write_json_atomic", write_then_interrupt)
    with process.sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        run("acmr", "synth-tiny", seeds=2, out=tmp_path, batch_seeds=2, threads=1, overrides=TINY)
    assert len(written) == 2
    assert sorted(r["seed"] for r in iter_records(tmp_path)) == [0, 1]
