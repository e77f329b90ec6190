"""The command line end to end on the built-in synthetic data: run, resume, table, errors."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from dataclasses import replace
from functools import partial

import click
import pytest
import torch
from click.testing import CliRunner

import gzslbench
from gzslbench.cli import cli
from gzslbench.cli._group import COMMANDS
from gzslbench.core.environment import with_arithmetic_env
from gzslbench.execution import execute as runner


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_runner = CliRunner()

    def call(*args: str):
        return cli_runner.invoke(cli, list(args), catch_exceptions=False)

    return call


# The commands that write run records, each at its smallest.
RECORD_WRITING_COMMANDS = pytest.mark.parametrize(
    "command",
    [
        ["run", "-m", "eszsl", "-d", "synth-tiny"],
        ["sweep", "-m", "eszsl", "-d", "synth-tiny", "--grid", "gamma=[10]"],
        ["tune", "-m", "eszsl", "-d", "synth-tiny", "--grid", "gamma=[10]"],
    ],
    ids=["run", "sweep", "tune"],
)


def _records(root):
    return sorted((root / "results" / "runs").rglob("seed-*.json"))


def test_run_writes_one_record_per_seed_and_table_aggregates(invoke, tmp_path):
    result = invoke("run", "--method", "ale", "--dataset", "synth-tiny", "--seeds", "3", "-q")
    assert result.exit_code == 0, result.output
    paths = _records(tmp_path)
    assert [p.name for p in paths] == ["seed-0.json", "seed-1.json", "seed-2.json"]
    record = json.loads(paths[0].read_text())
    assert record["status"] == "ok" and record["config"] == gzslbench.get_method("ale").defaults
    assert set(record["metrics"]) == {"last", "oracle"}
    assert record["metrics"]["last"]["H"] > 20  # ALE learns synth-tiny (chance H is near 0)
    assert record["env"]["torch"] and record["timings"]["total_s"] > 0
    assert record["env"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()  # e.g. AVX2 or AVX512
    assert record["command"].startswith(with_arithmetic_env("gzslbench run"))  # after this machine's math settings
    assert paths[0].parent.name == record["config_hash"]
    table = invoke("table")
    assert table.exit_code == 0
    assert "TINY (synthetic)" in table.output and "±" in table.output and "| ALE" in table.output
    latex = invoke("table", "--format", "latex")
    assert "\\pm" in latex.output and "\\begin{tabular}" in latex.output
    csv = invoke("table", "--format", "csv")
    assert csv.output.splitlines()[0].startswith("method,dataset,config_hash,U_mean")


def test_rerun_skips_finished_and_force_reruns(invoke, tmp_path):
    invoke("run", "-m", "eszsl", "-d", "synth-tiny", "--seeds", "2", "-q")
    first = {p: p.stat().st_mtime_ns for p in _records(tmp_path)}
    invoke("run", "-m", "eszsl", "-d", "synth-tiny", "--seeds", "2", "-q")
    assert {p: p.stat().st_mtime_ns for p in _records(tmp_path)} == first
    invoke("run", "-m", "eszsl", "-d", "synth-tiny", "--seeds", "2", "-q", "--force")
    assert all(p.stat().st_mtime_ns != first[p] for p in _records(tmp_path))


def test_set_changes_the_config_folder_and_the_record(invoke, tmp_path):
    invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q")
    invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q", "--set", "gamma=10")
    records = [json.loads(p.read_text()) for p in _records(tmp_path)]
    assert sorted(r["config"]["gamma"] for r in records) == [10.0, 1000.0]
    assert len({r["config_hash"] for r in records}) == 2
    table = invoke("table")
    assert "ESZSL [" in table.output  # two configs of one method are told apart


def test_val_mode_is_recorded(invoke, tmp_path):
    result = invoke("run", "-m", "eszsl", "-d", "synth-tiny", "-q", "--val")
    assert result.exit_code == 0, result.output
    record = json.loads(_records(tmp_path)[0].read_text())
    assert set(record["metrics"]) == {"last", "val", "oracle"} and record["history"]["val"]
    assert "TEST set" in record["selection"]["oracle"]
    assert "val" in invoke("table", "--mode", "val").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "-m", "acrm", "-d", "synth-tiny"], "Did you mean: acmr"),
        (["run", "-m", "eszsl", "-d", "synth-tny"], "Did you mean: synth-tiny"),
        (["run", "-m", "eszsl", "-d", "synth-tiny", "--set", "gama=1"], "Did you mean: gamma"),
        (["run", "-m", "eszsl", "-d", "synth-tiny", "--set", "gamma=abc"], "expected a number"),
        (["run", "-m", "eszsl", "-d", "synth-tiny", "-D", "scale=2"], "scale"),
        (["run", "-m", "acmr", "-d", "synth-tiny", "--set", "reparam_scale=foo"], "'reparam_scale' = 'foo'"),
        (["run", "-m", "acmr", "-d", "synth-tiny", "--set", "kl_schedule=[1,2]"], "kl_schedule"),
        (["run", "-m", "eszsl", "-d", "synth-tiny", "--device", "tpu"], "tpu"),
        (["run", "-m", "eszsl", "-d", "cub", "--data-dir", "nowhere"], "nowhere"),
        (["run", "-m", "eszsl", "-d", "synth-tiny", "--config", "missing.toml"], "missing.toml"),
        (["table", "--results", "empty"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_failed_run_is_recorded_and_other_seeds_survive(invoke, tmp_path, monkeypatch):
    """A method that blows up on one seed leaves a 'failed' record; the others finish; exit code 1."""
    original = runner.execute

    def flaky(specs, *args, **kwargs):
        specs = [replace(s, config={**s.config, "lr": float("nan")}) if s.seed == 1 else s for s in specs]
        return original(specs, *args, **kwargs)

    monkeypatch.setattr(runner, "execute", flaky)
    result = invoke("run", "-m", "ale", "-d", "synth-tiny", "--seeds", "3", "-q", "--n-jobs", "1")
    assert result.exit_code == 1
    statuses = [json.loads(p.read_text())["status"] for p in _records(tmp_path)]
    assert statuses.count("ok") == 2


def test_interrupt_keeps_finished_runs_and_resumes(invoke, tmp_path, monkeypatch):
    """Ctrl-C during the second seed: the first record stays, no partial file, the rerun finishes the rest."""
    original = runner.execute

    def interrupted(specs, *args, **kwargs):
        if any(s.seed == 1 for s in specs):
            raise KeyboardInterrupt
        return original(specs, *args, **kwargs)

    monkeypatch.setattr(runner, "execute", interrupted)
    result = invoke("run", "-m", "ale", "-d", "synth-tiny", "--seeds", "3", "-q", "--n-jobs", "1")
    assert result.exit_code == 130 and "interrupted" in result.output
    assert [p.name for p in _records(tmp_path)] == ["seed-0.json"]
    assert not list((tmp_path / "results").rglob("*.tmp"))
    monkeypatch.setattr(runner, "execute", original)
    assert invoke("run", "-m", "ale", "-d", "synth-tiny", "--seeds", "3", "-q").exit_code == 0
    assert len(_records(tmp_path)) == 3


def test_list_and_config_commands(invoke):
    listed = invoke("list", "methods")
    assert listed.exit_code == 0 and "eszsl" in listed.output and "closed-form" in listed.output
    assert "synth-cub" in invoke("list", "datasets", "synth-*").output
    shown = invoke("config", "-m", "eszsl", "-d", "synth-cub", "--set", "lam=2")
    assert "lam = 2.0" in shown.output and shown.output.splitlines()[1].endswith("# > 0")
    assert shown.output.splitlines()[-1] == "# dataset options of synth-cub (-D KEY=VALUE), defaults: scale=1.0, seed=0"


def test_python_api_mirrors_the_cli(tmp_path):
    records = gzslbench.run("ale", "synth-tiny", seeds=2, out=tmp_path)
    assert [r["seed"] for r in records] == [0, 1] and all(r["status"] == "ok" for r in records)
    frame = gzslbench.load_results(tmp_path)
    assert set(frame["mode"]) == {"last", "oracle"} and len(frame) == 4


def test_parallel_seeds_with_joblib(tmp_path):
    records = gzslbench.run("eszsl", "synth-tiny", seeds=2, out=tmp_path, n_jobs=2, force=True)
    assert all(r["status"] == "ok" for r in records)
    serial = gzslbench.run("eszsl", "synth-tiny", seeds=2, out=tmp_path / "serial")
    assert [r["metrics"] for r in records] == [r["metrics"] for r in serial]


def test_real_xlsa17_folder_end_to_end(invoke, tmp_path, shared_xlsa17, monkeypatch):
    """`run -d cub --data-dir` on real split files (generated features); broken or missing files: one line."""
    from test_xlsa17 import real_folder

    monkeypatch.setenv("GZSLBENCH_CACHE", str(tmp_path / "cache"))
    folder = real_folder(shared_xlsa17, tmp_path / "data", "CUB")
    result = invoke("run", "-m", "eszsl", "-d", "cub", "--data-dir", str(tmp_path / "data"), "--seeds", "1", "-q")
    assert result.exit_code == 0, result.output
    record = json.loads(_records(tmp_path)[0].read_text())
    assert record["data"]["n_seen"] == 150 and record["data"]["n_unseen"] == 50
    assert record["data_dir"] == str((tmp_path / "data").resolve())
    (folder / "res101.mat").write_bytes(b"MATLAB 5.0 MAT-file, garbage")
    broken = invoke("run", "-m", "eszsl", "-d", "cub", "--data-dir", str(tmp_path / "data"), "--force", "-q")
    assert broken.exit_code == 2 and len(broken.output.strip().splitlines()) == 1 and "res101.mat" in broken.output
    (folder / "att_splits.mat").unlink()
    missing = invoke("run", "-m", "eszsl", "-d", "cub", "--data-dir", str(tmp_path / "data"), "-q")
    assert missing.exit_code == 2 and len(missing.output.strip().splitlines()) == 1
    assert "att_splits.mat" in missing.output


@RECORD_WRITING_COMMANDS
def test_data_dir_given_for_a_generated_dataset_is_noted_and_not_recorded(invoke, tmp_path, command):
    result = invoke(*command, "--data-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 0, result.output
    note = "note: synth-tiny is generated, not read from disk: the data folder given (--data-dir) is not used"
    assert note in result.stderr.splitlines()
    records = [json.loads(path.read_text()) for path in _records(tmp_path)]
    assert records and all(record["data_dir"] is None for record in records)
    before = {path: path.read_bytes() for path in _records(tmp_path)}
    again = invoke(*command)  # without --data-dir: the same runs, so resumed, not run again
    assert again.exit_code == 0 and {path: path.read_bytes() for path in _records(tmp_path)} == before


@RECORD_WRITING_COMMANDS
def test_results_folder_option_and_its_deprecated_out_alias(invoke, tmp_path, command):
    """--results names the results folder; --out still works for one release, with one warning line."""
    given = invoke(*command, "-q", "--results", "given")
    assert given.exit_code == 0, given.output
    assert list((tmp_path / "given" / "runs").rglob("seed-0.json")) and given.stderr == ""

    legacy = invoke(*command, "-q", "--out", "legacy")
    assert legacy.exit_code == 0, legacy.output
    assert legacy.stderr == "warning: --out is deprecated for the results folder; use --results\n"
    assert list((tmp_path / "legacy" / "runs").rglob("seed-0.json"))
    assert "under legacy/runs" in legacy.stdout
    assert not (tmp_path / "results").exists()

    both = invoke(*command, "-q", "--out", "a", "--results", "b")
    assert both.exit_code == 2 and both.stderr.startswith("error: --out is the deprecated name of --results")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


CTRL_C_WHILE_TORCH_LOADS = """
import sys

