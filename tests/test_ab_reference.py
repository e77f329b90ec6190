"""benchmarks/ab_reference.py: both sides alternated, epoch times read from output or from a run record."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "ab_reference.py"
if str(SCRIPT.parent) not in sys.path:
    sys.path.insert(0, str(SCRIPT.parent))
ab = importlib.import_module("ab_reference")


def python(code: str) -> str:
    return f"{sys.executable} -c {json.dumps(code)}"


def test_rounds_alternate_and_the_ratio_is_ours_over_reference(tmp_path, capsys):
    log = tmp_path / "order.txt"
    ours = python(f"open({str(log)!r}, 'a').write('o'); print('epoch 1.0'); print('epoch 3.0')")
    reference = python(f"open({str(log)!r}, 'a').write('r'); print('took 8.0 s')")
    argv = ["--ours", ours, "--reference", reference, "--rounds", "3", "--threads", "1"]
    argv += ["--ours-epoch", r"epoch ([0-9.]+)", "--reference-epoch", r"took ([0-9.]+) s"]
    assert ab.main(argv) == 0
    assert log.read_text() == "orroor"  # ours first in odd rounds, the reference first in even ones
    report = capsys.readouterr().out
    assert "ours / reference, epoch time (median over rounds): 0.25x" in report  # mean 2.0 over 8.0
    assert report.count("| ours |") == 3 and report.count("| reference |") == 3


def test_our_epoch_time_comes_from_the_newest_run_record(tmp_path):
    record = tmp_path / "runs" / "synth-cub" / "acmr" / "abc" / "seed-0.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"timings": {"vae_epoch_s": 2.5}}))
    assert ab.record_seconds("vae_epoch_s", ab.newest_record(tmp_path)) == (2.5, 1)
    assert ab.record_seconds("gan_epoch_s", ab.newest_record(tmp_path)) == (None, 0)
    assert ab.record_seconds("vae_epoch_s", ab.newest_record(tmp_path / "empty")) == (None, 0)
    assert ab.newest_record(tmp_path, ab.record_times(tmp_path)) is None  # written before the run began


def test_a_failing_side_is_reported_and_fails_the_script(capsys):
    assert ab.main(["--ours", python("pass"), "--reference", python("raise SystemExit(3)"), "--rounds", "1"]) == 1
    assert "reference round 1 exited 3" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--ours-timing", "vae_epoch_s"], "go together"),
        (["--reference-dir", "/no/such/folder"], "no such folder"),
    ],
)
def test_bad_options_are_one_line_errors(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        ab.parse_args(["--ours", "true", "--reference", "true", *extra])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_pattern_without_a_group_is_refused():
    with pytest.raises(SystemExit, match="needs a group"):
        ab.compile_pattern("--ours-epoch", "epoch [0-9.]+")


def test_log_dir_keeps_each_runs_output_and_our_record(tmp_path):
    results = tmp_path / "results"
    record = results / "runs" / "synth-cub" / "acmr" / "abc" / "seed-0.json"
    write = f"import pathlib; p = pathlib.Path({str(record)!r}); p.parent.mkdir(parents=True, exist_ok=True)"
    ours = python(write + "; p.write_text('{\"timings\": {\"classifier_s\": 1.5}}'); print('ours ran')")
    argv = ["--ours", ours, "--reference", python("print('CLS_S 9.0')"), "--rounds", "2"]
    argv += ["--ours-timing", "classifier_s", "--ours-results", str(results), "--log-dir", str(tmp_path / "logs")]
    assert ab.main(argv) == 0
    logs = tmp_path / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "round1-ours.json", "round1-ours.log", "round1-reference.log",
        "round2-ours.json", "round2-ours.log", "round2-reference.log",
    ]  # fmt: skip
    assert (logs / "round2-reference.log").read_text().strip() == "CLS_S 9.0"
    assert json.loads((logs / "round1-ours.json").read_text())["timings"]["classifier_s"] == 1.5


def test_a_failed_round_is_not_credited_with_an_earlier_record(tmp_path):
    results = tmp_path / "results"
    record = results / "runs" / "synth-cub" / "acmr" / "abc" / "seed-0.json"
    ours = python(
        f"import pathlib, sys; p = pathlib.Path({str(record)!r}); "
        "sys.exit(1) if p.exists() else None; "  # the second round fails before writing
        'p.parent.mkdir(parents=True); p.write_text(\'{"timings": {"vae_epoch_s": 2.0}}\')'
    )
    side = ab.Side("ours", ours, record_timing=("vae_epoch_s", results))
    first, second = (ab.run_side(side, r, dict(ab.os.environ), tmp_path / "logs") for r in (1, 2))
    assert (first.epoch_s, first.returncode) == (2.0, 0)
    assert (second.epoch_s, second.epochs_seen, second.returncode) == (None, 0, 1)
    assert not (tmp_path / "logs" / "round2-ours.json").exists()
    assert (tmp_path / "logs" / "round1-ours.json").exists()
