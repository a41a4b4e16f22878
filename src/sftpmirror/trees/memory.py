"""MemoryTree: a Tree held in two dicts, with fault injection, for the engine's unit tests.

It exists so that execute(), mirror() and with_reconnects() can be tested without a server or a
disk. It is never a stand-in for a server: it knows nothing of SFTP's quirks (no NFC names, no
symbolic links, no busy handles), and what it does right proves nothing about RemoteTree.

Semantics follow LocalTree: writes go to a temporary name (``temp_name()``) in the same
directory, listed by ``scan()`` like any file while open, renamed over the final name on a normal
exit and removed on an exception -- unless the connection is lost, which (as with a server)
leaves the temporary for the next run's sweep.

Faults: ``faults[(operation, path)]`` is raised by that operation on that path, every time
(operations: mkdir, set_attrs, remove, rmdir, open_read, read, open_write, write, rename, scan; for
write and rename the path is the final one; ``("scan", "")`` fails the scan, a TreeError at
``("scan", dir)`` makes that directory unreadable). ``lose_connection_after_writes = n``: n
more writes succeed, the next raises ConnectionLost, and from then on every operation does,
until ``reconnect()``. ``calls`` records each ``(operation, path)`` asked for.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from sftpmirror.engine.hashing import as_known
from sftpmirror.engine.model import Entry, Kind, Listing
from sftpmirror.engine.tree import (
    FULL,
    Capabilities,
    Excludes,
    FileReader,
    FileWriter,
    Hint,
    NotFound,
    OnSwap,
    TreeError,
    Unsupported,
    is_temp,
    temp_name,
)
from sftpmirror.errors import ConnectionLost

NOW = 1_700_000_000  # the mtime given to what the tree makes itself (directories)
DEFAULT_FILE_MODE = 0o644  # what a "server" gives without perms
DEFAULT_DIR_MODE = 0o755


class _Reader:
    def __init__(self, tree: MemoryTree, path: str) -> None:
        self._tree, self._path = tree, path

    async def read(self, size: int, offset: int) -> bytes:
        self._tree._check("read", self._path)
        data = self._tree.files.get(self._path)
        if data is None:
            raise NotFound("no such file")
        return data[0][offset : offset + size]


class _Writer:
    mtime: int | None = None  # the one asked is the one set

    def __init__(self, tree: MemoryTree, path: str, tmp: str) -> None:
        self._tree, self._path, self._tmp = tree, path, tmp

    async def write(self, data: bytes, offset: int) -> int:
        tree = self._tree
        tree._check("write", self._path)
        if tree.lose_connection_after_writes is not None:
            if tree.lose_connection_after_writes <= 0:
                tree.lose_connection_after_writes = None
                tree.lost = True
                raise ConnectionLost("connection lost (injected)")
            tree.lose_connection_after_writes -= 1
        if self._tmp not in tree.files:
            raise NotFound("no such file")
        old, mode, mtime = tree.files[self._tmp]
        padded = old.ljust(offset, b"\0")
        tree.files[self._tmp] = (padded[:offset] + data + padded[offset + len(data) :], mode, mtime)
        return len(data)


class MemoryTree:
    """A Tree in memory: ``files`` path → (bytes, mode, mtime); ``dirs`` path → (mode, mtime),
    the root being ``""`` (absent: the root directory does not exist)."""

    cheap_hashes = True

    def __init__(self, label: str = "memory", *, root_exists: bool = True) -> None:
        self.label = label
        self.files: dict[str, tuple[bytes, int, int]] = {}
        self.dirs: dict[str, tuple[int, int]] = {"": (DEFAULT_DIR_MODE, NOW)} if root_exists else {}
        self.faults: dict[tuple[str, str], BaseException] = {}
        self.lose_connection_after_writes: int | None = None
        self.lost = False
        self.calls: list[tuple[str, str]] = []
        self.caps = FULL  # what setting attributes does here (tests set a server's)

    async def capabilities(self) -> Capabilities:
        return self.caps

    # --- for tests ---------------------------------------------------------------------------

    def add_dir(self, path: str, mode: int = DEFAULT_DIR_MODE, mtime: int = NOW) -> None:
        """Make ``path`` and any missing parents (and the root)."""
        if path and (parent := posixpath.dirname(path)) not in self.dirs:
            self.add_dir(parent)
        self.dirs[path] = (mode, mtime)

    def add_file(
        self, path: str, data: bytes, mode: int = DEFAULT_FILE_MODE, mtime: int = NOW
    ) -> None:
        if (parent := posixpath.dirname(path)) not in self.dirs:
            self.add_dir(parent)
        self.files[path] = (data, mode, mtime)

    def reconnect(self) -> None:
        self.lost = False

    def temps(self) -> list[str]:
        """The upload temporaries present now."""
        return sorted(p for p in self.files if is_temp(posixpath.basename(p)))

    # --- the Tree protocol -------------------------------------------------------------------

    def _check(self, op: str, path: str) -> None:
        self.calls.append((op, path))
        if self.lost:
            raise ConnectionLost("connection lost (injected)")
        if (fault := self.faults.get((op, path))) is not None:
            raise fault

    def _need_dir(self, path: str) -> None:
        if path not in self.dirs:
            raise NotFound("no such file or directory")

    async def scan(self, excludes: Excludes, hint: Hint | None = None) -> Listing:
        self._check("scan", "")
        listing = Listing()
        if "" not in self.dirs:
            listing.root_exists = False
            return listing
        children: dict[str, list[str]] = {}
        for path in [*self.dirs, *self.files]:
            if path:
                children.setdefault(posixpath.dirname(path), []).append(path)
        stack = [""]
        while stack:
            rel_dir = stack.pop()
            if rel_dir:
                try:
                    self._check("scan", rel_dir)
                except TreeError as e:
                    listing.unreadable[rel_dir] = f"cannot list directory: {e}"
                    continue
            for rel in sorted(children.get(rel_dir, [])):
                if rel in self.dirs:
                    mode, mtime = self.dirs[rel]
                    entry = Entry(rel, Kind.DIR, mtime=mtime, mode=mode)
                else:
                    data, mode, mtime = self.files[rel]
                    entry = Entry(rel, Kind.FILE, size=len(data), mtime=mtime, mode=mode)
                if excludes(rel, entry.kind is Kind.DIR):
                    listing.excluded.add(rel)
                    continue
                listing.add(entry)
                if entry.kind is Kind.DIR:
                    stack.append(rel)
        return listing

    async def mkdir(self, entry: Entry, *, perms: bool) -> None:
        self._check("mkdir", entry.path)
        mode = entry.mode & 0o777 if perms else DEFAULT_DIR_MODE
        if not entry.path:
            if "" not in self.dirs:
                self.dirs[""] = (mode, NOW)
            return
        if entry.path in self.dirs or entry.path in self.files:
            raise TreeError("file exists")
        self._need_dir(entry.parent)
        self.dirs[entry.path] = (mode, NOW)

    async def set_attrs(self, entry: Entry, *, perms: bool) -> None:
        self._check("set_attrs", entry.path)
        if entry.path in self.dirs:
            mode, mtime = self.dirs[entry.path]
            self.dirs[entry.path] = (entry.mode & 0o777 if perms else mode, mtime)
        elif entry.path in self.files:
            data, mode, mtime = self.files[entry.path]
            mode = entry.mode & 0o777 if perms else mode
            self.files[entry.path] = (data, mode, entry.mtime if entry.kind is Kind.FILE else mtime)
        else:
            raise NotFound("no such file or directory")

    async def remove(self, entry: Entry) -> None:
        self._check("remove", entry.path)
        if entry.path in self.dirs:
            raise TreeError("is a directory")
        if self.files.pop(entry.path, None) is None:
            raise NotFound("no such file or directory")

    async def rmdir(self, entry: Entry) -> None:
        self._check("rmdir", entry.path)
        if entry.path in self.files:
            raise TreeError("not a directory")
        self._need_dir(entry.path)
        prefix = entry.path + "/" if entry.path else ""
        if any(p.startswith(prefix) for p in [*self.dirs, *self.files] if p != entry.path):
            raise TreeError("directory not empty")
        del self.dirs[entry.path]

    @asynccontextmanager
    async def open_read(self, path: str, size: int | None = None) -> AsyncIterator[FileReader]:
        self._check("open_read", path)
        if path in self.dirs:
            raise TreeError("is a directory")
        if path not in self.files:
            raise NotFound("no such file")
        yield _Reader(self, path)

    async def file_type(self, path: str) -> str | None:
        found = await self.kind_and_size(path)
        return found[0] if found is not None else None

    async def kind_and_size(self, path: str) -> tuple[str, int] | None:
        if path in self.files:
            return "file", len(self.files[path][0])
        return ("dir", 0) if path in self.dirs else None

    async def hash_files(
        self, paths: Sequence[str], known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for path in paths:
            try:
                self._check("open_read", path)
            except TreeError:
                continue
            if path in self.files:
                digest = hashlib.sha256(self.files[path][0]).hexdigest()
                hashes[path] = as_known(path, digest, known)
        return hashes

    async def rename(self, old: str, new: str) -> None:
        self._check("rename", new)
        if new in self.files or new in self.dirs:
            raise TreeError(f"{new} exists")
        if old not in self.files:
            raise NotFound(old)
        self.files[new] = self.files.pop(old)

    async def link(self, old: str, new: str) -> None:
        self._check("link", new)
        if old not in self.files:
            raise NotFound(old)
        if new in self.files:
            raise TreeError(f"{new} exists")
        self._need_dir(posixpath.dirname(new))
        self.files[new] = self.files[old]

    async def link_into_place(self, source: str, final: str, *, tag: str) -> None:
        self._check("rename", final)
        if source not in self.files:
            raise NotFound(source)
        self._need_dir(posixpath.dirname(final))
        self.files[final] = self.files[source]

    async def symlink(self, target: str, path: str) -> None:
        raise Unsupported("no symbolic links in a MemoryTree")

    async def readlink(self, path: str) -> str:
        raise Unsupported("no symbolic links in a MemoryTree")

    async def move_into_place(self, source: str, final: str, *, aside: str | None) -> None:
        self._check("rename", final)
        if source not in self.files:
            raise NotFound(source)
        self._need_dir(posixpath.dirname(final))
        self._put_aside(final, aside)
        self.files[final] = self.files.pop(source)

    def _put_aside(self, final: str, aside: str | None) -> None:
        if aside is not None and final in self.files:
            self._need_dir(posixpath.dirname(aside))
            self.files[aside] = self.files.pop(final)

    @asynccontextmanager
    async def open_log(self, path: str) -> AsyncIterator[FileWriter]:
        self._check("open_write", path)
        self.files[path] = (b"", 0o600, NOW)
        yield _Writer(self, path, path)

    @asynccontextmanager
    async def open_write(
        self,
        entry: Entry,
        *,
        perms: bool,
        tag: str | None = None,
        on_swap: OnSwap | None = None,
        aside: str | None = None,
    ) -> AsyncIterator[FileWriter]:
        final = entry.path
        self._check("open_write", final)
        directory, name = posixpath.split(final)
        self._need_dir(directory)
        tmp = posixpath.join(directory, temp_name(name, tag))
        self.files[tmp] = (b"", 0o600 if perms else DEFAULT_FILE_MODE, NOW)
        try:
            yield _Writer(self, final, tmp)
            data, mode, _ = self.files[tmp]
            self.files[tmp] = (data, entry.mode & 0o777 if perms else mode, entry.mtime)
            self._check("rename", final)
            if final in self.dirs:
                raise TreeError("is a directory")
            self._put_aside(final, aside)
            self.files[final] = self.files.pop(tmp)
        except BaseException:
            if not self.lost:  # a server whose connection is gone keeps the temporary
                self.files.pop(tmp, None)
            raise
