"""Sweeps: a grid over config keys expanded into run specs and run through the normal runner.

Usage::

    grid = parse_grid(["gamma=logspace(-3,3,7)", "lam=[0.1,1,10]"])
    records = gzslbench.sweep("eszsl", "synth-cub", grid, seeds=3)

A grid maps config keys to candidate values. An axis is written ``key=[v1,v2,...]`` (a YAML
list), ``key=logspace(a,b,n)`` (``n`` values from ``10**a`` to ``10**b``) or
``key=linspace(a,b,n)``; a YAML file mapping keys to such axes works too. ``key[i]`` sweeps one
element of a list-valued key (``kl_schedule[0]`` is the KL weight of ``[factor, start, end]``).
Points are the cartesian product, or ``random`` of them drawn with a fixed seed. Every (point,
seed) is one run spec with its own record, tagged with the sweep's name; runs are resumable
and parallel exactly like ``gzslbench run``. Choosing among the test numbers of a sweep is
selection on test data: :mod:`gzslbench.studies.tuning` chooses on the validation split instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gzslbench.core.environment import cpu_count
from gzslbench.core.errors import ConfigError, UnknownNameError
from gzslbench.core.registry import unknown_name_message
from gzslbench.data.dataset import GZSLData
from gzslbench.execution.api import as_mapping, note_plan
from gzslbench.execution.options import check_execution
from gzslbench.execution.resolve import get_method, method_config, plan_specs, seeds_to_run
from gzslbench.execution.schedule import run_specs
from gzslbench.execution.spec import RunSpec

MAX_POINTS = 10_000  # a larger grid (or axis, or sample) is a typo or wants --random
_SPACE = re.compile(r"^\s*(logspace|linspace)\s*\((.*)\)\s*$")
_INDEXED = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<index>\d+)\]$")

Grid = dict[str, list[Any]]


def _clean(value: float) -> float:
    """12 significant digits: ``logspace`` gives 0.0010000000000000002, configs and hashes want 0.001."""
    return float(f"{value:.12g}")


_EXPONENT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _exponent_number(value: Any) -> Any:
    """``"1e3"`` -> 1000.0, as a config value is read; anything else unchanged."""
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value) else value


def parse_axis(key: str, text: Any) -> list[Any]:
    """The candidate values of one axis: a list, ``logspace(a,b,n)`` or ``linspace(a,b,n)``."""
    where = f"grid '{key}'"
    if isinstance(text, str):
        match = _SPACE.match(text)
        if match:
            kind, args = match.groups()
            parts = [p.strip() for p in args.split(",")]
            try:
                start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
                if len(parts) != 3 or not (math.isfinite(start) and math.isfinite(stop)):
                    raise ValueError
            except (ValueError, IndexError):
                raise ConfigError(f"{where}: expected {kind}(start, stop, count), got '{text}'") from None
            if num < 1:
                raise ConfigError(f"{where}: {kind} needs a count of at least 1, got {num}")
            if num > MAX_POINTS:  # refused before numpy builds it
                raise ConfigError(f"{where}: {kind} of {num} values (more than {MAX_POINTS}); use fewer")
            space = np.logspace(start, stop, num) if kind == "logspace" else np.linspace(start, stop, num)
            return [_clean(float(v)) for v in space]
        try:
            text = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"{where}: not a YAML list: '{text}'") from None
        if isinstance(text, list):  # YAML 1.1 reads 1e3 (no dot) as text
            text = [_exponent_number(value) for value in text]
    if not isinstance(text, list):
        raise ConfigError(
            f"{where}: expected a list [v1,v2,...], logspace(a,b,n) or linspace(a,b,n), got {text!r} "
            "(use --set for a fixed value)"
        )
    if not text:
        raise ConfigError(f"{where}: the list of values is empty")
    if len(text) > MAX_POINTS:
        raise ConfigError(f"{where}: {len(text)} values (more than {MAX_POINTS}); use fewer")
    hashable: set[Any] = set()
    unhashable: list[Any] = []  # lists, e.g. a whole kl_schedule per value
    for value in text:
        try:
            seen = value in hashable
            hashable.add(value)
        except TypeError:
            seen = value in unhashable
            unhashable.append(value)
        if seen:
            raise ConfigError(f"{where}: value {value!r} appears twice")
    return list(text)


def parse_grid(items: Sequence[str] | Mapping[str, Any] | str | Path | None) -> Grid:
    """A grid from ``key=axis`` strings, a mapping of key -> axis, or a YAML file of that mapping."""
    if items is None:
        return {}
    if isinstance(items, str | Path):
        items = [str(items)]
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if "=" not in item and Path(item).suffix in (".yaml", ".yml"):
                pairs += list(_grid_file(Path(item)).items())
                continue
            key, sep, raw = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"grid: expected key=[values], key=logspace(a,b,n) or a .yaml file, got '{item}'")
            pairs.append((key.strip(), raw.strip()))
    grid: Grid = {}
    for key, axis in pairs:
        if key in grid:
            raise ConfigError(f"grid '{key}': given twice")
        grid[key] = parse_axis(key, axis)
    for key in grid:
        match = _INDEXED.match(key)
        if match and match["name"] in grid:  # one would override the other, in the order given
            raise ConfigError(f"grid: '{key}' and '{match['name']}' both set {match['name']}; give one of them")
    return grid


def given_grid(grid: Sequence[str] | Mapping[str, Any] | str | Path | None) -> Grid | None:
    """The parsed grid, or None (the method's search space) when none is given; an empty one is an error."""
    if grid is None:
        return None
    parsed = parse_grid(grid)
    if not parsed:
        raise ConfigError("the grid is empty: give at least one key with its values, or none for the search space")
    return parsed


def _grid_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read grid file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: expected a mapping of config keys to lists of values")
    return data


def grid_size(grid: Grid) -> int:
    """Number of points of the cartesian product."""
    return math.prod(len(v) for v in grid.values()) if grid else 0


def grid_points(grid: Grid, random: int | None = None, random_seed: int = 0) -> list[dict[str, Any]]:
    """The grid's points in order: all of the cartesian product, or ``random`` of them without repeats.

    Sampling draws point indices with ``numpy.random.default_rng(random_seed)``, so the same
    command samples the same points; they are returned in grid order.
    """
    if not grid:
        raise ConfigError("the grid is empty: give at least one --grid key=[values]")
    total = grid_size(grid)
    if random is not None and random < 1:
        raise ConfigError(f"--random must be at least 1, got {random}")
    if random is None and total > MAX_POINTS:
        raise ConfigError(f"the grid has {total} points (more than {MAX_POINTS}); sample some with --random K")
    if random is not None and min(random, total) > MAX_POINTS:
        raise ConfigError(f"--random {random} is more than {MAX_POINTS} points; sample fewer")
    if random is not None and random < total:
        indices = np.sort(np.random.default_rng(random_seed).choice(total, size=random, replace=False))
    else:
        indices = np.arange(total)
    keys, axes = list(grid), list(grid.values())
    shape = tuple(len(a) for a in axes)
    return [
        {k: axes[i][int(j)] for i, (k, j) in enumerate(zip(keys, np.unravel_index(int(n), shape), strict=True))}
        for n in indices
    ]


NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str | None) -> None:
    """Refuse a sweep name that is no plain file name: it names the tuning summary under the results folder."""
    if name is not None and not (isinstance(name, str) and NAME_PATTERN.fullmatch(name)):
        raise ConfigError(
            f"--name {name!r}: use up to 100 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(it names a file under the results folder)"
        )


