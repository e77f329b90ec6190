"""Fetch a dataset release archive, verify its SHA-256, and unpack it safely.

Usage::

    from gzslbench.data.download import download

    download("xlsa17")                                   # into the data root, hash from ARCHIVES
    download("xlsa17", to="~/data", sha256="ab12...")    # a hash of your own

The rule: **nothing unverified is unpacked silently.** The expected SHA-256 is ``--sha256`` when
given, else the one stored in :data:`ARCHIVES`. A mismatch is refused and the file deleted. When no
hash is known, the archive is downloaded, its hash printed, and unpacking is refused unless the user
passes that hash back (``--sha256``) or consents explicitly (``accept_unverified``). The complete
but unaccepted file stays as ``<name>.part``, so the rerun does not fetch it again.

Downloads go to ``<target>/<file>.part`` and resume from its size with an HTTP ``Range`` request.
Unpacking happens in a staging folder inside the target and is moved into place only when every
member is out: a member with an absolute path or a ``..`` component, a zip symlink, or a tar link
leaving the target (tarfile's ``data`` filter) refuses the whole archive and writes nothing.

Why not pooch (a well-kept download-with-checksum library, weighed at version 1.9): it would
replace only :func:`fetch` and :func:`sha256_of`, and it does less than they do here. Its HTTP
downloader sends no ``Range`` header and streams into a temporary file that it deletes when the
transfer fails, so a broken download of a large archive starts over from byte 0 instead of
resuming; given no hash it accepts the file and only logs the hash, where this module keeps the
complete file as ``.part`` and unpacks nothing until the user passes the hash back. Its Unzip and
Untar processors extract in place, with none of the checks above (``..`` zip members are
rewritten rather than refused; tar's ``data`` filter only on Python 3.12 and later), so
:func:`unpack` would stay anyway. It would also bring ``requests`` and its dependencies for what
the standard library (urllib, hashlib) and tqdm, already a dependency, do here.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm import tqdm

from gzslbench.core.errors import ConfigError, DataError, UnknownNameError
from gzslbench.core.registry import unknown_name_message
from gzslbench.data.location import data_root

CHUNK = 1 << 20
TIMEOUT_S = 60.0


class DownloadError(DataError):
    """The archive could not be fetched, was not the expected file, or cannot be unpacked safely."""


@dataclass(frozen=True)
class Archive:
    """A release archive: where it is published, its file name, its SHA-256 once known, and its top folder."""

    name: str
    url: str
    filename: str
    sha256: str | None
    folder: str

    @property
    def url_env(self) -> str:
        """The environment variable that replaces ``url`` (a mirror, a local server)."""
        return f"GZSLBENCH_{self.name.upper()}_URL"


ARCHIVES: dict[str, Archive] = {
    "xlsa17": Archive(
        name="xlsa17",
        url="http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip",
        filename="xlsa17.zip",
        sha256=None,  # not yet recorded: pass --sha256 (printed by the first download) or --accept-unverified
        folder="xlsa17",
    ),
}


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download` did: the archive's hash, whether it was checked, and the paths it created."""

    sha256: str
    verified: bool
    unpacked: list[Path]


def get_archive(name: str) -> Archive:
    """The registered archive ``name``; UnknownNameError listing the known ones otherwise."""
    if name not in ARCHIVES:
        raise UnknownNameError(unknown_name_message("archive", name, sorted(ARCHIVES)))
    return ARCHIVES[name]


def resolve_url(archive: Archive, url: str | None = None) -> str:
    """``url``, else ``$GZSLBENCH_<NAME>_URL``, else the published URL; only http(s) URLs."""
    chosen = url or os.environ.get(archive.url_env) or archive.url
    if not re.match(r"https?://", chosen):
        raise ConfigError(f"download URL must start with http:// or https://, got {chosen!r}")
    return chosen


def normalise_sha256(value: str | None) -> str | None:
    """A lower-case 64-digit hex digest, or None; ConfigError for anything else."""
    if value is None:
        return None
    digest = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ConfigError(f"--sha256 must be 64 hexadecimal digits, got {value!r}")
    return digest


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _user_agent() -> str:
    try:
        return f"gzslbench/{version('gzslbench')}"
    except PackageNotFoundError:
        return "gzslbench"


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """``(start, total)`` of a ``Content-Range: bytes START-END/TOTAL`` header (total None for ``*``)."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not match:
        return None
    start = int(match.group(1)) if match.group(1) else -1
    return start, int(match.group(2)) if match.group(2) != "*" else None


def fetch(url: str, part: Path, *, timeout: float = TIMEOUT_S, log: Callable[[str], None] = lambda _: None) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already there.

    A server that answers ``206`` is appended to; one that ignores ``Range`` (``200``) restarts the
    file; ``416`` with a total equal to the part's size means it is already complete. A body shorter
    than announced keeps what arrived and raises, so the next call resumes.
    """
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            answered = _content_range(exc.headers.get("Content-Range"))
            if answered is not None and answered[1] == offset:
                log(f"{part} is already complete ({offset} bytes)")
                return
            part.unlink()
            log(f"the server cannot resume at byte {offset}; starting over")
            return fetch(url, part, timeout=timeout, log=log)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(f"cannot download {url}: {reason}") from exc

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and response.status == 206:
            answered = _content_range(response.headers.get("Content-Range"))
            if answered is None or answered[0] != offset:
                raise DownloadError(f"{url}: the server resumed at the wrong position; delete {part} and retry")
            total = answered[1] if answered[1] is not None else (offset + length if length is not None else None)
            mode = "ab"
            log(f"resuming {url} at byte {offset}")
        else:
            offset, total, mode = 0, length, "wb"
            log(f"downloading {url}")
        received = offset
        with (
            part.open(mode) as out,
            tqdm(total=total, initial=offset, unit="B", unit_scale=True, disable=None, leave=False) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"download of {url} broke off after {received} bytes ({exc}); run the same command again to resume"
                ) from exc
    if total is not None and received < total:
        raise DownloadError(
            f"download of {url} incomplete: {received} of {total} bytes; run the same command again to resume"
        )


