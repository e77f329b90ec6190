"""The package's layers import only downward, never in a circle, and never take another module's private names."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Where each installed module lives: gzslbench/ as it is, the top-level methods/ and datasets/ under gzslbench.
SOURCES = {
    "gzslbench": ROOT / "gzslbench",
    "gzslbench.methods": ROOT / "methods",
    "gzslbench.datasets": ROOT / "datasets",
}
# Layers from the bottom; a module may import its own layer and those below it.
LAYERS = [
    ("core",),
    ("data",),
    ("protocol",),
    ("results",),
    ("methods", "datasets"),
    ("execution",),
    ("studies",),
    ("reports",),
    ("cli",),
    ("",),  # gzslbench/__init__.py (the public API gathers the layers) and __main__.py
]
RANK = {layer: rank for rank, names in enumerate(LAYERS) for layer in names}


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    found = {}
    for prefix, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((prefix, *parts))] = path
    return found


def layer(module: str) -> str:
    """The layer a module belongs to: the first name below ``gzslbench`` (``""`` for the package's own modules)."""
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return {"_layout": "core", "__main__": ""}.get(name, name)


def imports(path: Path, package: str) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or "", line) of every import in a file, local and type-checking ones too."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from . import x`` inside ``package``
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name, node.lineno


def resolve(known: dict[str, Path], module: str, name: str) -> str | None:
    """The gzslbench module an import refers to (``from pkg import mod`` names a module), else None."""
    if f"{module}.{name}" in known:
        return f"{module}.{name}"
    return module if module in known else None


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target, name, _ in imports(path, package):
            resolved = resolve(known, target, name)
            if resolved and resolved != module and not module.startswith(resolved + "."):
                edges[module].add(resolved)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles among modules (each found once, as the path that closes it)."""
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_every_module_belongs_to_a_known_layer():
    assert {layer(m) for m in modules()} <= set(RANK), sorted({layer(m) for m in modules()} - set(RANK))


def test_layers_import_only_downward():
    upward = [
        f"{module} imports {target}"
        for module, targets in graph().items()
        for target in targets
        if RANK[layer(target)] > RANK[layer(module)]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    assert not cycles(graph()), "\n".join(" -> ".join(c) for c in cycles(graph()))


def test_no_private_name_is_imported_from_another_module():
    known = modules()
    private = []
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for target, name, line in imports(path, package):
            if not target.startswith("gzslbench"):
                continue
            resolved = resolve(known, target, name)
            tail = (resolved or target).rsplit(".", 1)[-1]
            private_name = name.startswith("_") and resolved != f"{target}.{name}"
            # A private module (``_arrays``) serves only the package it sits in.
            home = (resolved or target).rsplit(".", 1)[0]
            outside = tail.startswith("_") and not tail.startswith("__") and not (
                package == home or package.startswith(home + ".")
            )
            if private_name or outside:
                private.append(f"{path.relative_to(ROOT)}:{line}: {target} {name}".strip())
    assert not private, "\n".join(private)


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b", "a"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c", "a"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected):
    """The checker itself: it reports a circle and accepts a chain."""
    assert cycles(edges) == expected


def test_the_layer_check_sees_a_planted_upward_import(tmp_path, monkeypatch):
    """A core module importing the execution layer is reported (the check can fail)."""
    fake = tmp_path / "gzslbench"
    (fake / "core").mkdir(parents=True)
    (fake / "execution").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "core" / "__init__.py").write_text("")
    (fake / "execution" / "__init__.py").write_text("")
    (fake / "execution" / "api.py").write_text("X = 1\n")
    (fake / "core" / "bad.py").write_text("from gzslbench.execution.api import X\n")
    monkeypatch.setitem(SOURCES, "gzslbench", fake)
    monkeypatch.setitem(SOURCES, "gzslbench.methods", tmp_path / "none")
    monkeypatch.setitem(SOURCES, "gzslbench.datasets", tmp_path / "none")
    with pytest.raises(AssertionError, match=r"gzslbench\.core\.bad imports gzslbench\.execution\.api"):
        test_layers_import_only_downward()
