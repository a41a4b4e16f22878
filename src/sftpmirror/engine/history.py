"""History and backups: every deploy recorded on the server, and the files it replaced or
deleted kept, so a deploy can be undone without uploading anything (issue 18).

Beside the manifest (the deploy's state directory):

    .sftpmirror-history.json          the deploys, oldest first (at most MAX_RECORDS)
    .sftpmirror-backups/<id>/
        manifest.json.gz              the manifest as it was before deploy <id>
        index.json                    the paths kept under files/ (for pruning)
        files/<path>                  each file <id> replaced (a hard link: no copy; renamed
                                      here where the server makes no hard links) or deleted
                                      (renamed here: the same rename a delete would be)

A record: ``id``, ``kind`` ("deploy" or "rollback"), ``time``, ``user``, ``host``, ``ci``,
``commit`` (the source's git commit, when it is in a work tree), ``counts``, ``backup``
(whether its files were kept), ``backup_by`` ("link" or "rename"), and ``live``: the deploy
whose files are live after it (itself for a deploy; the one it put back for a rollback).
A replaced file is kept by ``hardlink@openssh.com`` where the server makes hard links: the new
file then goes in by one atomic posix-rename. Where it makes none (rclone, paramiko), the old
file is renamed into the backup and the new one in after it: the name is missing for one round
trip, and the journal's swap line lets a cut be repaired (``keep = 0``: no backups, atomic
replaces). A rollback on such a server moves the files back out of the backup, which is then
spent (``backup`` false): the rollback's own backup holds what it replaced.
The last ``keep`` deploys' backups are kept; older ones are removed after a deploy that went
well.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import posixpath
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftpmirror.defaults import DEFAULT_KEEP as DEFAULT_KEEP
from sftpmirror.engine.concurrency import run_pool
from sftpmirror.engine.lock import CI_RUN_VARIABLES
from sftpmirror.engine.manifest import Manifest, ManifestStore
from sftpmirror.engine.model import Entry, Kind
from sftpmirror.engine.tree import NotFound, Tree, TreeError, Unsupported, read_bounded
from sftpmirror.errors import UsageError

HISTORY = ".sftpmirror-history.json"
BACKUPS = ".sftpmirror-backups"
MAX_RECORDS = 200
MAX_HISTORY_BYTES = 4 << 20
MAX_INDEX_BYTES = 64 << 20  # a backup's index: the paths it keeps (a server may lie)
_REMOVE_AT_ONCE = 16  # requests in flight while a backup is removed


def new_id() -> str:
    """A deploy's id: its UTC time, sortable, and 4 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(2).hex()


def git_commit(source: Path) -> str | None:
    """The commit of the work tree ``source`` is in, if any (``git rev-parse HEAD``)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) >= 40 else None


def is_ancestor(source: Path, commit: str, of: str) -> bool:
    """Is ``commit`` an ancestor of ``of`` (and not the same), in ``source``'s repository?"""
    if commit == of:
        return False
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "merge-base", "--is-ancestor", commit, of],
            capture_output=True, timeout=10, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def record(kind: str, deploy_id: str, live: str, **fields: Any) -> dict[str, Any]:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    ci = next((f"{v}={os.environ[v]}" for v in CI_RUN_VARIABLES if os.environ.get(v)), None)
    return {
        "id": deploy_id,
        "kind": kind,
        "live": live,
        "time": int(time.time()),
        "user": user,
        "host": socket.gethostname(),
        "ci": ci,
        **fields,
    }


