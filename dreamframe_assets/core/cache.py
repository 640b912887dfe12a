"""Content-addressed item cache: never pay for an LLM call or a render twice.

Every item of every stage (one movie's plot, style, keyframe shard, QA) is stored
under a key that hashes all of its inputs: the upstream item's content, the params
slice it reads, the backend's identity and the version of the code that made it.
Same key, same bytes, so a hit is always safe to reuse. The cache lives in
``.dreamframe/cache``, outside the DVC outs that ``dvc repro`` deletes before a stage.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

CACHE_DIR = ".dreamframe/cache"
log = logging.getLogger("dreamframe")


def digest(*parts: Any) -> str:
    """A stable hex digest of JSON-able parts (dicts are key-sorted)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return xxhash.xxh3_128_hexdigest(text.encode())


def bytes_digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly it; True if written."""
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return False
    write_atomic(path, data)
    return True


# A cache entry is its content's checksum, then the content: a truncated or bit-flipped
# entry is detected on read, reported and recomputed, never served.
SEAL = b"dreamframe-item xxh3-128 "
SEAL_LEN = len(SEAL) + 32 + 1


def seal(data: bytes) -> bytes:
    """``data`` with its checksum in front, as the cache stores it."""
    return SEAL + bytes_digest(data).encode() + b"\n" + data


def unseal(blob: bytes) -> bytes | None:
    """The content of a sealed entry, or None when the entry is not whole (see ``seal``)."""
    if not blob.startswith(SEAL) or len(blob) < SEAL_LEN:
        return None
    data = blob[SEAL_LEN:]
    return data if blob[len(SEAL):SEAL_LEN - 1] == bytes_digest(data).encode() else None


def read_sealed(path: Path, what: str = "cache entry") -> bytes | None:
    """A sealed file's content; a missing file is None, a damaged one is reported, deleted and None."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    data = unseal(blob)
    if data is None:
        log.warning("%s %s is damaged (its checksum does not match); recomputing it", what, path)
        path.unlink(missing_ok=True)
    return data


class ItemCache:
    """One stage's items, keyed by content; counts hits and misses for metadata."""

    def __init__(self, root: Path, stage: str):
        self.dir = Path(os.environ.get("DREAMFRAME_CACHE", Path(root) / CACHE_DIR)) / stage
        self.stage = stage
        self.hits = 0
        self.misses = 0
        self.damaged = 0  # entries found truncated or altered, recomputed
        self.missed: list[str] = []  # item names recomputed this run

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / key

    def has(self, key: str) -> bool:
        """Whether an entry is stored under ``key`` (not read: ``get`` checks it)."""
        return self._path(key).exists()

    def get(self, key: str) -> bytes | None:
        """The item under ``key``, or None (counted as a hit or left for ``put``)."""
        path = self._path(key)
        if not path.exists():
            return None
        data = read_sealed(path, f"{self.stage} cache entry")
        if data is None:
            self.damaged += 1
            return None
        self.hits += 1
        return data

    def put(self, key: str, data: bytes, item: str = "") -> None:
        write_atomic(self._path(key), seal(data))
        self.misses += 1
        self.missed.append(item or key)

    def get_or_compute(self, key: str, compute: Callable[[], bytes], item: str = "") -> bytes:
        data = self.get(key)
        if data is None:
            data = compute()
            self.put(key, data, item)
        return data
