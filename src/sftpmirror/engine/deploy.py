"""What a push keeps on the server beside the manifest, and does with it before it plans: the
deploy lock (``lock.py``), the journal of a run a cut or a crash stopped (``journal.py``), the
swaps it left half done, and the temporaries it left behind.

Only a push has this (``DeployState``): a pull changes nothing on the server, and its local
destination knows its temporaries by their name (``is_temp``) alone.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass

from sftpmirror.engine import journal, lock
from sftpmirror.engine.history import BACKUPS, HISTORY
from sftpmirror.engine.manifest import Manifest
from sftpmirror.engine.model import Kind, Listing
from sftpmirror.engine.tree import (
    TEMP_PREFIX,
    Tree,
    TreeError,
    backup_name,
    is_temp,
    is_temp_of,
)

# --release symlink (engine/release.py): the web root a link to ``<name>.releases/<id>``.
SUFFIX = ".releases"
RELEASE_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")


def release_id(target: str) -> str | None:
    """The release a link's target names (``….releases/<id>``), None when it names anything
    else."""
    head, _, rid = target.rstrip("/").rpartition("/")
    return rid if head.endswith(SUFFIX) and RELEASE_ID.fullmatch(rid) else None


@dataclass(frozen=True, slots=True)
class DeployState:
    """Where a push keeps its lock and journal: ``directory`` (relative to the destination's
    root; the manifest's directory, or the root) on the destination tree. ``token`` names this
    run in the lock (the same across reconnections); ``inside`` says the directory is inside
    the mirrored tree, so the lock and the journal are kept out of it."""

    directory: str = ""
    token: str = ""
    inside: bool = True
    lock_wait: float = 0.0
    break_lock: bool = False
    keep: int = 0  # deploys whose backups are kept, for rollback (0: none, no history)
    commit: str | None = None  # the source's git commit, for the history
    # --refuse-older: is this commit an ancestor of the one given (the live deploy's)?
    is_older: Callable[[str], bool] | None = None

    def lock(
        self, tree: Tree, warn: Callable[[str], None], directory: str | None = None
    ) -> lock.DeployLock:
        """This run's deploy lock on ``tree``, in ``directory`` (default: the state's)."""
        where = self.directory if directory is None else directory
        return lock.DeployLock(tree, where, self.token, wait=self.lock_wait,
                               break_lock=self.break_lock, warn=warn)  # fmt: skip

    @property
    def journal_path(self) -> str:
        return posixpath.join(self.directory, journal.NAME) if self.directory else journal.NAME

    @property
    def lock_path(self) -> str:
        return posixpath.join(self.directory, lock.NAME) if self.directory else lock.NAME

    def reserved(self) -> frozenset[str]:
        """Paths of the mirrored tree that are ours, never mirrored nor deleted."""
        if not self.inside:
            return frozenset()
        join = (lambda name: posixpath.join(self.directory, name)) if self.directory else str
        return frozenset({self.journal_path, self.lock_path, join(HISTORY), join(BACKUPS)})


def merge(old: Manifest | None, found: journal.Journaled | None) -> Manifest | None:
    """The manifest with the journal's records over it (newer: files that landed since)."""
    if found is None or not found.done:
        return old
    files = dict(old.files) if old is not None else {}
    files.update(found.done)
    return Manifest(files)


def pick_stale(src: Listing, dst: Listing, tags: set[str] | None) -> None:
    """Move the destination's leftover temporaries from its entries to ``stale``.

    With ``tags`` (a push that read a journal): files named with one of the journal's tags,
    and nothing else, so a site file that only looks like one is a file like any other (F21).
    Without (a pull's local destination): files named like a temporary that the source does
    not have. Never a directory."""
    # (The cheap test first, and a list of those only: not a copy of every entry.)
    for path in [p for p in dst.entries if TEMP_PREFIX in p]:
        entry = dst.entries[path]
        if entry.kind is not Kind.FILE:
            continue
        name = posixpath.basename(path)
        ours = is_temp_of(name, tags) if tags is not None else (
            is_temp(name) and path not in src.entries
        )  # fmt: skip
        if ours:
            del dst.entries[path]
            dst.stale.append(entry)


async def repair_swaps(dst: Tree, found: journal.Journaled) -> int:
    """Put back every final name a cut left missing in the middle of a swap (a server without
    posix-rename, or a backup made by renames: old file renamed aside, new one renamed in). The
    new file was complete before the swap began, so it goes in; if it is gone, the old one goes
    back (from the backup, where it went there). Returns how many."""
    repaired = 0
    for swap in found.swaps:
        path = swap.path
        if await dst.file_type(path) is not None:
            continue
        for candidate in (swap.temp, swap.aside or backup_name(swap.temp)):
            if await dst.file_type(candidate) == "file":
                try:
                    await dst.rename(candidate, path)
                except TreeError:
                    continue
                repaired += 1
                break
    return repaired
