"""Content hashes: SHA-256, streamed, so memory never grows with a file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import BinaryIO

HASH_CHUNK = 1 << 20  # bytes read at a time


def as_known(path: str, digest: str, known: Mapping[str, str] | None) -> str:
    """``digest``, or the equal string ``known`` holds for ``path``: one object for both sides
    (a manifest's 100,000 hashes are 11 MB; a second copy of each was the peak of a no-change
    run)."""
    if known is not None and (given := known.get(path)) == digest:
        return given
    return digest


def sha256_stream(f: BinaryIO) -> tuple[str, int]:
    """SHA-256 of what ``f`` holds from where it stands, and how many bytes that was."""
    digest = hashlib.sha256()
    size = 0
    while chunk := f.read(HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream a local file through SHA-256."""
    with open(path, "rb") as f:
        return sha256_stream(f)[0]