def grid_name(kind: str, expansion: Expansion, random: int | None = None, random_seed: int = 0) -> str:
    """A default name of a ``kind`` ("sweep", "tune") fixed by all its inputs: the same command resumes under the
    same name, and one that differs in its grid, ``--set`` values, dataset or dataset options gets another."""
    base = expansion.base
    inputs = [kind, expansion.grid, random, random_seed, base.dataset, base.dataset_options, base.config]
    blob = json.dumps(inputs, sort_keys=True, default=str)
    return f"{base.method}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def point_overrides(
    point: Mapping[str, Any], overrides: Mapping[str, Any], base_config: Mapping[str, Any]
) -> dict[str, Any]:
    """``overrides`` with a grid point applied; ``key[i]`` replaces one element of a list-valued key."""
    result = dict(overrides)
    for key, value in point.items():
        match = _INDEXED.match(key)
        if not match:
            result[key] = value
            continue
        name, index = match["name"], int(match["index"])
        if name not in base_config:
            raise UnknownNameError(unknown_name_message("config key", name, sorted(base_config)))
        current = result.get(name, base_config[name])
        if not isinstance(current, list | tuple):
            raise ConfigError(f"grid '{key}': config '{name}' is not a list (it is {current!r})")
        if index >= len(current):
            raise ConfigError(f"grid '{key}': config '{name}' has {len(current)} elements, no index {index}")
        result[name] = [value if i == index else v for i, v in enumerate(current)]
    return result


