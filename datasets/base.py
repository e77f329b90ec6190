"""The contract of a dataset adapter: a name, a description, options, and ``load``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from gzslbench.core.registry import DATASETS
from gzslbench.data.dataset import GZSLData


class DatasetAdapter(ABC):
    """Loads one dataset into a validated :class:`~gzslbench.data.dataset.GZSLData`.

    ``options`` lists the keyword options ``load`` accepts, with defaults (e.g. ``scale`` for
    synthetic data); the CLI passes them as ``--dataset-option key=value`` and the run record
    stores them, so a run can be repeated exactly.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    defaults_from: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    reads_data_dir: ClassVar[bool] = True  # False: generated, so a --data-dir is neither used nor recorded

    @abstractmethod
    def load(self, data_dir: Path | None = None, **options: Any) -> GZSLData:
        """Read (or generate) the dataset; raise DataError with one clear line on bad input."""


DATASETS.base = DatasetAdapter  # plugins are checked against it
