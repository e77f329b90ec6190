"""Where benchmark data lives on disk: the one data root that loaders read and downloads fill."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_ENV = "GZSLBENCH_DATA"


def default_data_dir() -> Path:
    """Where datasets are looked for when neither ``data_dir`` nor ``$GZSLBENCH_DATA`` is given."""
    return Path(platformdirs.user_cache_dir("gzslbench")) / "data"


def data_root(data_dir: Path | str | None = None) -> Path:
    """The data root: ``data_dir``, else ``$GZSLBENCH_DATA``, else :func:`default_data_dir`."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else default_data_dir()
