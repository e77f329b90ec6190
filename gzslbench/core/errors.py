"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

import errno


class GZSLBenchError(Exception):
    """Base class for errors caused by user input (names, files, options), not by bugs."""


class UnknownNameError(GZSLBenchError, KeyError):
    """A method, dataset or config key that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(GZSLBenchError, ValueError):
    """A config value that cannot be parsed or has the wrong type."""


class DataError(GZSLBenchError, ValueError):
    """A dataset file that is missing, unreadable or inconsistent."""


class DiskFullError(GZSLBenchError, OSError):
    """No space left (or quota exceeded) while writing a file; what was written before is intact."""

    def __init__(self, message: str, code: int = errno.ENOSPC) -> None:
        super().__init__(message)
        self.errno = code

    def __str__(self) -> str:  # OSError would prefix "[Errno 28]"
        return str(self.args[0]) if self.args else ""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(path: object | None = None) -> str:
    """The one line for a full disk: nothing finished is lost, since every file is written atomically."""
    where = f" while writing {path}" if path else ""
    return f"no space left on device{where}; finished records are kept"


def permission_message(exc: PermissionError) -> str:
    """The one line for a file or folder this user may not read or write: the user's to fix, not a fault."""
    return f"permission denied: '{exc.filename}'" if exc.filename else str(exc)


def folder_in_the_way(path: object) -> str:
    """The one line for a folder found where gzslbench writes a file."""
    return f"'{path}' is a folder where gzslbench writes a file: move or remove it"


def misplaced_path_message(exc: IsADirectoryError | NotADirectoryError | FileExistsError) -> str | None:
    """The one line for a folder where a file belongs, or the reverse (the user's files, not a fault); None if unnamed.

    A rename names its destination second, and the destination is what is in the way.
    """
    path = exc.filename2 or exc.filename
    if path is None:
        return None
    if isinstance(exc, IsADirectoryError):
        return folder_in_the_way(path)
    if isinstance(exc, NotADirectoryError):
        return f"cannot use '{path}': a part of that path is a file where a folder belongs"
    return f"cannot make the folder '{path}': a file is in its place; move or remove it"


class MissingExtraError(GZSLBenchError, ImportError):
    """An optional dependency that a feature needs is not installed; the message names the extra to install."""


def require_extra(module: str, *, extra: str, needed_for: str, package: str | None = None) -> None:
    """Import ``module`` or raise :class:`MissingExtraError`: ``{needed_for} need {package}: pip install ...``.

    ``package`` is the name the user knows (default: ``module``), e.g. scikit-learn for ``sklearn``.
    """
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{needed_for} need {package or module}: pip install 'gzslbench[{extra}]'") from None
