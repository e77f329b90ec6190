"""Name -> object registries for methods and dataset adapters.

Usage::

    from gzslbench.core.registry import register_method

    @register_method("my-method")
    class MyMethod(Method):
        ...

Third-party packages register without editing gzslbench through entry points in the
groups ``gzslbench.methods`` and ``gzslbench.datasets``. An entry point may name a class
(registered under the entry point's name unless it registers itself) or a module whose
import registers its classes.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import inspect
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from typing import Any, Generic, TypeVar

from gzslbench.core.errors import GZSLBenchError, UnknownNameError

T = TypeVar("T")


def normalise_name(name: str) -> str:
    """Registry keys are case-insensitive and treat '_' as '-'."""
    if not isinstance(name, str):
        raise UnknownNameError(f"a name must be a string, got {name!r}")
    return name.strip().lower().replace("_", "-")


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One line: the unknown name, the closest known ones, and the full list."""
    close = difflib.get_close_matches(normalise_name(name), known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"unknown {kind} '{name}'.{hint} Known: {', '.join(known) or '(none)'}."


class PluginWarning(UserWarning):
    """A plugin was skipped; the command line prints it as one ``warning:`` line."""


class PluginError(Exception):
    """Why an entry point cannot be registered."""


class Registry(Generic[T]):
    """A named collection of classes, filled by decorators and by entry points."""

    def __init__(self, kind: str, entry_point_group: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._builtin_modules = builtin_modules
        self._items: dict[str, T] = {}
        self._skipped: dict[str, str] = {}  # plugin name -> why it was not registered
        self._by_caller: dict[str, T] = {}  # registered by the caller's code, not by built-ins or entry points
        self._loaded = self._loading = False
        self.base: type | None = None  # the class every entry is a subclass of; set by the module defining it

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register ``obj`` under ``name``; a second, different object raises."""
        key = normalise_name(name)

        def decorator(obj: T) -> T:
            if self.base is not None and not (inspect.isclass(obj) and issubclass(obj, self.base)):
                raise TypeError(f"{self.kind} '{key}': {obj!r} is not a subclass of {self.base.__name__}")
            existing = self._items.get(key)
            if existing is not None and existing is not obj:
                raise ValueError(f"{self.kind} '{key}' is already registered by {existing!r}")
            self._items[key] = obj
            if not self._loading and not is_builtin(obj):
                self._by_caller[key] = obj
            if inspect.isclass(obj) and not vars(obj).get("name"):  # a name inherited is the parent's, not its own
                obj.name = key  # type: ignore[attr-defined]
            return obj

        return decorator

    def _load(self) -> None:
        """Import the built-in modules and the installed plugins, once."""
        if self._loaded:
            return
        self._loaded = self._loading = True
        try:
            for module in self._builtin_modules:
                importlib.import_module(module)
            for ep in entry_points(group=self.entry_point_group):
                try:
                    obj = ep.load()
                    self._register_plugin(ep.name, obj)
                except Exception as exc:  # a broken plugin must not break the built-ins
                    reason = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                    self._skipped[normalise_name(ep.name)] = reason
                    warnings.warn(f"skipping plugin '{ep.name}' ({ep.value}): {reason}", PluginWarning, stacklevel=3)
        finally:
            self._loading = False

    def registered_by_caller(self) -> dict[str, T]:
        """What the caller's own code registered (with the decorator): a worker process registers it again."""
        return dict(self._by_caller)

    def _register_plugin(self, name: str, obj: object) -> None:
        """Register an entry point's class; a module registered its classes when it was imported."""
        if inspect.ismodule(obj):
            return
        if not inspect.isclass(obj):
            raise PluginError(f"names a {type(obj).__name__}, not a {self.kind} class or a module")
        if self.base is not None and not issubclass(obj, self.base):
            raise PluginError(f"{obj.__name__} is not a subclass of {self.base.__module__}.{self.base.__name__}")
        if obj in self._items.values():
            return  # it registered itself on import
        existing = self._items.get(normalise_name(name))
        if existing is not None:
            raise PluginError(f"the name is taken by {existing.__module__}.{getattr(existing, '__name__', existing)}")
        self.register(name)(obj)

    def get(self, name: str) -> T:
        """The object registered as ``name``, or an UnknownNameError with a did-you-mean."""
        self._load()
        key = normalise_name(name)
        if key in self._skipped and key not in self._items:
            raise UnknownNameError(f"{self.kind} plugin '{name}' could not be loaded: {self._skipped[key]}")
        if key not in self._items:
            raise UnknownNameError(unknown_name_message(self.kind, name, self.names()))
        return self._items[key]

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted registered names, filtered by an fnmatch wildcard."""
        if not isinstance(pattern, str):
            raise GZSLBenchError(f"a name pattern must be a string such as '*vae*', got {pattern!r}")
        self._load()
        return sorted(n for n in self._items if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        self._load()
        return normalise_name(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


METHODS: Registry = Registry(
    "method",
    "gzslbench.methods",
    builtin_modules=(
        "gzslbench.methods.eszsl",
        "gzslbench.methods.sae",
        "gzslbench.methods.ale",
        "gzslbench.methods.devise",
        "gzslbench.methods.vae.registry",
        "gzslbench.methods.gan.registry",
    ),
)
DATASETS: Registry = Registry(
    "dataset",
    "gzslbench.datasets",
    builtin_modules=(
        "gzslbench.datasets.xlsa17",
        "gzslbench.datasets.synthetic",
        "gzslbench.datasets.custom",
    ),
)


def is_builtin(obj: object) -> bool:
    """Whether a registered class is gzslbench's own (not a plugin's, not a script's)."""
    module = getattr(obj, "__module__", "") or ""
    return module == "gzslbench" or module.startswith("gzslbench.")


@cache  # finding the distribution scans every installed one (about 0.3 s): once per class and process
def origin(obj: object) -> str | None:
    """Where a registered class comes from when it is not gzslbench's own: its distribution and version, else
    its module (a script's class), so that a record names the plugin code that made it."""
    if is_builtin(obj):
        return None
    module = obj.__module__
    top = module.partition(".")[0]
    for dist in packages_distributions().get(top, []):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return f"module {module}"


def register_caller_classes(methods: dict[str, Any], datasets: dict[str, Any]) -> None:
    """In a worker process: register what the caller registered; its plugins were already named there."""
    warnings.simplefilter("ignore", PluginWarning)
    for registry, items in ((METHODS, methods), (DATASETS, datasets)):
        for name, obj in items.items():
            registry.register(name)(obj)


def caller_classes() -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments of :func:`register_caller_classes` for this process's registrations."""
    return METHODS.registered_by_caller(), DATASETS.registered_by_caller()


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator that adds a Method subclass to the method registry."""
    return METHODS.register(name)


def register_dataset(name: str) -> Callable[[T], T]:
    """Class decorator that adds a DatasetAdapter subclass to the dataset registry."""
    return DATASETS.register(name)
