"""Progress bars that exist only when asked for, and leave the caller's process as it was.

Creating a plain tqdm bar, even a disabled one, makes a multiprocessing lock (which fixes the
caller's multiprocessing start method) and starts tqdm's monitor thread. A quiet call creates no
bar; a shown bar is made by :func:`tqdm_bar`, which starts no thread and leaves the start method
unset if it was.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def start_method_kept() -> Iterator[None]:
    """A multiprocessing start method the caller had not chosen is still unchosen after the block.

    Creating a multiprocessing lock through the default context (tqdm does for every bar,
    dask.distributed when it starts a local cluster) fixes the start method for the rest of the
    process, and a caller's own ``multiprocessing.set_start_method`` then fails.
    """
    unset = multiprocessing.get_start_method(allow_none=True) is None
    try:
        yield
    finally:
        if unset:
            multiprocessing.set_start_method(None, force=True)


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