def values_of(config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The values a resolved config holds for grid keys (``key[i]`` reads one element)."""
    values = {}
    for key in keys:
        match = _INDEXED.match(key)
        values[key] = config[match["name"]][int(match["index"])] if match else config[key]
    return values


@dataclass(frozen=True)
class Expansion:
    """A sweep's points with their resolved configs, for one method on one dataset."""

    base: RunSpec  # the spec without grid values (seed: the first seed)
    data: GZSLData  # the loaded dataset, reused by in-process runs
    grid: Grid  # the grid expanded (the method's search space when none was given)
    points: list[dict[str, Any]]  # grid values as written (``kl_schedule[0]: 3``)
    configs: list[dict[str, Any]]  # the fully resolved config of each point


def default_grid(method: str, defaults_from: str) -> Grid:
    """The method's declared search space for data that takes ``defaults_from``'s settings."""
    cls = get_method(method)
    space = cls.search_space_for(defaults_from)
    if not space:
        raise ConfigError(f"method '{cls.name}' declares no search space; give one with --grid key=[values]")
    return parse_grid(space)


def expand(
    method: str,
    dataset: str,
    grid: Grid | None,
    *,
    random: int | None = None,
    random_seed: int = 0,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> Expansion:
    """Load the dataset once and resolve every grid point into a checked config (bad keys or values raise).

    ``grid`` None means the method's declared search space for the loaded data.
    """
    loaded: dict[tuple, GZSLData] = {}
    (base,) = plan_specs(
        [method],
        [dataset],
        [seed],
        overrides=overrides,
        config_file=config_file,
        options=options,
        data_dir=data_dir,
        device=device,
        threads=threads,
        loaded=loaded,
    )
    data = loaded[base.data_key]
    if grid is None:
        grid = default_grid(base.method, data.defaults_from)
    both = sorted(set(grid) & set(overrides or {}))
    if both:
        raise ConfigError(f"'{both[0]}' is both a grid axis and a --set value (the grid would win): give it once")
    points = grid_points(grid, random, random_seed)
    configs = point_configs(base.method, data.defaults_from, points, base.config, overrides, config_file)
    return Expansion(base, data, grid, points, configs)


def point_configs(
    method: str,
    defaults_from: str,
    points: Sequence[Mapping[str, Any]],
    base_config: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
) -> list[dict[str, Any]]:
    """The fully resolved config of each grid point, checked (a bad key or value raises)."""
    return [
        method_config(method, defaults_from, config_file, point_overrides(p, overrides or {}, base_config))
        for p in points
    ]


def sweep(
    method: str,
    dataset: str,
    grid: Sequence[str] | Mapping[str, Any] | None = None,
    seeds: int = 1,
    *,
    random: int | None = None,
    random_seed: int = 0,
    name: str | None = None,
    seed_start: int = 0,
    out: str | Path = "results",
    device: str = "auto",
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | Sequence[str] | None = None,
    data_dir: str | None = None,
    n_jobs: int = 1,
    threads: int | None = None,
    force: bool = False,
    quiet: bool = True,
) -> list[dict[str, Any]]:
    """Python twin of ``gzslbench sweep``: run every grid point over ``seeds``; one record per (point, seed).

    ``grid`` None runs the method's declared search space. A method whose result does not depend
    on the seed runs each point once, with the first seed.
    Records carry ``sweep: name``. A point whose config equals an earlier run's shares that
    run's record (same config hash), so a finished record is reused, whatever its tag.
    """
    n_jobs, _ = check_execution(seeds, seed_start, out, cores=cpu_count(), n_jobs=n_jobs, threads=threads)
    check_name(name)
    expansion = expand(
        method,
        dataset,
        given_grid(grid),
        random=random,
        random_seed=random_seed,
        seed=seed_start,
        overrides=as_mapping(overrides),
        config_file=config_file,
        options=as_mapping(options),
        data_dir=data_dir,
        device=device,
        threads=threads,
    )
    name = name or grid_name("sweep", expansion, random, random_seed)
    specs = [
        replace(expansion.base, config=config, seed=seed, sweep=name)
        for config in expansion.configs
        for seed in seeds_to_run(expansion.base.method, range(seed_start, seed_start + seeds))
    ]
    loaded = {expansion.base.data_key: expansion.data}
    if not quiet:
        note_plan([expansion.base], seeds, data_dir)
    return run_specs(specs, out, n_jobs=n_jobs, threads=threads, force=force, quiet=quiet, loaded=loaded)
