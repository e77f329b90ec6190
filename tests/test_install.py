"""What a lean install holds: the core without the ``plots`` extra, and ``pip install .`` beside an existing torch.

The extra's libraries (matplotlib, scikit-learn) are made unimportable in child processes by a
``sitecustomize`` module on ``PYTHONPATH`` that puts a blocking finder first on ``sys.meta_path``,
so every process of the command (workers too) sees an install without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from gzslbench.cli import cli

ROOT = Path(__file__).resolve().parents[1]
PLOTS_MISSING = "error: plots need matplotlib: pip install 'gzslbench[plots]'"

BLOCKER = textwrap.dedent(
    """
    import sys

    BLOCKED = {"matplotlib", "sklearn"}


    class _NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, _NotInstalled())
    """
)


@pytest.fixture
def without_plots(tmp_path: Path):
    """Run ``python ARGS`` in ``tmp_path`` with matplotlib and scikit-learn unimportable."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))}
    env.pop("GZSLBENCH_DEBUG", None)

    def python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    return python


def test_importing_the_core_and_the_cli_loads_no_plotting_library() -> None:
    code = (
        "import sys, importlib, gzslbench, gzslbench.reports.plots; "
        "from gzslbench.cli._group import COMMANDS; "
        "[importlib.import_module(f'gzslbench.cli.{module}') for module, _ in COMMANDS.values()]; "
        "print(sorted({m.partition('.')[0] for m in sys.modules} & {'matplotlib', 'sklearn'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_plots_extra_runs_work_and_plots_say_which_extra(without_plots, tmp_path: Path) -> None:
    blocked = without_plots("-c", "import matplotlib")
    assert blocked.returncode == 1 and "No module named 'matplotlib'" in blocked.stderr  # the blocker works

    code = (
        "import json, gzslbench; "
        "records = gzslbench.run('eszsl', 'synth-tiny', seeds=1, out='results', n_jobs=1, quiet=True); "
        "print(json.dumps([(r['status'], r['metrics']['last']['H']) for r in records]))"
    )
    ran = without_plots("-c", code)
    assert ran.returncode == 0, ran.stderr
    [(status, h)] = json.loads(ran.stdout.splitlines()[-1])
    assert status == "ok" and 0 <= h <= 100

    table = without_plots("-m", "gzslbench", "table", "--results", "results")
    assert table.returncode == 0, table.stderr
    assert "| ESZSL" in table.stdout

    plot = without_plots("-m", "gzslbench", "plot", "bars", "--results", "results", "--out", "figures")
    assert plot.returncode == 2
    assert plot.stderr == PLOTS_MISSING + "\n" and plot.stdout == ""
    assert not (tmp_path / "figures").exists()

    report = without_plots("-m", "gzslbench", "report", "--results", "results", "--out", "report")
    assert report.returncode == 0, report.stderr
    assert report.stderr == "note: tables only, no figures: plots need matplotlib: pip install 'gzslbench[plots]'\n"
    index = (tmp_path / "report" / "index.md").read_text()
    assert "| ESZSL" in index and "Not drawn: plots need matplotlib: pip install 'gzslbench[plots]'." in index
    assert sorted(p.name for p in (tmp_path / "report" / "tables").iterdir()) == ["table2.md", "table2.tex"]
    assert not (tmp_path / "report" / "figures").exists()


def test_tsne_without_scikit_learn_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With matplotlib but not scikit-learn, only `plot tsne` is refused, before any record is read."""
    pytest.importorskip("matplotlib")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    result = CliRunner().invoke(cli, ["plot", "tsne", "--results", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.stderr == "error: t-SNE plots need scikit-learn: pip install 'gzslbench[plots]'\n"


def not_source(folder: str, names: list[str]) -> set[str]:
    """What a copy of the checkout leaves out: environments, build outputs, caches, run records."""
    top = Path(folder) == ROOT
    return {
        name
        for name in names
        if name in {".git", ".venv", "build", "dist", "__pycache__"}
        or name.endswith((".egg-info", "_cache"))
        or (top and name in {"results", "shared"})
    }


@pytest.mark.slow
def test_pip_install_keeps_a_torch_that_satisfies_the_range(tmp_path: Path) -> None:
    """`pip install .` into a venv whose torch satisfies the range leaves that torch as it is.

    Slow (minutes): a fresh venv gets this interpreter's torch build first, then a copy of the
    checkout (pip builds in the source folder) with its dependencies from the configured indexes.
    """
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=not_source)
    torch_version = version("torch")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    first = subprocess.run([*pip, "install", "-q", f"torch=={torch_version}"], capture_output=True, text=True)
    if first.returncode != 0:
        pytest.skip(f"torch=={torch_version} cannot be installed into a fresh venv here: {first.stderr[-300:]}")

    install = subprocess.run([*pip, "install", str(source)], capture_output=True, text=True, timeout=1800)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    assert "Requirement already satisfied: torch>=" in install.stdout
    assert "Uninstalling torch" not in install.stdout and "Collecting torch" not in install.stdout

    show = subprocess.run([*pip, "show", "torch"], capture_output=True, text=True, check=True)
    assert f"Version: {torch_version}\n" in show.stdout
    check = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import gzslbench, torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert check.returncode == 0 and check.stdout.strip() == torch_version, check.stderr
