"""Resolve a run's config: method defaults < dataset defaults < config file < ``--set``.

Every key must exist in the method's defaults (a typo is an error, not a silent no-op) and
every value is coerced to the type of its default, so ``--set epochs=10`` gives an int and
``--set kl_schedule=[2.5,0,93]`` a list of three numbers.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from gzslbench.errors import ConfigError, UnknownNameError
from gzslbench.registry import unknown_name_message


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> (key, value), the value read as YAML (numbers, bools, lists, strings)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"expected key=value, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """Several ``key=value`` strings -> dict (later ones win)."""
    return dict(parse_assignment(item) for item in items)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping of config keys from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'YAML'}: {first_line}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default``, or ConfigError naming the key."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"config '{key}': expected {expected}, got {value!r}")

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
        return [coerce(f"{key}[{i}]", v, d) for i, (v, d) in enumerate(zip(value, default, strict=True))]
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
) -> dict[str, Any]:
    """Apply ``layers`` in order over ``defaults``; unknown keys raise with a did-you-mean."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()}
    for layer in layers:
        for key, value in layer.items():
            if key not in defaults:
                raise UnknownNameError(unknown_name_message(kind, key, sorted(defaults)))
            config[key] = coerce(key, value, defaults[key])
    return config


def config_hash(*parts: Mapping[str, Any]) -> str:
    """A short, stable hash of resolved mappings (key order does not matter)."""
    blob = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:10]
