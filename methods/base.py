"""The contract between the protocol and a method.

A method gets a prepared :class:`~gzslbench.protocol.Split`, a resolved config, and a
:class:`RunContext` (seed, device, history log). It trains, then yields :class:`Scores`
for the test instances once per candidate model (e.g. after every final-classifier
epoch). The protocol, never the method, turns scores into U / S / H and applies the
model-selection modes.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from gzslbench.protocol import Split


T = TypeVar("T")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run is recorded as failed with this reason."""


@dataclass
class Scores:
    """Class scores (higher = more likely) of one candidate model on the test instances.

    ``seen`` is (n_test_seen, K) and ``unseen`` is (n_test_unseen, K) over the split's K classes.
    ``epoch`` is the 1-based index of the candidate (e.g. the final-classifier epoch).
    """

    epoch: int
    seen: torch.Tensor
    unseen: torch.Tensor


@dataclass
class RunContext:
    """Per-run services: the seed, the device, a log for per-epoch history and timings, model saving."""

    seed: int
    device: torch.device
    progress: bool = False
    model_path: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def generator(self, offset: int = 0, device: torch.device | None = None) -> torch.Generator:
        """A fresh generator seeded from the run's seed (``offset`` separates independent streams)."""
        return torch.Generator(device=device or self.device).manual_seed(self.seed * 1_000_003 + offset)

    def log(self, stage: str, epoch: int, **values: float) -> None:
        """Append one history row (e.g. the VAE losses of an epoch) and stop on a non-finite value."""
        row = {"stage": stage, "epoch": epoch, **{k: float(v) for k, v in values.items()}}
        self.history.append(row)
        bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise TrainingDiverged(f"{stage} epoch {epoch}: non-finite {', '.join(bad)}")

    def progress_bar(self, iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
        """``iterable`` with a tqdm bar when the run shows progress (a VAE run takes minutes)."""
        return tqdm(iterable, desc=desc, total=total, leave=False, disable=not self.progress)

    def save_model(self, module: torch.nn.Module) -> None:
        """Write ``module``'s state dict to :attr:`model_path` atomically; no-op unless the run asked for it.

        Figures such as the latent t-SNE need the trained model, which the JSON record does not hold.
        """
        if self.model_path is None:
            return
        self.model_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.model_path.name}.", suffix=".tmp", dir=self.model_path.parent)
        os.close(fd)
        try:
            state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
            torch.save(state, tmp)
            os.replace(tmp, self.model_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to ``timings[name]`` (seconds)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


class Method(ABC):
    """Base class of every GZSL method in the registry.

    Subclasses set ``description`` (one line), ``reference`` (citation), ``defaults``
    (every config key with its default: unknown keys are rejected) and optionally
    ``dataset_defaults`` (per real dataset, e.g. ``{"cub": {...}}``; synthetic datasets use
    the entry of the real dataset they imitate).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # Default validation grid of the method's key hyper-parameters for `gzslbench tune`:
    # {key: [candidate values]}, searched as a cartesian product on the validation split.
    search_space: ClassVar[dict[str, list[Any]]] = {}

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError for values the types allow but the method does not (called before any run)."""
        return None

    @abstractmethod
    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        """Train on ``split`` and yield test scores once per candidate model, in order."""
