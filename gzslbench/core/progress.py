"""Progress bars that exist only when asked for, and leave the caller's process as it was.

Creating a plain tqdm bar, even a disabled one, makes a multiprocessing lock (which fixes the
caller's multiprocessing start method) and starts tqdm's monitor thread. A quiet call creates no
bar; a shown bar is made by :func:`tqdm_bar`, which starts no thread and leaves the start method
unset if it was.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from gzslbench.core.environment import start_method_kept


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


@functools.cache
def _bar_class() -> type:
    """tqdm's class without the monitor thread, which would outlive a call into gzslbench."""
    from tqdm.auto import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        monitor_interval = 0

    return Bar


def tqdm_bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> Any:
    """A tqdm bar (``kwargs`` as tqdm's) that starts no thread and does not fix the start method."""
    with start_method_kept():
        return _bar_class()(iterable, **kwargs)


def progress_bar(total: int, desc: str, unit: str, quiet: bool) -> Any:
    """A tqdm bar of ``total`` steps (shown on a terminal only), or a :class:`NoBar` when ``quiet``."""
    if quiet:
        return NoBar()
    return tqdm_bar(total=total, desc=desc, unit=unit, disable=None)
