"""Progress bars that exist only when asked for.

Creating a tqdm bar, even a disabled one, makes a multiprocessing lock (which fixes the
caller's multiprocessing start method) and starts tqdm's monitor thread; a quiet call creates
none, so it leaves the caller's process as it was.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class NoBar:
    """A progress bar that shows nothing and only counts."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        return None

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        return None


def progress_bar(total: int, desc: str, unit: str, quiet: bool) -> Any:
    """A tqdm bar of ``total`` steps (shown on a terminal only), or a :class:`NoBar` when ``quiet``."""
    if quiet:
        return NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None)