class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            raise KeyboardInterrupt

sys.meta_path.insert(0, CtrlC())
sys.argv = ["gzslbench", "list", "methods"]
from gzslbench.cli import main
main()
"""


def test_ctrl_c_while_the_commands_load_is_one_line_not_a_traceback():
    """A command loads torch (seconds): Ctrl-C then must be handled, not a traceback of the import."""
    out = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_TORCH_LOADS], capture_output=True, text=True)
    assert (out.returncode, out.stderr) == (130, "interrupted\n")


LOADED_AFTER_VERSION = """
import sys
from click.testing import CliRunner
from gzslbench.cli import cli

result = CliRunner().invoke(cli, ["--version"])
assert result.exit_code == 0 and "version" in result.output, result.output
print("torch" in sys.modules)
"""


def test_version_answers_without_loading_torch():
    """Each command's module loads when it is called, so ``--version`` needs no torch (seconds)."""
    out = subprocess.run([sys.executable, "-c", LOADED_AFTER_VERSION], capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "False\n"), out.stderr


def test_every_command_is_named_where_it_loads_with_its_help():
    """A command missing from COMMANDS would be absent from the CLI until another import registered it, and
    the listing of ``--help`` is written from COMMANDS: it must equal what click writes from the commands."""
    for module, _ in COMMANDS.values():
        importlib.import_module(f"gzslbench.cli.{module}")
    assert sorted(cli.commands) == sorted(COMMANDS)
    for name, (_, summary) in COMMANDS.items():
        assert cli.commands[name].help.split("\n\n")[0] == summary, name
        result = CliRunner().invoke(cli, [name, "--help"])
        assert result.exit_code == 0 and f"Usage: cli {name}" in result.output, (name, result.output)
    context = click.Context(cli, info_name="cli")
    listings = []
    for format_commands in (cli.format_commands, partial(click.Group.format_commands, cli)):  # ours, click's
        formatter = context.make_formatter()
        format_commands(context, formatter)
        listings.append(formatter.getvalue())
    assert listings[0] == listings[1] and "tune " in listings[0]
