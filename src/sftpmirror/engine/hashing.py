"""Content hashes: SHA-256, streamed, so memory never grows with a file."""

from __future__ import annotations

import hashlib
import os

HASH_CHUNK = 1 << 20  # bytes read at a time


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Stream a local file through SHA-256."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
