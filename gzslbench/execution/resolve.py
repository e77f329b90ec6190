"""From names to run specs: registered methods and datasets, config layers and dataset options.

Config precedence: method defaults < the method's per-dataset defaults < config file < overrides,
checked against the method's declared ranges before any run starts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gzslbench.core.config import check_ranges, load_config_file, resolve_config
from gzslbench.core.environment import resolve_device
from gzslbench.core.errors import ConfigError, DataError, GZSLBenchError
from gzslbench.core.registry import DATASETS, METHODS, is_builtin, origin
from gzslbench.data.dataset import GZSLData, validate
from gzslbench.execution.spec import RunSpec, data_key
from gzslbench.methods.base import Method


def get_method(name: str) -> type[Method]:
    """The registered Method class called ``name``."""
    return METHODS.get(name)


def dataset_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The adapter's options with ``options`` applied (unknown keys raise)."""
    kind = f"option of dataset '{name}'"
    resolved = resolve_config(DATASETS.get(name).options, [options], kind=kind, what="dataset option")
    for key, value in resolved.items():
        if isinstance(value, float) and not math.isfinite(value):  # no adapter means NaN; most would not check
            raise ConfigError(f"dataset '{name}': option '{key}' = {value} is not finite")
    return resolved


def load_dataset(name: str, data_dir: str | None = None, options: Mapping[str, Any] | None = None) -> GZSLData:
    """Load (or generate) a registered dataset with its options applied, validated (a plugin's too)."""
    adapter = DATASETS.get(name)()
    if data_dir is not None and not isinstance(data_dir, str | os.PathLike):
        raise DataError(f"data_dir must be a path, got {type(data_dir).__name__} {data_dir!r}")
    chosen = dataset_options(name, options or {})
    try:
        data = adapter.load(Path(data_dir).expanduser() if data_dir else None, **chosen)
    except GZSLBenchError:
        raise
    except Exception as exc:  # a plugin's own error: name the plugin, not gzslbench, as its source
        if is_builtin(type(adapter)):
            raise
        source = origin(type(adapter))
        raise DataError(f"dataset '{name}' ({source}) failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(data, GZSLData):
        raise DataError(f"dataset '{name}': load() returned a {type(data).__name__}, not a GZSLData")
    return data if data.extra.get("validated") else validate(data, f"dataset '{name}'")


def defaults_source(method: str, defaults_from: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The per-dataset defaults layer of ``method`` for data whose settings come from ``defaults_from``."""
    cls = get_method(method)
    try:
        return cls.defaults_for(defaults_from)
    except ValueError as exc:
        raise ConfigError(f"method '{cls.name}' {exc}") from exc


def method_config(
    method: str,
    defaults_from: str,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Defaults < per-dataset defaults < config file < overrides, checked against the defaults and ranges."""
    cls = get_method(method)
    layers = [defaults_source(method, defaults_from)[0]]
    if config_file:
        layers.append(load_config_file(config_file))
    layers.append(overrides or {})
    return _checked(cls, resolve_config(cls.defaults, layers, kind=f"config key of method '{cls.name}'"))


def recorded_config(method: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """A run record's config checked as a run checks its own, so a damaged value is named (ConfigError) before a
    model is rebuilt from it; keys this version no longer knows are left out, those it lacks take their defaults."""
    cls = get_method(method)
    known = {key: value for key, value in config.items() if key in cls.defaults}
    return _checked(cls, resolve_config(cls.defaults, [known], kind=f"config key of method '{cls.name}'"))


def _checked(cls: type[Method], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` once inside ``cls``'s ranges and rules, else ConfigError naming the method and the key."""
    try:
        check_ranges(config, cls.ranges)
        cls.check_config(config)
    except ValueError as exc:  # ConfigError included
        raise ConfigError(f"method '{cls.name}': {exc}") from exc
    return config


def absolute_paths(options: dict[str, Any]) -> dict[str, Any]:
    """A ``path`` option made absolute, so that the record's command replays from any folder."""
    if options.get("path"):
        return {**options, "path": str(Path(str(options["path"])).expanduser().resolve())}
    return options


def seeds_to_run(method: str, seeds: Sequence[int]) -> list[int]:
    """``seeds``, or only the first for a method whose result does not depend on the seed (one run stands for all)."""
    return list(seeds) if get_method(method).seed_dependent else list(seeds)[:1]


def plan_specs(
    methods: Sequence[str],
    datasets: Sequence[str],
    seeds: Iterable[int],
    *,
    overrides: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    validate: bool = False,
    threads: int | None = None,
    save_scores: bool = False,
    loaded: dict[tuple, GZSLData] | None = None,
    save_model: bool = False,
) -> list[RunSpec]:
    """Resolve names, options and configs into RunSpecs, loading (and so checking) each dataset once.

    ``threads`` None leaves each spec's threads to the scheduler. The loaded datasets are put in
    ``loaded`` (keyed by :attr:`RunSpec.data_key`) when given, for the in-process runs to reuse.
    A method whose result does not depend on the seed (``seed_dependent = False``) gets one spec,
    with the first seed: more seeds would train the same model again.
    """
    for kind, given in (("method", methods), ("dataset", datasets)):
        if not [name for name in given if str(name).strip()]:  # `run -m ''`: nothing to run is a typo
            raise ConfigError(f"no {kind} named: give at least one with --{kind} NAME (`gzslbench list {kind}s`)")
    seeds = list(seeds)
    resolved_device = str(resolve_device(device))
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None
    specs = []
    methods = list(dict.fromkeys(get_method(m).name for m in methods))  # `-m devise,devise` runs it once
    for ds_name in dict.fromkeys(DATASETS.get(d).name for d in datasets):
        opts = absolute_paths(dataset_options(ds_name, options or {}))
        ds_dir = data_dir if DATASETS.get(ds_name).reads_data_dir else None  # generated: no folder to record
        data = load_dataset(ds_name, ds_dir, opts)
        if loaded is not None:
            loaded[data_key(ds_name, ds_dir, opts)] = data
        for m_name in methods:
            method_seeds = seeds_to_run(m_name, seeds)
            config = method_config(m_name, data.defaults_from, config_file, overrides)
            source = defaults_source(m_name, data.defaults_from)[1]
            specs += [
                RunSpec(
                    m_name,
                    ds_name,
                    seed,
                    config,
                    opts,
                    ds_dir,
                    resolved_device,
                    validate,
                    threads,
                    source,
                    data.fingerprint,
                    save_scores,
                    save_model=save_model,
                )
                for seed in method_seeds
            ]
    return specs
