"""The top-level methods/ and datasets/ folders never shadow installed packages of the same name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_folders_do_not_shadow_real_packages(tmp_path):
    """From the checkout root, `import datasets` / `import methods` find the installed packages, not ours."""
    for name in ("datasets", "methods"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("MARK = 'the real one'\n")
    code = "import datasets, methods; print(datasets.MARK, '|', methods.MARK)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "the real one | the real one"


def test_subpackages_live_under_the_gzslbench_namespace():
    import gzslbench.datasets.base
    import gzslbench.methods.base

    assert Path(gzslbench.methods.base.__file__).parent.name == "methods"
    assert Path(gzslbench.datasets.base.__file__).parent.name == "datasets"
    assert not (ROOT / "methods" / "__init__.py").exists() and not (ROOT / "datasets" / "__init__.py").exists()
