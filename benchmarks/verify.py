"""Byte-for-byte comparison of a local tree with the server's copy, and remote-state helpers.

The harness runs as root on the same machine as sshd, so the "remote" tree is
simply the chroot's ``public_html`` on disk: it is compared, emptied,
snapshotted and restored directly (``cp -a`` keeps owners, modes and mtimes,
so a restored snapshot is exactly the state a tool's own upload left).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "IGNORED",
    "TreeDiff",
    "compare_trees",
    "copy_tree",
    "empty_directory",
    "same_bytes",
]

#: Remote paths that are not part of the mirrored content.
# sftpmirror's own state in the web root: the manifest, the history, the backups (a prefix).
IGNORED = frozenset({".sftpmirror-manifest.json.gz", ".sftpmirror-history.json"})
IGNORED_DIRS = (".sftpmirror-backups/",)

_CHUNK = 1 << 20


@dataclass
class TreeDiff:
    """How the actual tree differs from the expected one (empty lists: identical)."""

    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not (self.missing or self.extra or self.different or self.not_regular)

    def describe(self, limit: int = 5) -> str:
        parts = []
        for label, paths in (
            ("missing", self.missing),
            ("extra", self.extra),
            ("content differs", self.different),
            ("not a regular file", self.not_regular),
        ):
            if paths:
                shown = ", ".join(paths[:limit])
                more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
                parts.append(f"{len(paths)} {label}: {shown}{more}")
        return "; ".join(parts) or "identical"


def _entries(root: Path) -> tuple[dict[str, int], list[str]]:
    """Regular files under *root* (relative path -> size) and other non-directories."""
    files: dict[str, int] = {}
    others: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if os.path.isfile(full) and not os.path.islink(full):
                files[rel] = st.st_size
            else:
                others.append(rel)
    return files, others


def same_bytes(a: Path, b: Path) -> bool:
    """True if the two files have identical content."""
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            ca = fa.read(_CHUNK)
            cb = fb.read(_CHUNK)
            if ca != cb:
                return False
            if not ca:
                return True


def compare_trees(expected: Path, actual: Path, ignore: Collection[str] = IGNORED) -> TreeDiff:
    """Compare every regular file's path and bytes; directories only matter via their files."""
    want, want_other = _entries(expected)
    have, have_other = _entries(actual)
    for rel in ignore:
        have.pop(rel, None)
    for rel in [r for r in have if r.startswith(IGNORED_DIRS)]:
        del have[rel]
    diff = TreeDiff(
        missing=sorted(set(want) - set(have)),
        extra=sorted(set(have) - set(want)),
        not_regular=sorted(set(want_other) | set(have_other)),
    )
    for rel in sorted(set(want) & set(have)):
        if want[rel] != have[rel] or not same_bytes(expected / rel, actual / rel):
            diff.different.append(rel)
    return diff


def empty_directory(path: Path) -> None:
    """Remove everything inside *path*, keeping *path* itself (and its owner and mode)."""
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def copy_tree(source: Path, target: Path) -> None:
    """Copy the contents of *source* into the existing directory *target*, like ``cp -a``."""
    subprocess.run(["cp", "-a", f"{source}/.", f"{target}/"], check=True)
