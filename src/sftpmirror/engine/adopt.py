"""Adopt a site another tool deployed: record in the manifest the remote files that match the
source, so they are ours from then on (a later ``--delete`` may remove them), without
uploading anything (issue 18).

A remote file matches when its size and mtime are the source's (recorded without a hash: it
vouches for nothing more, and ``--verify`` hashes it later), or, with ``verify``, when its
content is (downloaded and hashed now: recorded with the hash). Files that differ are left
out: the next push replaces them. Records the manifest has already are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from sftpmirror.engine.deploy import DeployState
from sftpmirror.engine.manifest import Manifest, ManifestStore, Record
from sftpmirror.engine.model import Kind
from sftpmirror.engine.reporter import Reporter
from sftpmirror.engine.tree import Excludes, Tree, TreeError
from sftpmirror.errors import RemoteError, UsageError


@dataclass(frozen=True, slots=True)
class Adopted:
    matched: int  # files recorded now (or already)
    hashed: int  # of those, with a hash of their content on the server
    differ: int  # files of the source that differ on the server (a push replaces them)
    missing: int  # files of the source not on the server


async def adopt(
    src: Tree,
    dst: Tree,
    state: DeployState,
    store: ManifestStore,
    reporter: Reporter,
    *,
    excludes: Excludes,
    verify: bool = False,
    window: int = 1,
) -> Adopted:
    held = state.lock(dst, reporter.warning)
    await held.acquire()
    try:
        reporter.phase("scanning")
        src_listing = await src.scan(excludes)
        dst_listing = await dst.scan(excludes)
        if not src_listing.root_exists:
            raise UsageError(f"source directory not found: {src.label}")
        if not dst_listing.root_exists:
            raise RemoteError(f"{dst.label}: no such directory: nothing to adopt")
        old, _ = await store.load()
        reporter.phase("comparing")
        same_size = [
            p
            for p, s in src_listing.entries.items()
            if s.kind is Kind.FILE
            and (d := dst_listing.entries.get(p)) is not None
            and d.kind is Kind.FILE
            and d.size == s.size
        ]
        src_hashes = await src.hash_files(same_size) if verify else {}
        dst_hashes = await dst.hash_files(same_size) if verify else {}
        files = dict(old.files) if old is not None else {}
        matched = hashed = differ = missing = 0
        for path, s in src_listing.entries.items():
            if s.kind is not Kind.FILE:
                continue
            d = dst_listing.entries.get(path)
            if d is None or d.kind is not Kind.FILE:
                missing += 1
                continue
            if verify:
                ours = src_hashes.get(path)
                if ours is not None and ours == dst_hashes.get(path):
                    files[path] = Record(d.size, d.mtime, ours)
                    matched += 1
                    hashed += 1
                    continue
            elif d.size == s.size and abs(d.mtime - s.mtime) <= window:
                files.setdefault(path, Record(d.size, d.mtime, None))
                matched += 1
                continue
            differ += 1
        try:
            await store.save(Manifest(files))
        except TreeError as e:
            raise RemoteError(f"cannot write the manifest: {e}") from None
        return Adopted(matched, hashed, differ, missing)
    finally:
        await held.release_quietly()
