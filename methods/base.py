"""The contract between the protocol and a method.

The protocol calls one entry point, :meth:`Method.predict_seeds`, with a prepared
:class:`~gzslbench.protocol.splits.Split`, a resolved config and a list of :class:`RunContext`
(seed, device, history log), one per seed to train; a single run is a list of one. The method
trains, then yields, once per candidate model (e.g. after every final-classifier epoch), one
entry per context: that seed's :class:`Scores` for the test instances, or the
:class:`TrainingDiverged` that ended it. A method that trains one seed at a time implements only
:meth:`Method.predict`; the base class runs it for a list of one. The protocol, never the
method, turns scores into U / S / H and applies the model-selection modes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from gzslbench.core.environment import torch_threads
from gzslbench.core.files import atomic_path
from gzslbench.core.progress import tqdm_bar
from gzslbench.core.registry import METHODS
from gzslbench.protocol.scores import Scores

if TYPE_CHECKING:
    from gzslbench.core.config import Constraint
    from gzslbench.protocol.splits import Split


__all__ = ["DataShapes", "Method", "RunContext", "Scores", "TrainingDiverged"]  # Scores: defined by the protocol

T = TypeVar("T")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run is recorded as failed with this reason."""


class MethodError(RuntimeError):
    """A method broke its contract (e.g. scores of the wrong shape); the run is recorded as failed, named."""


def one_cpu_thread(device: torch.device) -> AbstractContextManager[None]:
    """One torch thread on a CPU for the block (a small classifier: thread hand-offs cost more than they save)."""
    return torch_threads(1 if device.type == "cpu" else None)


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
        if not self.progress:
            return iterable
        return tqdm_bar(iterable, desc=desc, total=total, leave=False, disable=None)

    def save_model(self, module: torch.nn.Module) -> None:
        """Write ``module``'s state dict to :attr:`model_path` atomically; no-op unless the run asked for it.

        Figures such as the latent t-SNE need the trained model, which the JSON record does not hold.
        """
        if self.model_path is None:
            return
        state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
        with atomic_path(self.model_path) as tmp:
            torch.save(state, tmp)

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


@dataclass(frozen=True)
class DataShapes:
    """The sizes a training step's cost depends on, without the data: what a speed probe needs."""

    n_train: int
    feature_dim: int
    attribute_dim: int
    n_seen: int
    n_classes: int


