"""Griffe extension: document ``methods/`` and ``datasets/`` as ``gzslbench.methods`` and ``gzslbench.datasets``.

Both folders live beside the package at the top of the checkout and become subpackages of
``gzslbench`` when it is installed (``package-dir`` in pyproject.toml) or imported from the
checkout (``gzslbench/_layout.py``). Griffe's static loader only sees what lies inside
``gzslbench/``, so this extension mounts them the same way: when the visitor reaches the
``gzslbench`` package, it visits every module of the two folders and attaches them under it.

Used by mkdocs.yml (``extensions`` of the mkdocstrings Python handler).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ("methods", "datasets")


class MountCheckoutSubpackages(griffe.Extension):
    """Attach the checkout's ``methods/`` and ``datasets/`` folders to the ``gzslbench`` module."""

    def on_module_members(self, *, node: Any, mod: griffe.Module, agent: Any, **kwargs: Any) -> None:
        if mod.path != "gzslbench":
            return
        for name in SUBPACKAGES:
            folder = ROOT / name
            if folder.is_dir() and name not in mod.members:
                mod.set_member(name, _visit_folder(name, folder, mod, agent))


def _visit_folder(name: str, folder: Path, parent: griffe.Module, agent: Any) -> griffe.Module:
    """A namespace package for ``folder`` with every module and sub-folder below it, visited statically."""
    package = griffe.Module(
        name,
        filepath=[folder],
        parent=parent,
        lines_collection=agent.lines_collection,
        modules_collection=agent.modules_collection,
    )
    for path in sorted(folder.iterdir()):
        if path.suffix == ".py" and path.stem != "__init__":
            module = griffe.visit(
                path.stem,
                filepath=path,
                code=path.read_text(encoding="utf-8"),
                parent=package,
                extensions=agent.extensions,
                docstring_parser=agent.docstring_parser,
                docstring_options=agent.docstring_options,
                lines_collection=agent.lines_collection,
                modules_collection=agent.modules_collection,
            )
            package.set_member(path.stem, module)
        elif path.is_dir() and any(path.glob("*.py")):
            package.set_member(path.name, _visit_folder(path.name, path, package, agent))
    return package
