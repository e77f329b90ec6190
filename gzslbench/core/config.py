"""Resolve a run's config: method defaults < dataset defaults < config file < ``--set``.

Every key must exist in the method's defaults (a typo is an error, not a silent no-op) and
every value is coerced to the type of its default, so ``--set epochs=10`` gives an int and
``--set kl_schedule=[2.5,0,93]`` a list of three numbers. Each method then declares the valid
values of its keys (:class:`Range`, :class:`OneOf`, :class:`Schedule` in ``Method.ranges``) and
:func:`check_ranges` refuses anything outside them before a run starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
import tomllib
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from gzslbench.core.errors import ConfigError, UnknownNameError
from gzslbench.core.registry import unknown_name_message


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value), the value read as YAML (numbers, ``true``/``false``, lists, null).

    Anything else is the text as given, so that a file name stays whole: YAML would cut
    ``run #2.npz`` at its comment, turn ``a: b.npz`` into a mapping and ``yes`` into true. A
    quoted value is YAML's string.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got '{text}'")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return key.strip(), raw
    quoted = len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "'\""
    plain_text = isinstance(value, dict) or (isinstance(value, str) and not quoted)
    yaml_bool = isinstance(value, bool) and raw.lower() not in ("true", "false")  # yes, no, on, off
    return key.strip(), raw if plain_text or yaml_bool else value


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Several ``key=value`` strings -> dict (later ones win)."""
    return dict(parse_assignment(item) for item in items)


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping with the same key twice is an error.

    YAML requires unique keys, but PyYAML silently keeps the last value, so a config file with
    ``epochs`` twice would run with whichever came last.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep)


