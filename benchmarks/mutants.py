"""Mutation test of ``gzslbench check``: realistic one-line faults in the package must each fail it.

Each mutant replaces one line of one module of the installed package, in memory only: the check
runs in a child process whose ``sitecustomize`` (a temporary folder put first on ``PYTHONPATH``, so
that worker processes inherit it too) installs an import hook that compiles that module from its
source with the line replaced. The files on disk are never written. The line must occur exactly
once in the module, so a refactoring that moves it makes this script fail loudly instead of testing
unchanged code; the hook also leaves a mark, so a mutant that was never imported is reported.

Then unchanged code runs the check at another thread count than the baseline's (``--threads 2``
against the 1-thread baseline): that must pass.

    python benchmarks/mutants.py                 # every mutant, then unchanged code at --threads 2
    python benchmarks/mutants.py --quick         # CI: one mutant and unchanged code on one case
    python benchmarks/mutants.py --list          # the mutants and what each breaks
    python benchmarks/mutants.py half-unseen-samples kl-without-half --no-threads

Exit status 0 when every mutant failed the check (exit 1 or 3) and unchanged code passed it, 1
otherwise. Arguments after ``--`` go to every ``gzslbench check`` call (e.g. ``--suite``/``--baseline``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    """One line of one module replaced by another: a realistic fault."""

    module: str
    old: str
    new: str
    what: str


MUTANTS: dict[str, Mutant] = {
    "distance-weight-halved": Mutant(
        "gzslbench.methods.vae.hand_step",
        "            coefficient = (distance_weight / per_sample)[:, None]",
        "            coefficient = (0.5 * distance_weight / per_sample)[:, None]",
        "the alignment (distance) term's weight halved inside the loss gradient (HandStep)",
    ),
    "half-unseen-samples": Mutant(
        "gzslbench.methods.vae.method",
        '    unseen_rows = per_class_indices(unseen, unseen, int(config["unseen_samples"]))',
        '    unseen_rows = per_class_indices(unseen, unseen, int(config["unseen_samples"]) // 2)',
        "half the requested unseen samples generated for the final classifier (encode_for_classifier)",
    ),
    "classifier-lr-doubled": Mutant(
        "gzslbench.methods.vae.classifier",
        '            lr=float(config["cls_lr"]),',
        '            lr=2 * float(config["cls_lr"]),',
        "the final classifier's learning rate doubled (ClassifierSettings.from_config)",
    ),
    "kl-without-half": Mutant(
        "gzslbench.methods.vae.hand_step",
        '        kl_weight = weights["kl"]',
        '        kl_weight = 2 * weights["kl"]',
        "the KL term without its 0.5 factor, i.e. its gradient doubled (HandStep)",
    ),
}
QUICK_MUTANT = "half-unseen-samples"
QUICK_CASE = "acmr@synth-awa1"

# Installed by the child's sitecustomize: serve one module's source with one line replaced.
HOOK = """
import importlib.abc, importlib.machinery, json, os, sys
from pathlib import Path

_SPEC = json.loads(os.environ["GZSLBENCH_MUTANT"])


class _MutantLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        source = Path(self.path).read_text()
        if source.count(_SPEC["old"]) != 1:
            raise RuntimeError(f"mutant: the line to replace occurs {source.count(_SPEC['old'])} times in {self.path}")
        Path(_SPEC["mark"]).write_text(fullname)
        return compile(source.replace(_SPEC["old"], _SPEC["new"]), self.path, "exec", dont_inherit=True)


class _MutantFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _SPEC["module"]:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _MutantLoader(name, spec.origin)
                return spec
        return None