@dataclass
class History:
    """The history file of one destination."""

    tree: Tree
    directory: str
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return posixpath.join(self.directory, HISTORY) if self.directory else HISTORY

    def backup_dir(self, deploy_id: str) -> str:
        base = posixpath.join(self.directory, BACKUPS) if self.directory else BACKUPS
        return posixpath.join(base, deploy_id)

    async def load(self) -> History:
        """Read the records (none when there is no history yet, or it is not ours)."""
        try:
            data = await read_bounded(self.tree, self.path, MAX_HISTORY_BYTES)
            if data is None:
                return self
            loaded = json.loads(data)
        except (NotFound, ValueError):
            return self
        if isinstance(loaded, list):
            self.records = [r for r in loaded if isinstance(r, dict) and "id" in r]
        return self

    async def append(self, entry: dict[str, Any]) -> None:
        self.records = [*self.records, entry][-MAX_RECORDS:]
        await self.save()

    async def save(self) -> None:
        """Write the records as they are (after a prune changed some)."""
        data = json.dumps(self.records, indent=1).encode()
        item = Entry(self.path, Kind.FILE, len(data), int(time.time()), 0o600)
        async with self.tree.open_write(item, perms=True) as writer:
            await writer.write(data, 0)

    def live(self) -> str | None:
        """The deploy whose files are live now."""
        return str(self.records[-1].get("live")) if self.records else None

    def deploys(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == "deploy"]

    def pick(self, live: str | None, to: str | None, what: str = "deploy") -> str:
        """What a rollback puts back: the deploy before ``live``, or ``to`` (older than it)."""
        deploys = [str(r["id"]) for r in self.deploys()]
        if live is None or live not in deploys:
            raise UsageError(f"no live {what} in the history of this destination: nothing to "
                             "roll back to")  # fmt: skip
        position = deploys.index(live)
        if to is None:
            if position == 0:
                raise UsageError(f"{live} is the first {what} recorded: nothing before it")
            return deploys[position - 1]
        if to not in deploys:
            raise UsageError(f"no {what} {to} in the history (sftpmirror history lists them)")
        if deploys.index(to) >= position:
            raise UsageError(f"{to} is not older than the live {what} {live}")
        return to

    async def prune(self, keep: int) -> int:
        """Remove the backups of all but the last ``keep`` deploys; how many were removed."""
        kept = {r["id"] for r in self.deploys()[-keep:]} if keep > 0 else set()
        removed = 0
        for entry in self.deploys():
            if entry["id"] in kept or not entry.get("backup"):
                continue
            await Backup(self.tree, self.backup_dir(entry["id"])).remove()
            entry["backup"] = False
            removed += 1
        return removed