def _first_line(exc: Exception, text: str) -> str:
    """One line for a parse error, with its line number, and for TOML the offending line itself."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        return f"{exc.problem} (line {exc.problem_mark.line + 1})"
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = re.search(r"at line (\d+)", message)  # tomllib names the line but not the key
    lines = text.splitlines()
    if isinstance(exc, tomllib.TOMLDecodeError) and where and 0 < int(where[1]) <= len(lines):
        message += f": {lines[int(where[1]) - 1].strip()!r}"
    return message


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping of config keys from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

    An empty file is an empty mapping; a file that is not UTF-8 text, does not parse, repeats a
    key or is not a mapping is a ConfigError naming the file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text config file (invalid UTF-8 at byte {exc.start})") from None
    kind = "TOML" if path.suffix == ".toml" else "YAML"
    try:
        data = tomllib.loads(text) if kind == "TOML" else yaml.load(text, Loader=_UniqueKeyLoader)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {kind}: {_first_line(exc, text)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def coerce(key: str, value: Any, default: Any, what: str = "config") -> Any:
    """``value`` converted to the type of ``default``, or ConfigError naming the key (``what`` says of what)."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{what} '{key}': expected {expected}, got {value!r}")

    if isinstance(value, str) and isinstance(default, int | float) and not isinstance(default, bool):
        try:  # YAML reads "1e-3" as a string
            value = float(value)
        except ValueError:
            raise bad("a number") from None

    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        raise bad("true or false")
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if isinstance(default, list | tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise bad(f"a list of {len(default)} values like {list(default)}")
        return [coerce(f"{key}[{i}]", v, d, what) for i, (v, d) in enumerate(zip(value, default, strict=True))]
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise bad("a string")
    if default is None:
        return value
    raise bad(type(default).__name__)


def resolve_config(
    defaults: Mapping[str, Any],
    layers: Iterable[Mapping[str, Any]],
    kind: str = "config key",
    what: str = "config",
) -> dict[str, Any]:
    """Apply ``layers`` in order over ``defaults``; unknown keys raise with a did-you-mean (``kind``), bad values
    with ``what`` and the key."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()}
    for layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise UnknownNameError(unknown_name_message(kind, key, sorted(defaults)))
            config[key] = coerce(key, value, defaults[key], what)
    return config


Bound = float | str
"""A range bound: a number, or the name of another config key whose value is the bound."""


class Constraint(Protocol):
    """The valid values of one config key (see :class:`Range`, :class:`OneOf`, :class:`Schedule`)."""

    def allows(self, value: Any, config: Mapping[str, Any]) -> bool:
        """True if ``value`` is valid, given the rest of the resolved ``config``."""
        ...

    def describe(self, config: Mapping[str, Any]) -> str:
        """The valid values in words, e.g. ``> 0`` (completes "must be ...")."""
        ...


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _show_bound(bound: Bound, config: Mapping[str, Any]) -> str:
    return f"{bound} (= {config[bound]!r})" if isinstance(bound, str) else f"{bound:g}"


@dataclass(frozen=True)
class Range:
    """A finite number with optional bounds: ``Range(gt=0)``, ``Range(ge=0, lt=1)``, ``Range(ge=1, le="cls_epochs")``.

    A bound given as a string is another key of the same config (a cross-key rule). Whether the
    number must be an integer follows from the key's default (see :func:`coerce`).
    """

    gt: Bound | None = None
    ge: Bound | None = None
    lt: Bound | None = None
    le: Bound | None = None

    def _bounds(self, config: Mapping[str, Any]) -> list[tuple[str, Bound, float]]:
        named = ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le))
        return [(op, b, float(config[b]) if isinstance(b, str) else float(b)) for op, b in named if b is not None]

    def allows(self, value: Any, config: Mapping[str, Any]) -> bool:
        return _finite_number(value) and all(_COMPARE[op](float(value), b) for op, _, b in self._bounds(config))

    def describe(self, config: Mapping[str, Any]) -> str:
        parts = [f"{op} {_show_bound(b, config)}" for op, b, _ in self._bounds(config)]
        return " and ".join(parts) or "a finite number"


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of values (string switches such as ``noise``)."""

    choices: tuple[Any, ...]

    def allows(self, value: Any, config: Mapping[str, Any]) -> bool:
        return value in self.choices

    def describe(self, config: Mapping[str, Any]) -> str:
        return "one of " + ", ".join(repr(c) for c in self.choices)


@dataclass(frozen=True)
class Schedule:
    """A warm-up schedule ``[factor, start, end]``: factor >= 0, start >= 0, end >= start.

    A factor of 0 switches the loss term off; ``end == start`` is a step (full weight from
    ``start`` on, e.g. ``[f, 0, 0]`` for no warm-up); an end before the start has no meaning.
    """

    def allows(self, value: Any, config: Mapping[str, Any]) -> bool:
        if not isinstance(value, list | tuple) or len(value) != 3 or not all(_finite_number(v) for v in value):
            return False
        factor, start, end = value
        return factor >= 0 and start >= 0 and end >= start

    def describe(self, config: Mapping[str, Any]) -> str:
        return "[factor, start, end] with factor >= 0, start >= 0, end >= start"


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, list | tuple) and any(_has_non_finite(v) for v in value)


def check_ranges(config: Mapping[str, Any], ranges: Mapping[str, Constraint]) -> None:
    """Raise ConfigError (one line: key, value, valid range) for the first value outside its range.

    NaN and infinite numbers are refused for every key, declared or not; a key without a
    declared range is otherwise only type-checked.
    """
    for key, value in config.items():
        constraint = ranges.get(key)
        valid = f" (must be {constraint.describe(config)})" if constraint is not None else ""
        if _has_non_finite(value):
            raise ConfigError(f"config '{key}' = {value!r} is not finite{valid}")
        if constraint is not None and not constraint.allows(value, config):
            raise ConfigError(f"config '{key}' = {value!r} is out of range{valid}")


def describe_range(key: str, config: Mapping[str, Any], ranges: Mapping[str, Constraint]) -> str:
    """The valid values of ``key`` in words, for ``gzslbench config``."""
    if key in ranges:
        return ranges[key].describe(config)
    if isinstance(config[key], bool):
        return "true or false"
    return "not declared (type checked only)"


def undeclared_keys(defaults: Mapping[str, Any], ranges: Mapping[str, Constraint]) -> list[str]:
    """Keys of ``defaults`` without a declared range; true/false switches need none."""
    return [k for k, v in defaults.items() if k not in ranges and not isinstance(v, bool)]


def config_hash(*parts: Mapping[str, Any]) -> str:
    """A short, stable hash of resolved mappings (key order does not matter)."""
    blob = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]