sys.meta_path.insert(0, _MutantFinder())
"""


def module_file(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise SystemExit(f"mutants: cannot find module {module}")
    return Path(spec.origin)


def check_applies(name: str, mutant: Mutant) -> None:
    count = module_file(mutant.module).read_text().count(mutant.old)
    if count != 1:
        raise SystemExit(f"mutants: {name}: the line to replace occurs {count} times in {mutant.module}; update it")


def run_check(args: list[str], mutant: Mutant | None) -> tuple[int, str, bool, float]:
    """``gzslbench check ARGS`` in a child process, with ``mutant`` applied; (exit, output, applied, seconds)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="gzslbench-mutant-") as tmp:
        mark = Path(tmp) / "applied"
        if mutant is not None:
            (Path(tmp) / "sitecustomize.py").write_text(HOOK)
            env["PYTHONPATH"] = os.pathsep.join([tmp, *filter(None, [env.get("PYTHONPATH")])])
            env["GZSLBENCH_MUTANT"] = json.dumps(
                {"module": mutant.module, "old": mutant.old, "new": mutant.new, "mark": str(mark)}
            )
        tic = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "gzslbench", "check", *args], env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - tic
        return proc.returncode, proc.stdout + proc.stderr, mutant is None or mark.exists(), seconds


def flagged(output: str) -> list[str]:
    """The table rows whose verdict is not ok: 'case metric diff (tol) verdict'."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[8] not in ("ok", "verdict") and not set(cells[0]) <= {"-"}:
            rows.append(f"{cells[0]} {cells[1]} {cells[4]} (tol {cells[6]}) {cells[8]}")
    return rows


def largest_differences(output: str, count: int = 4) -> list[str]:
    """The rows with the largest |diff| / tol, for the report of a passing run."""
    rows = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and re.fullmatch(r"[+-]\d+\.\d+", cells[4]) and re.fullmatch(r"\d+\.\d+", cells[6]):
            rows.append((abs(float(cells[4])) / max(float(cells[6]), 1e-9), f"{cells[0]} {cells[1]} {cells[4]}"))
    return [f"{text} ({ratio:.0%} of tol)" for ratio, text in sorted(rows, reverse=True)[:count]]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mutants", nargs="*", help=f"mutants to run (default: all of {', '.join(MUTANTS)})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MUTANT} and --threads 2, on {QUICK_CASE} only")
    parser.add_argument("--case", action="append", default=[], help="check only this case (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="thread count of the unchanged-code run (default 2)")
    parser.add_argument("--no-threads", action="store_true", help="skip the unchanged-code run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, mutant in MUTANTS.items():
            print(f"{name}: {mutant.what}\n    {mutant.module}\n    - {mutant.old.strip()}\n    + {mutant.new.strip()}")
        return 0
    names = args.mutants or ([QUICK_MUTANT] if args.quick else list(MUTANTS))
    unknown = [name for name in names if name not in MUTANTS]
    if unknown:
        parser.error(f"unknown mutant(s) {', '.join(unknown)}; known: {', '.join(MUTANTS)}")
    cases = args.case or ([QUICK_CASE] if args.quick else [])
    common = [*extra, *(f"--case={case}" for case in cases)]
    for name in names:
        check_applies(name, MUTANTS[name])
    good = True
    for name in names:
        code, output, applied, seconds = run_check(common, MUTANTS[name])
        caught = applied and code in (1, 3)
        good &= caught
        verdict = "caught" if caught else ("NOT APPLIED" if not applied else "MISSED")
        print(f"mutant {name} ({MUTANTS[name].what}): exit {code}, {verdict}, {seconds:.0f} s", flush=True)
        for row in flagged(output):
            print(f"    {row}")
        if code not in (0, 1, 3):
            print(output[-3000:])
    if not args.no_threads:
        code, output, _, seconds = run_check([*common, f"--threads={args.threads}"], None)
        passed = code == 0
        good &= passed
        verdict = "passed" if passed else "FAILED"
        print(f"unchanged code at --threads {args.threads}: exit {code}, {verdict}, {seconds:.0f} s", flush=True)
        for row in flagged(output) if not passed else largest_differences(output):
            print(f"    {row}")
        if code not in (0, 1, 3):
            print(output[-3000:])
    print("ok: every mutant failed the check" if good else "FAIL: see above")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
