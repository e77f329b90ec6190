"""How a run was executed is recorded, repeated by its replay command, and kept apart in tables and resume."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.core.environment import arithmetic_env, assignments, source_digest
from gzslbench.core.errors import GZSLBenchError
from gzslbench.execution.execute import SOURCE_ROOTS
from gzslbench.results.record import code_label
from gzslbench.results.store import load_results, mixed_provenance

TINY_ACMR = {"epochs": 2, "cls_epochs": 2}


@pytest.fixture(scope="module")
def batched_and_single(tmp_path_factory):
    out = tmp_path_factory.mktemp("prov")
    batched = gzslbench.run(
        "acmr", "synth-tiny", seeds=2, out=out / "batched", batch_seeds=2, threads=1, overrides=TINY_ACMR
    )
    single = gzslbench.run(
        "acmr", "synth-tiny", seeds=2, out=out / "single", batch_seeds=1, threads=1, overrides=TINY_ACMR
    )
    return out, batched, single


def test_a_batched_record_says_how_it_was_executed(batched_and_single):
    _, batched, single = batched_and_single
    assert [r["execution"]["batch_position"] for r in batched] == [0, 1]
    assert all(
        r["execution"] | {"batch_position": 0}
        == {
            "device": "cpu",
            "threads": 1,
            "batch_seeds": 2,
            "batch_position": 0,
            "unit_seeds": [0, 1],
            "flush_denormals": True,
            "cuda_graphs": False,
        }
        for r in batched
    )
    assert [r["execution"]["batch_seeds"] for r in single] == [1, 1]
    assert batched[1]["config_hash"] == single[1]["config_hash"]  # the same run, executed otherwise
    assert "--batch-seeds 2" in batched[1]["command"] and "--batch-seeds 1" in single[1]["command"]


def test_the_replay_command_repeats_the_batch_and_its_metrics(batched_and_single, tmp_path):
    out, batched, _ = batched_and_single
    args = cli_args(batched[1]["command"])
    assert args[args.index("--results") + 1] == str((out / "batched").resolve())
    args[args.index("--results") + 1] = str(tmp_path)  # replayed elsewhere, to compare with the original
    args.append("-q")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    (replayed,) = [r for r in load_json_records(tmp_path) if r["seed"] == 1]
    assert replayed["metrics"] == batched[1]["metrics"]
    assert replayed["execution"] == batched[1]["execution"]


def test_the_replay_of_a_lost_batched_record_trains_the_batch_again(batched_and_single, tmp_path):
    """With its sibling's record finished, the lost seed must not train alone: that changes its last digits."""
    out, batched, _ = batched_and_single
    copy = tmp_path / "copy"
    shutil.copytree(out / "batched", copy)
    (lost,) = (copy / "runs").rglob("seed-1.json")
    lost.unlink()
    args = cli_args(batched[1]["command"])
    args[args.index("--results") + 1] = str(copy)
    result = CliRunner().invoke(cli, [*args, "-q"])
    assert result.exit_code == 0, result.output
    replayed = {r["seed"]: r for r in load_json_records(copy)}
    assert replayed[1]["execution"] == batched[1]["execution"] and replayed[1]["metrics"] == batched[1]["metrics"]
    assert replayed[0]["metrics"] == batched[0]["metrics"]  # the sibling, rewritten with the same numbers


def test_a_batch_resumed_around_a_finished_seed_replays_as_it_ran(tmp_path):
    """Seed 1 finished alone, then seeds 0 and 2 trained as one batch: their command names both seeds (not a range),
    and repeats their numbers; trained alone, they would differ in the last digits."""
    out = tmp_path / "resumed"
    gzslbench.run("acmr", "synth-tiny", seeds=1, seed_start=1, out=out, batch_seeds=1, threads=1, overrides=TINY_ACMR)
    records = gzslbench.run("acmr", "synth-tiny", seeds=3, out=out, batch_seeds=3, threads=1, overrides=TINY_ACMR)
    batched = records[2]
    assert batched["execution"]["unit_seeds"] == [0, 2]
    args = cli_args(batched["command"])
    assert args[args.index("--seed") : args.index("--seed") + 4] == ["--seed", "0", "--seed", "2"]
    assert "--seeds" not in args and "--seed-start" not in args
    args[args.index("--results") + 1] = str(tmp_path / "replayed")
    result = CliRunner().invoke(cli, [*args, "-q"])
    assert result.exit_code == 0, result.output
    replayed = {r["seed"]: r for r in load_json_records(tmp_path / "replayed")}
    assert sorted(replayed) == [0, 2]
    assert replayed[2]["execution"] == batched["execution"] and replayed[2]["metrics"] == batched["metrics"]
    alone = gzslbench.run(
        "acmr",
        "synth-tiny",
        seeds=1,
        seed_start=2,
        out=tmp_path / "alone",
        batch_seeds=1,
        threads=1,
        overrides=TINY_ACMR,
    )
    assert alone[0]["history"] != batched["history"]  # what the old command, the seed alone, gave