class Method:
    """Base class of every GZSL method in the registry.

    Subclasses set ``description`` (one line), ``reference`` (citation), ``defaults``
    (every config key with its default: unknown keys are rejected), ``ranges`` (the valid
    values of every key) and optionally ``dataset_defaults`` (per real dataset, e.g.
    ``{"cub": {...}}``; synthetic datasets use the entry of the real dataset they imitate).
    They implement :meth:`predict` (one seed per call), or :meth:`predict_seeds` itself with
    ``batched_seeds = True`` where several seeds train as one computation.

    ``ranges`` maps each key to a :class:`~gzslbench.core.config.Range` (numbers, e.g.
    ``Range(gt=0)`` or ``Range(ge=1, le="cls_epochs")``), :class:`~gzslbench.core.config.OneOf`
    (switches) or :class:`~gzslbench.core.config.Schedule` (``[factor, start, end]``); true/false
    keys need none. The core checks them before any run and refuses a value outside them with
    one line naming key, value and range. A key without a range (a third-party method that
    declares none) is only type-checked, NaN and infinity refused; ``gzslbench config`` shows
    it as not declared. ``check_config`` is for rules that ranges cannot state.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    ranges: ClassVar[dict[str, Constraint]] = {}
    dataset_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    # Datasets without reference settings of their own, mapped to the dataset whose settings they
    # borrow and why: {dataset: (borrowed_from, reason)}. Shown by `gzslbench config`, recorded per run.
    nearest_defaults: ClassVar[dict[str, tuple[str, str]]] = {}
    # Default validation grid of the method's key hyper-parameters for `gzslbench tune`:
    # {key: [candidate values]}, searched as a cartesian product on the validation split.
    search_space: ClassVar[dict[str, list[Any]]] = {}
    # Per real dataset, axes that replace those of ``search_space`` (e.g. a loss weight whose
    # reference value differs by an order of magnitude on one dataset).
    dataset_search_space: ClassVar[dict[str, dict[str, list[Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A range or per-dataset default of a key that ``defaults`` lacks is a typo: refused where it is made."""
        super().__init_subclass__(**kwargs)
        declared = set(cls.defaults)
        stray = [f"ranges['{key}']" for key in cls.ranges if key not in declared]
        stray += [
            f"dataset_defaults['{ds}']['{key}']"
            for ds, keys in cls.dataset_defaults.items()
            for key in keys
            if key not in declared
        ]
        if stray:
            raise TypeError(f"{cls.__qualname__}: {', '.join(stray)} names no key of its defaults")

    @classmethod
    def search_space_for(cls, dataset: str) -> dict[str, list[Any]]:
        """The default validation grid for data that takes ``dataset``'s settings (empty: none declared)."""
        source = cls.nearest_defaults.get(dataset, (dataset, ""))[0]
        return {**cls.search_space, **cls.dataset_search_space.get(source, {})}

    @classmethod
    def defaults_for(cls, dataset: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The per-dataset defaults layer for ``dataset`` and a note on where it comes from.

        Raises ValueError when the method has per-dataset settings but none for ``dataset``:
        running on another dataset's schedules without a word is how wrong tables are made.
        """
        if not cls.dataset_defaults:
            return {}, {"dataset": "", "note": "method defaults (no per-dataset settings)"}
        if dataset in cls.dataset_defaults:
            return dict(cls.dataset_defaults[dataset]), {
                "dataset": dataset,
                "note": f"reference settings for {dataset}",
            }
        if dataset in cls.nearest_defaults:
            source, why = cls.nearest_defaults[dataset]
            return dict(cls.dataset_defaults[source]), {
                "dataset": source,
                "note": f"{source} settings for {dataset}: {why}",
            }
        known = sorted([*cls.dataset_defaults, *cls.nearest_defaults])
        raise ValueError(
            f"has per-dataset settings for {', '.join(known)} only, not for '{dataset}': give the dataset a "
            "defaults_from of one of those (custom: -D defaults_from=NAME)"
        )

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> None:
        """Raise ValueError for values that types and ``ranges`` allow but the method does not (before any run)."""
        return None

    # Whether the result depends on the seed. A method that ignores it (a closed form) sets False: it is
    # trained once per config, and tables say "deterministic" instead of showing a spread of zero.
    seed_dependent: ClassVar[bool] = True

    # Whether predict_seeds accepts more than one context: several seeds of one config trained as one
    # computation (--batch-seeds). Methods without it are given exactly one context per call.
    batched_seeds: ClassVar[bool] = False

    def predict_seeds(
        self, split: Split, config: Mapping[str, Any], ctxs: list[RunContext]
    ) -> Iterator[list[Scores | TrainingDiverged]]:
        """Train one model per context on ``split`` and yield, per candidate model in order, one entry per context.

        The protocol's only entry point. An entry is that seed's :class:`Scores`, or the
        :class:`TrainingDiverged` that ended it (its later entries repeat it). Each seed draws
        from its own context's generators, so that its record is the run it would be alone; an
        exception raised instead of yielded fails every seed of the call. More than one context
        only where ``batched_seeds`` is set.

        This default runs :meth:`predict` for a list of exactly one context.
        """
        if len(ctxs) != 1:
            raise ValueError(f"{type(self).__name__} trains one seed at a time (batched_seeds is False)")
        for scores in self.predict(split, config, ctxs[0]):
            yield [scores]

    @classmethod
    def speed_probe(
        cls, shapes: DataShapes, config: Mapping[str, Any], device: torch.device, seeds: int
    ) -> Callable[[int], None] | None:
        """A function that runs ``n`` training iterations of ``seeds`` seeds (one computation where the method
        batches seeds) on random data of ``shapes``, or None when the method has none.

        The planner (:mod:`gzslbench.execution.layouts`) times it to find which layout of processes,
        threads and batched seeds is fastest on the machine; a method without a probe runs its
        seeds one after another on all cores, which is never slower than itself.
        """
        return None

    def predict(self, split: Split, config: Mapping[str, Any], ctx: RunContext) -> Iterator[Scores]:
        """Train on ``split`` for ``ctx``'s seed and yield test scores once per candidate model, in order.

        What a method that does not batch seeds implements (the default :meth:`predict_seeds` runs
        it); a method that implements :meth:`predict_seeds` itself need not. Divergence is raised.
        """
        raise NotImplementedError(f"{type(self).__name__} implements neither predict nor predict_seeds")


METHODS.base = Method  # plugins are checked against it