def _check_member_name(name: str) -> None:
    """Refuse a member name that is absolute or climbs out with ``..``."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise DownloadError(f"archive member {name!r} would land outside the target folder; nothing was unpacked")


def _extract(archive: Path, staging: Path) -> None:
    """Extract ``archive`` (zip or tar, any tarfile compression) into ``staging`` after checking every member."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    _check_member_name(info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise DownloadError(f"archive member {info.filename!r} is a symlink; nothing was unpacked")
                zipped.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                for member in tarred.getmembers():
                    _check_member_name(member.name)
                tarred.extractall(staging, filter="data")
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive (truncated or corrupt?)")
    except tarfile.FilterError as exc:
        raise DownloadError(f"{archive}: unsafe member refused ({exc}); nothing was unpacked") from exc
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, EOFError) as exc:
        raise DownloadError(f"{archive}: corrupt or truncated archive ({exc}); nothing was unpacked") from exc
    except OSError as exc:
        raise DownloadError(f"cannot unpack {archive}: {exc}; nothing was unpacked") from exc


def unpack(archive: Path, dest: Path, *, force: bool = False, folder: str | None = None) -> list[Path]:
    """Unpack ``archive`` into ``dest``; all or nothing. Existing top-level entries are replaced only with ``force``.

    ``folder``: the top folder the archive must hold (another file under the same URL holds other things).
    """
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest))
    try:
        _extract(archive, staging)
        tops = sorted(p for p in staging.iterdir() if p.name != ".replaced")
        if not tops:
            raise DownloadError(f"{archive}: the archive is empty")
        if folder is not None and not (staging / folder).is_dir():
            shown = ", ".join(top.name for top in tops[:5])
            raise DownloadError(f"{archive}: holds {shown}, not the release's folder '{folder}/'; nothing unpacked")
        clashes = [dest / top.name for top in tops if os.path.lexists(dest / top.name)]
        if clashes and not force:
            raise DownloadError(f"{clashes[0]} already exists; remove it or pass --force to replace it")
        replaced = staging / ".replaced"
        replaced.mkdir()
        for old in clashes:
            os.replace(old, replaced / old.name)
        moved: list[Path] = []
        try:
            for top in tops:
                os.replace(top, dest / top.name)
                moved.append(dest / top.name)
        except OSError as exc:
            for path in moved:
                os.replace(path, staging / path.name)
            for old in clashes:
                os.replace(replaced / old.name, old)
            raise DownloadError(f"cannot move the unpacked files into {dest}: {exc}; nothing was changed") from exc
        return moved
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(
    name: str,
    to: Path | str | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    accept_unverified: bool = False,
    force: bool = False,
    keep_archive: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Downloaded:
    """Fetch archive ``name`` into ``to`` (default: the loaders' data root), verify it, and unpack it there.

    Raises:
        DownloadError: network or HTTP failure, hash mismatch, no known hash without consent, a
            corrupt or unsafe archive, or an existing copy without ``force``.
    """
    archive = get_archive(name)
    source = resolve_url(archive, url)
    expected = normalise_sha256(sha256) or archive.sha256
    dest = data_root(to)
    if os.path.lexists(dest / archive.folder) and not force:
        raise DownloadError(
            f"{dest / archive.folder} already exists; `gzslbench data check` checks it, --force replaces it"
        )
    dest.mkdir(parents=True, exist_ok=True)
    part = dest / f"{archive.filename}.part"
    fetch(source, part, log=log)

    actual = sha256_of(part)
    if expected is not None and actual != expected:
        part.unlink()
        raise DownloadError(
            f"{source}: SHA-256 mismatch (expected {expected}, got {actual}); the file was deleted, nothing unpacked"
        )
    if expected is None and not accept_unverified:
        raise DownloadError(
            f"no known SHA-256 for {name}; the downloaded file has sha256 {actual}: check it against a trusted "
            f"source, then rerun with --sha256 {actual} (or --accept-unverified); kept as {part}, nothing unpacked"
        )
    log(f"sha256 {actual} " + ("verified" if expected else "NOT verified (accepted without a known hash)"))

    final = dest / archive.filename
    os.replace(part, final)
    try:
        unpacked = unpack(final, dest, force=force, folder=archive.folder)
    except DownloadError:
        final.unlink()
        raise
    if not keep_archive:
        final.unlink()
    return Downloaded(sha256=actual, verified=expected is not None, unpacked=unpacked)
