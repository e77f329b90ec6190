"""What one run is: a :class:`RunSpec`, its place in the results folder and the command that repeats it."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gzslbench.core.config import config_hash
from gzslbench.results.store import SCORES_SUFFIX, record_path


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run; its record can be rebuilt from these fields alone.

    ``threads`` is part of the spec because the torch thread count can change results in the
    last bits; None until the scheduler (:func:`gzslbench.execution.schedule.schedule`) gives the
    run its threads. ``data_fingerprint`` (of the data loaded when the spec was planned) and
    ``defaults_source`` are carried for the record and the resume check, not for identity; so is
    ``sweep``, the name of the sweep that planned the run.
    """

    method: str
    dataset: str
    seed: int
    config: dict[str, Any]
    dataset_options: dict[str, Any] = field(default_factory=dict)
    data_dir: str | None = None
    device: str = "cpu"
    validate: bool = False
    threads: int | None = None
    defaults_source: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str | None = None
    save_scores: bool = False
    sweep: str | None = None  # the sweep or tuning search that planned the run; a tag, not identity
    save_model: bool = False

    @property
    def data_key(self) -> tuple:
        return data_key(self.dataset, self.data_dir, self.dataset_options)

    @property
    def config_hash(self) -> str:
        return config_hash(self.config, self.dataset_options)

    def path(self, out: str | Path) -> Path:
        return record_path(out, self.dataset, self.method, self.config_hash, self.seed)

    def model_path(self, out: str | Path) -> Path:
        """Where ``--save-model`` puts the trained weights: ``seed-<k>.model.pt`` beside the record."""
        return self.path(out).with_suffix(".model.pt")

    def scores_path(self, out: str | Path) -> Path:
        """Where ``--save-scores`` puts the last candidate's test scores: beside the record."""
        path = self.path(out)
        return path.with_name(path.stem + SCORES_SUFFIX)

    def command(self, unit_seeds: Sequence[int] = (), results: str | Path | None = None) -> str:
        """The CLI command that repeats exactly this run (shell-quoted), executed as it was.

        A seed trained in a batch (``unit_seeds``: the seeds of that computation) is repeated by
        rerunning the batch, since batching changes the last digits. Its command forces the batch,
        finished siblings included (rewritten with the same numbers); seeds that are not consecutive
        (a resumed batch around a finished seed) are named one by one (``--seed``).
        ``results`` is the results folder the record lives in, so that a replay writes beside it.
        """
        seeds = list(unit_seeds) or [self.seed]
        parts = ["gzslbench", "run", "--method", self.method, "--dataset", self.dataset]
        if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            parts += ["--seeds", str(len(seeds)), "--seed-start", str(seeds[0])]
        else:
            parts += [part for seed in seeds for part in ("--seed", str(seed))]
        parts += ["--device", self.device, "--n-jobs", "1", "--batch-seeds", str(len(seeds))]
        if self.threads is not None:
            parts += ["--threads", str(self.threads)]
        for key, value in self.dataset_options.items():
            parts += ["--dataset-option", f"{key}={yaml_value(value)}"]
        for key, value in self.config.items():
            parts += ["--set", f"{key}={yaml_value(value)}"]
        if self.data_dir:
            parts += ["--data-dir", self.data_dir]
        if results is not None:
            parts += ["--results", str(Path(results).resolve())]
        if self.validate:
            parts.append("--val")
        if self.save_model:
            parts.append("--save-model")
        if self.save_scores:
            parts.append("--save-scores")
        if len(seeds) > 1:
            parts.append("--force")  # else finished siblings leave this seed to train alone: other last digits
        return shlex.join(parts)


def data_key(dataset: str, data_dir: str | None, options: Mapping[str, Any]) -> tuple:
    """Runs with equal keys read the same data, so one command loads it once."""
    return (dataset, data_dir, tuple(sorted(options.items())))


def yaml_value(value: Any) -> str:
    """``value`` as ``--set key=VALUE`` writes it, so that the CLI reads back the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ",".join(yaml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)
