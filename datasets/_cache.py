"""A cache of converted datasets as ``.npy`` files, memory-mapped on load.

Usage::

    key = cache_key(res101, att_splits)
    hit = load_arrays(key)
    if hit is None:
        save_arrays(key, arrays, meta)

Reading ``res101.mat`` takes seconds to minutes; a memory-mapped ``.npy`` opens in milliseconds.
The key hashes each source file's bytes (BLAKE2b over the whole file), so any change of content
invalidates its entry, even one that keeps the size and modification time; a file merely
touched or copied elsewhere keeps it. Hashing all of a 200 MB ``res101.mat`` takes 0.2 to 0.5 s
from the page cache (measured on a 2-core machine, idle and loaded), against seconds to minutes
for converting it; a sampled hash would be faster but could miss a damaged block.
Entries are written to a temporary folder and renamed into place, so a crash or a concurrent
writer never leaves a half-written entry. The loader stores the dataset's fingerprint in an
entry's metadata and converts again when a hit no longer matches it (an entry changed on disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs

CACHE_ENV = "GZSLBENCH_CACHE"
CACHE_FORMAT = 1  # bump when the stored layout changes; old entries are then ignored


def cache_root() -> Path:
    """``$GZSLBENCH_CACHE`` if set, else the user's cache folder for gzslbench."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("gzslbench"))


def converted_dir() -> Path:
    """Where converted datasets live: ``<cache root>/converted``."""
    return cache_root() / "converted"


def content_hash(path: Path) -> str:
    """BLAKE2b of all of ``path``'s bytes (hex)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, lambda: hashlib.blake2b(digest_size=20)).hexdigest()


def cache_key(*sources: Path) -> str:
    """A short hex key of the sources' contents (in order): equal bytes, equal key, wherever the files lie."""
    digest = hashlib.sha256(f"format={CACHE_FORMAT}".encode())
    for source in sources:
        digest.update(f"|{source.stat().st_size}|{content_hash(source)}".encode())
    return digest.hexdigest()[:24]


def load_arrays(key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """Memory-mapped (read-only) arrays and metadata of entry ``key``, or None when absent or damaged."""
    entry = converted_dir() / key
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta.get("format") != CACHE_FORMAT:
            return None
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]}
        for name, shape in meta["arrays"].items():
            if list(arrays[name].shape) != list(shape):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return arrays, meta


def save_arrays(key: str, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> Path | None:
    """Write entry ``key`` atomically; returns its folder, or None when the cache is not writable."""
    root = converted_dir()
    entry = root / key
    tmp: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
        full_meta = {**meta, "format": CACHE_FORMAT, "arrays": {n: list(a.shape) for n, a in arrays.items()}}
        (tmp / "meta.json").write_text(json.dumps(full_meta))
        if entry.exists():
            shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
        tmp = None
        return entry
    except OSError:
        return None  # a read-only or full cache must not stop the run: the data is in memory
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
