"""LocalTree.hash_files: small files hashed in one thread, big ones in the pool (bounded), every
digest equal to hashlib's, and what cannot be read left out rather than failing the run."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from sftpmirror.trees.local import HASH_THREADS, POOL_FROM, LocalTree


def test_small_and_big_files_hash_like_hashlib(tmp_path: Path) -> None:
    files: dict[str, bytes] = {}
    for i in range(2 * HASH_THREADS + 3):  # more big files than the pool may hold at once
        files[f"img/big{i}.bin"] = bytes([i]) * (POOL_FROM + i)
    for i in range(50):
        files[f"posts/p{i}/index.html"] = f"<p>{i}</p>".encode() * (i + 1)
    files["empty.txt"] = b""
    files["edge.bin"] = b"e" * (POOL_FROM - 1)
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    wanted = [*sorted(files), "gone.html", "posts"]  # vanished, and a directory

    got = asyncio.run(LocalTree(tmp_path, follow_symlinks=False).hash_files(wanted))

    assert got == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
