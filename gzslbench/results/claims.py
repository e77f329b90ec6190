"""Claims: two commands sharing a results folder never run the same spec at the same time.

A run holds an exclusive ``flock`` on ``<record>.claim`` while it runs. A second command that
cannot take the lock skips the run. The operating system drops the lock when the holder dies,
however it dies (crash, SIGKILL), so a claim left behind by a dead process is simply taken over.
The file holds the holder's host and pid, for messages. Locks need a local (or lock-capable
network) filesystem, as every POSIX tool that uses them does.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLAIM_SUFFIX = ".claim"


class ClaimHeld(Exception):
    """Another live process is running this spec."""


def claim_path(record_path: Path) -> Path:
    """The claim file of a record."""
    return record_path.with_name(record_path.name + CLAIM_SUFFIX)


def holder(record_path: Path) -> str:
    """``pid N on HOST`` of the claim's last holder, for messages."""
    try:
        info = json.loads(claim_path(record_path).read_text())
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def claimed(record_path: Path) -> Iterator[None]:
    """Hold the claim of ``record_path`` for the block; ClaimHeld at once if a live process holds it."""
    path = claim_path(record_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ClaimHeld(f"{record_path} is being run by {holder(record_path)}") from None
        try:  # the holder may have removed the file between our open and our lock: lock the current one
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode())
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
