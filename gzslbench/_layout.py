"""Mount the checkout's top-level ``methods/`` and ``datasets/`` as ``gzslbench.methods`` / ``.datasets``.

Both folders are namespace folders (no ``__init__.py``), so a Python started in the checkout
never shadows Hugging Face's ``datasets`` or another top-level package of the same name. A wheel
installs them inside ``gzslbench/``; an editable install or a bare checkout leaves them beside it,
and setuptools' editable finder cannot map namespace sub-packages, so they are mounted here.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

SUBPACKAGES = ("methods", "datasets")


def mount_checkout_subpackages(package_dir: Path) -> None:
    """Register ``gzslbench.<sub>`` for each sub-folder that lives beside the package."""
    for sub in SUBPACKAGES:
        name = f"gzslbench.{sub}"
        beside = package_dir.parent / sub
        if (package_dir / sub).is_dir() or name in sys.modules or not beside.is_dir():
            continue
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(beside)]
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        setattr(sys.modules["gzslbench"], sub, module)
