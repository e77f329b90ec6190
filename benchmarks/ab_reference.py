"""Time gzslbench against a reference implementation on this machine, the two sides alternated.

A speed ratio only means something when both sides ran on the same machine, in the same sitting,
under the same load. This script runs two shell commands you give it (ours and the reference's,
the reference code staying wherever you keep it) for a number of rounds, swapping which side goes
first each round, and reports each run's wall time, and optionally a per-epoch time read from each
side's output with a regular expression (the mean of its matches), with the median ratio.

Usage::

    python benchmarks/ab_reference.py --rounds 3 --threads 1 \\
      --ours "gzslbench run -q -m acmr -d synth-cub --set epochs=4 --seeds 1 --n-jobs 1 --force --results /tmp/ab" \\
      --reference "python train.py --dataset CUB --epochs 4" --reference-dir ~/src/acmr-reference \\
      --reference-epoch '^epoch time ([0-9.]+)' --ours-timing vae_epoch_s --ours-results /tmp/ab

``--ours-timing KEY --ours-results DIR`` reads our epoch time from the run record our command wrote under DIR
(``timings[KEY]``: ``vae_epoch_s`` for the VAE methods, ``gan_epoch_s`` for the feature generators)
instead of from the output. ``--log-dir DIR`` keeps each run's output (``round1-ours.log``, ...) and,
with ``--ours-results``, a copy of that record (``round1-ours.json``), for the timings the
table does not show (the classifier stage, per-epoch courses).

``--threads N`` sets ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` for both sides (gzslbench's own
``--threads`` should agree). ``--json`` prints one JSON object instead of the table. Nothing else
should run on the machine meanwhile: two busy processes on a 2-core CPU slow each other by far
more than the difference being measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gzslbench.core.environment import cpu_name

SIDES = ("ours", "reference")


@dataclass
class Side:
    """One side of the comparison: its command, where it runs, and how to read an epoch time from its output."""

    name: str
    command: str
    cwd: Path | None = None
    epoch_pattern: re.Pattern[str] | None = None
    record_timing: tuple[str, Path] | None = None  # (timings key, results folder) of a gzslbench run


@dataclass
class Timing:
    """One run of one side: wall seconds, the mean epoch seconds read from its output (if asked), the load."""

    side: str
    round: int
    wall_s: float
    epoch_s: float | None
    epochs_seen: int
    load_before: float
    returncode: int


@dataclass
class Comparison:
    """Every run of both sides and the median ratios (ours / reference: below 1 means ours is faster)."""

    machine: dict[str, str]
    threads: int | None
    timings: list[Timing] = field(default_factory=list)

    def values(self, side: str, key: str) -> list[float]:
        return [getattr(t, key) for t in self.timings if t.side == side and getattr(t, key) is not None]

    def ratio(self, key: str) -> float | None:
        """Median over rounds of ours / reference for ``key`` (``wall_s`` or ``epoch_s``)."""
        ours, reference = self.values("ours", key), self.values("reference", key)
        if not ours or not reference or len(ours) != len(reference):
            return None
        return statistics.median(o / r for o, r in zip(ours, reference, strict=True))


def machine() -> dict[str, str]:
    return {"cpu": cpu_name(), "cores": str(os.cpu_count()), "platform": platform.platform()}


def epoch_seconds(output: str, pattern: re.Pattern[str] | None) -> tuple[float | None, int]:
    """(mean of the pattern's first group over its matches, number of matches); (None, 0) without a pattern."""
    if pattern is None:
        return None, 0
    found = [float(m.group(1)) for m in pattern.finditer(output)]
    return (statistics.fmean(found) if found else None), len(found)


def record_times(results: Path) -> dict[Path, float]:
    """Each run record under ``results`` with its modification time."""
    return {p: p.stat().st_mtime for p in results.glob("runs/**/seed-*.json")}


def newest_record(results: Path, before: Mapping[Path, float] | None = None) -> Path | None:
    """The run record under ``results`` written last; with ``before`` (:func:`record_times` taken
    before the run), only one written since, so that a failed run is not credited with an earlier one."""
    written = [(t, p) for p, t in record_times(results).items() if before is None or before.get(p) != t]
    return max(written)[1] if written else None


def record_seconds(key: str, record: Path | None) -> tuple[float | None, int]:
    """``timings[key]`` of a run record: (seconds, 1), or (None, 0) without a record or that key."""
    if record is None:
        return None, 0
    value = json.loads(record.read_text()).get("timings", {}).get(key)
    return (float(value), 1) if value is not None else (None, 0)


def keep_logs(log_dir: Path, side: Side, round_: int, output: str, record: Path | None) -> None:
    """Write the run's output, and a copy of the run record it wrote if we read one, under ``log_dir``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"round{round_}-{side.name}.log").write_text(output)
    if record is not None:
        shutil.copyfile(record, log_dir / f"round{round_}-{side.name}.json")


def run_side(side: Side, round_: int, env: dict[str, str], log_dir: Path | None = None) -> Timing:
    """Run ``side``'s command once through the shell and time it."""
    load = os.getloadavg()[0]
    before = record_times(side.record_timing[1]) if side.record_timing is not None else None
    start = time.perf_counter()
    done = subprocess.run(side.command, shell=True, cwd=side.cwd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    output = done.stdout + done.stderr
    record = None
    if side.record_timing is not None:
        key, results = side.record_timing
        record = newest_record(results, before)
        epoch, seen = record_seconds(key, record)
    else:
        epoch, seen = epoch_seconds(output, side.epoch_pattern)
    if log_dir is not None:
        keep_logs(log_dir, side, round_, output, record)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"warning: {side.name} round {round_} exited {done.returncode}: {tail[0]}", file=sys.stderr)
    return Timing(side.name, round_, wall, epoch, seen, load, done.returncode)


def compare(ours: Side, reference: Side, rounds: int, threads: int | None, log_dir: Path | None = None) -> Comparison:
    """``rounds`` rounds; odd rounds run ours first, even rounds the reference first."""
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    result = Comparison(machine(), threads)
    for r in range(1, rounds + 1):
        order = (ours, reference) if r % 2 else (reference, ours)
        for side in order:
            timing = run_side(side, r, env, log_dir)
            result.timings.append(timing)
            print(f"round {r} {side.name}: {timing.wall_s:.1f} s", file=sys.stderr, flush=True)
    return result


def format_report(result: Comparison) -> str:
    m = result.machine
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores; threads per side: {result.threads or 'default'}",
        "",
        "| round | side | wall s | epoch s | epochs read | load before |",
        "|---|---|---|---|---|---|",
    ]
    for t in sorted(result.timings, key=lambda t: (t.round, SIDES.index(t.side))):
        epoch = f"{t.epoch_s:.2f}" if t.epoch_s is not None else "-"
        lines.append(f"| {t.round} | {t.side} | {t.wall_s:.1f} | {epoch} | {t.epochs_seen} | {t.load_before:.2f} |")
    lines.append("")
    for key, label in (("wall_s", "wall time"), ("epoch_s", "epoch time")):
        ratio = result.ratio(key)
        if ratio is not None:
            lines.append(f"ours / reference, {label} (median over rounds): {ratio:.2f}x")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ours", required=True, help="shell command of our side")
    parser.add_argument("--reference", required=True, help="shell command of the reference side")
    parser.add_argument("--ours-dir", type=Path, help="working directory of our command (default: here)")
    parser.add_argument("--reference-dir", type=Path, help="working directory of the reference command")
    parser.add_argument("--ours-epoch", help="regex whose first group is an epoch's seconds in our output")
    parser.add_argument("--reference-epoch", help="regex whose first group is an epoch's seconds in its output")
    parser.add_argument("--ours-timing", help="timings key of our run record holding an epoch's seconds")
    parser.add_argument("--ours-results", type=Path, help="with --ours-timing: the results folder our command writes")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each running both sides (default 3)")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS and MKL_NUM_THREADS for both sides")
    parser.add_argument("--log-dir", type=Path, help="keep each run's output (and our run record) here")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if (args.ours_timing is None) != (args.ours_results is None):
        parser.error("--ours-timing and --ours-results go together")
    if args.ours_timing is not None and args.ours_epoch is not None:
        parser.error("--ours-epoch and --ours-timing are two ways to read the same time: give one")
    for flag in ("ours_dir", "reference_dir"):
        folder = getattr(args, flag)
        if folder is not None and not folder.is_dir():
            parser.error(f"--{flag.replace('_', '-')}: no such folder: {folder}")
    return args


def compile_pattern(parser_flag: str, pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern, re.MULTILINE)
    except re.error as error:
        raise SystemExit(f"error: {parser_flag}: not a regular expression: {error}") from None
    if compiled.groups < 1:
        raise SystemExit(f"error: {parser_flag}: the pattern needs a group around the seconds")
    return compiled


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    record = (args.ours_timing, args.ours_results) if args.ours_timing else None
    ours = Side("ours", args.ours, args.ours_dir, compile_pattern("--ours-epoch", args.ours_epoch), record)
    reference = Side(
        "reference", args.reference, args.reference_dir, compile_pattern("--reference-epoch", args.reference_epoch)
    )
    print(f"ours: {shlex.quote(ours.command)}\nreference: {shlex.quote(reference.command)}", file=sys.stderr)
    result = compare(ours, reference, args.rounds, args.threads, args.log_dir)
    print(json.dumps(asdict(result), indent=1) if args.as_json else format_report(result))
    return 0 if all(t.returncode == 0 for t in result.timings) else 1


if __name__ == "__main__":
    sys.exit(main())