def test_the_api_runs_a_list_of_seeds(tmp_path):
    records = gzslbench.run("acmr", "synth-tiny", seeds=[2, 0], out=tmp_path, batch_seeds=1, overrides=TINY_ACMR)
    assert [r["seed"] for r in records] == [2, 0] and all(r["status"] == "ok" for r in records)
    with pytest.raises(GZSLBenchError, match="not both"):
        gzslbench.run("acmr", "synth-tiny", seeds=[1], seed_start=3, out=tmp_path)


def cli_args(command):
    """A replay command's arguments after ``gzslbench``: ``run ...`` (the math-library settings of the environment that
    ran it, such as ``OPENBLAS_CORETYPE=Haswell``, may come first)."""
    words = shlex.split(command)
    return words[words.index("gzslbench") + 1 :]


def load_json_records(out):
    return [json.loads(p.read_text()) for p in sorted((out / "runs").rglob("seed-*.json"))]


def test_a_cell_mixing_batched_and_single_seeds_is_named(batched_and_single, tmp_path):
    out, _, _ = batched_and_single
    mixed = tmp_path / "mixed"
    for seed, source in ((0, "batched"), (1, "single")):
        (path,) = (out / source / "runs").rglob(f"seed-{seed}.json")
        target = mixed / path.relative_to(out / source)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    notes = mixed_provenance(load_results(mixed))
    settings = "".join(f", {assignment}" for assignment in assignments(arithmetic_env()))  # e.g. MKL_CBWR in CI
    executions = f"cpu, alone{settings}; cpu, batched{settings}"
    assert notes == [f"acmr on synth-tiny [{path.parent.name}]: seeds from 2 executions: {executions}"]
    shown = CliRunner().invoke(cli, ["table", "--results", str(mixed)])
    assert "2 executions" in shown.output
    strict = CliRunner().invoke(cli, ["table", "--results", str(mixed), "--strict"])
    assert strict.exit_code == 2


def test_a_record_of_another_protocol_version_is_neither_resumed_nor_mixed_in_silently(tmp_path):
    records = gzslbench.run("ale", "synth-tiny", seeds=2, out=tmp_path)
    path = next((tmp_path / "runs").rglob("seed-1.json"))
    old = json.loads(path.read_text())
    old["protocol"]["version"] = 1
    path.write_text(json.dumps(old))
    notes = mixed_provenance(load_results(tmp_path))
    assert any("2 protocol versions: 1; 2" in n for n in notes)
    with pytest.raises(GZSLBenchError, match="protocol version 1, now 2"):
        gzslbench.run("ale", "synth-tiny", seeds=2, out=tmp_path)
    again = gzslbench.run("ale", "synth-tiny", seeds=2, out=tmp_path, force=True)
    assert again[1]["protocol"]["version"] == 2 and again[1]["metrics"] == records[1]["metrics"]


def test_the_source_digest_tells_apart_edits_that_one_dirty_commit_hides(tmp_path):
    root = tmp_path / "package"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")

    def digest() -> str:
        source_digest.cache_clear()
        return source_digest((str(root),))

    first = digest()
    (root / "a.py").write_text("x = 2\n")
    edited = digest()
    (root / "sub" / "new.py").write_text("")  # an untracked module, which `git status -uno` does not see
    added = digest()
    assert len({first, edited, added}) == 3
    dirty = {"code": {"version": "1", "git_commit": "c1", "git_dirty": True}}
    labels = {code_label({"code": dirty["code"] | {"source": value}}) for value in (first, edited)}
    assert labels == {f"1+c1-dirty src {first[:8]}", f"1+c1-dirty src {edited[:8]}"}
    assert code_label({"code": {"version": "1", "git_commit": "c1", "git_dirty": False, "source": first}}) == "1+c1"


def test_a_record_holds_the_digest_of_the_code_that_ran(tmp_path):
    (record,) = gzslbench.run("eszsl", "synth-tiny", out=tmp_path)
    assert record["code"]["source"] == source_digest(SOURCE_ROOTS) and len(record["code"]["source"]) == 16