class Backup:
    """The backup area of one deploy."""

    def __init__(self, tree: Tree, directory: str, *, links: bool = True) -> None:
        self.tree = tree
        self.directory = directory
        self.linking = links  # False where the tree cannot link: replaced files are moved here
        self.moved = 0  # replaced files renamed here (no hard links)
        self.kept: list[str] = []
        self.missing: list[str] = []  # replaced, but could not be kept (not ours to link)
        self.before = Manifest()
        self._made: set[str] = set()

    def file(self, path: str) -> str:
        return posixpath.join(self.directory, "files", path)

    @property
    def manifest_store(self) -> ManifestStore:
        return ManifestStore(
            self.tree, posixpath.join(self.directory, "manifest.json.gz"), in_mirrored_tree=False
        )

    async def start(self, before: Manifest, paths: Sequence[str] = ()) -> None:
        """Make the backup area, then at once keep ``before`` in it and make the directories
        ``paths`` (files the deploy may replace or delete) will need: all of them asked for
        at once, parents first (a server answers a session's requests in order: one round
        trip), and level by level (each level's at once) those that failed, as they do where
        a server runs requests out of order."""
        self.before = before
        await self._mkdirs(self.directory)
        wanted = {posixpath.dirname(self.file(p)) for p in paths}
        levels: dict[int, set[str]] = {}
        for directory in wanted:
            while directory and directory != self.directory and directory not in self._made:
                levels.setdefault(directory.count("/"), set()).add(directory)
                directory = posixpath.dirname(directory)
        await asyncio.gather(self._make_levels(levels), self.manifest_store.save(before))

    async def _make_levels(self, levels: dict[int, set[str]]) -> None:
        ordered = [d for depth in sorted(levels) for d in sorted(levels[depth])]
        done = await asyncio.gather(*map(self._mkdir_one, ordered), return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException) and not isinstance(result, TreeError):
                raise result
        for depth in sorted(levels):
            again = sorted(levels[depth] - self._made)
            await asyncio.gather(*map(self._mkdir_one, again))

    async def _mkdir_one(self, directory: str) -> None:
        await ensure_dir(self.tree, directory, 0o700)
        self._made.add(directory)

    async def _mkdirs(self, path: str) -> None:
        """``path`` and its parents, each made once: ``path`` is tried first (its parents are
        there on every deploy but the first: one round trip), then each from the top."""
        if path in self._made:
            return
        with contextlib.suppress(TreeError):
            await self._mkdir_one(path)
            return
        parts = path.split("/")
        for n in range(1, len(parts) + 1):
            sub = "/".join(parts[:n])
            if sub and sub not in self._made and sub != "..":
                await self._mkdir_one(sub)

    async def keep(self, path: str) -> str | None:
        """Keep the file at ``path``, about to be replaced: by a hard link now (None returned),
        or, where the tree cannot link, by the replace itself, which renames it to the path
        returned (``open_write(aside=…)``)."""
        target = self.file(path)
        await self._mkdirs(posixpath.dirname(target))
        if self.linking:
            try:
                await self.tree.link(path, target)
            except Unsupported:
                self.linking = False
            except TreeError:  # e.g. Linux's protected_hardlinks: a file another user owns
                self.missing.append(path)
                return None
            else:
                self.kept.append(path)
                return None
        self.kept.append(path)
        self.moved += 1
        return target

    async def move(self, path: str) -> None:
        """Delete ``path`` by moving it here."""
        target = self.file(path)
        await self._mkdirs(posixpath.dirname(target))
        await self.tree.rename(path, target)
        self.kept.append(path)

    @property
    def method(self) -> str:
        """How replaced files are kept on this tree: "link", or "rename" (no hard links)."""
        return "link" if self.linking else "rename"

    @property
    def size(self) -> int:
        """Bytes the kept files hold (as the manifest before the deploy recorded them)."""
        return sum(r.size for p in self.kept if (r := self.before.files.get(p)) is not None)

    async def finish(self) -> None:
        doc = {"kept": sorted(self.kept), "missing": sorted(self.missing), "bytes": self.size}
        data = json.dumps(doc).encode()
        entry = Entry(posixpath.join(self.directory, "index.json"), Kind.FILE, len(data), 0, 0o600)
        async with self.tree.open_write(entry, perms=True) as writer:
            await writer.write(data, 0)

    async def read_before(self) -> Manifest | None:
        manifest, _ = await self.manifest_store.load()
        return manifest

    async def index(self) -> tuple[list[str], list[str]]:
        """(kept, missing) as the backup's index says."""
        try:
            path = posixpath.join(self.directory, "index.json")
            data = await read_bounded(self.tree, path, MAX_INDEX_BYTES)
            doc = json.loads(data) if data is not None else None
        except (TreeError, ValueError):
            return [], []
        if not isinstance(doc, dict):
            return [], []
        kept = [p for p in doc.get("kept", []) if isinstance(p, str)]
        return kept, [p for p in doc.get("missing", []) if isinstance(p, str)]

    async def remove(self) -> None:
        """Remove the backup: its files (``_REMOVE_AT_ONCE`` requests in flight), then its
        index and manifest (the index last to go, so a cut removal can be taken up again), then
        its directories deepest level first, each level's at once."""
        kept, _ = await self.index()
        parents: set[str] = set()
        for path in kept:
            parent = posixpath.dirname(path)
            while parent:
                parents.add(self.file(parent))
                parent = posixpath.dirname(parent)
        await remove_files(self.tree, [self.file(p) for p in kept])
        for name in ("manifest.json.gz", "index.json"):
            await self._remove_quietly(posixpath.join(self.directory, name))
        await remove_dirs(self.tree, parents)
        for sub in (posixpath.join(self.directory, "files"), self.directory):
            await self._rmdir_quietly(sub)

    async def _remove_quietly(self, path: str) -> None:
        with contextlib.suppress(TreeError):
            await self.tree.remove(Entry(path, Kind.FILE))

    async def _rmdir_quietly(self, path: str) -> None:
        with contextlib.suppress(TreeError):
            await self.tree.rmdir(Entry(path, Kind.DIR))


async def remove_files(tree: Tree, paths: Sequence[str]) -> None:
    """Each file (or link) removed, ``_REMOVE_AT_ONCE`` requests in flight; errors dropped."""

    async def remove(path: str) -> None:
        with contextlib.suppress(TreeError):
            await tree.remove(Entry(path, Kind.FILE))

    await run_pool(list(paths), remove, _REMOVE_AT_ONCE)


async def remove_dirs(tree: Tree, paths: Iterable[str]) -> None:
    """The directories removed deepest level first, each level's at once; errors dropped (one
    that is not empty stays)."""
    levels: dict[int, list[str]] = {}
    for path in paths:
        levels.setdefault(path.count("/"), []).append(path)

    async def rmdir(path: str) -> None:
        with contextlib.suppress(TreeError):
            await tree.rmdir(Entry(path, Kind.DIR))

    for depth in sorted(levels, reverse=True):
        await asyncio.gather(*(rmdir(d) for d in levels[depth]))


async def ensure_dir(tree: Tree, path: str, mode: int) -> None:
    """``path`` made a directory, or found one already (made by an earlier try)."""
    try:
        await tree.mkdir(Entry(path, Kind.DIR, mode=mode), perms=True)
    except TreeError:
        if await tree.file_type(path) != "dir":
            raise
