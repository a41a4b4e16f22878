"""The one protocol both sides implement, so push and pull are the same code with the sides swapped.

Writes are atomic per file: ``open_write`` yields a writer on a hidden temporary name in the
same directory; leaving the block normally sets the attributes and renames it over the final
name, leaving it by an exception removes the temporary file. A reader of the final name sees
the old file or the new one, never a part of either.

The error contract: a Tree raises only these, chosen by how the engine must react (as rclone
sorts errors into fatal / retry / no-retry), never its library's own exceptions:

    TreeError              this item failed: recorded, the run goes on, deletes are held back
    ├── NotFound           no such file or directory
    ├── PermissionDenied   the server or the OS said no
    ├── NoSpace            no space left, or over quota
    ├── Unsupported        the server does not do this operation
    └── ServerFailure      a bare "failure" with no reason (often: out of descriptors)
    errors.ConnectionLost  the session is gone: the run stops and may reconnect
    errors.SftpMirrorError any other (RemoteError, UsageError): the run stops with its exit code

``trees/remote.py`` gets these from ``transport/`` (one mapping of asyncssh's errors, in
``transport/errors.py``); ``trees/local.py`` maps OSError the same way.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import pathspec

from sftpmirror.engine.model import Entry, Listing


class TreeError(Exception):
    """One operation on one item failed; ``str()`` is the reason to show beside its path."""


class NotFound(TreeError):
    pass


class PermissionDenied(TreeError):
    pass


class NoSpace(TreeError):
    pass


class Unsupported(TreeError):
    pass


class ServerFailure(TreeError):
    pass


# Directories deeper than this are not descended into: a server listing a directory inside
# itself forever, or a local tree 1,000 levels deep, ends in one clear error, not a hang.
MAX_DEPTH = 256

TEMP_PREFIX = ".sftpmirror."
TEMP_SUFFIX = ".part"
BACKUP_SUFFIX = ".old"
_TEMP = re.compile(r"^\.sftpmirror\.[0-9a-f]{8}\..+\.part$", re.DOTALL)


def file_type_of(mode: int) -> str:
    """ "file", "dir", "symlink" or "other" for an ``st_mode``."""
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(mode) else "other"


def name_problem(name: str) -> str | None:
    """Why a name cannot be deployed (the same rule for every tree), None when it can: one that
    is not UTF-8 (SFTP names are UTF-8), or holds a control character (a newline, say: it
    breaks every line-oriented log and listing, and the remote scan refuses it)."""
    if name.isascii() and name.isprintable():  # (most names: in ASCII, the same test)
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains control characters"
    return None


def shown(path: str) -> str:
    """``path`` safe to print: bytes that are not UTF-8 and control characters escaped."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if ord(c) >= 0x20 and ord(c) != 0x7F else f"\\x{ord(c):02x}" for c in text)


def is_temp(name: str) -> bool:
    """Is this named like one of our upload temporaries (``.sftpmirror.<8 hex>.<name>.part``)?
    Only a name: a site file may be named so too. A push knows its temporaries by the tags in
    its journal (``is_temp_of``); only a pull's local destination goes by the name alone."""
    return bool(_TEMP.match(name))


def is_temp_of(name: str, tags: Collection[str]) -> bool:
    """Is this a temporary (or the backup of a replaced file) of a run with one of ``tags``?"""
    if not name.startswith(TEMP_PREFIX) or not name.endswith((TEMP_SUFFIX, BACKUP_SUFFIX)):
        return False
    tag = name[len(TEMP_PREFIX) : len(TEMP_PREFIX) + 9]
    return tag[:8] in tags and tag[8:] == "."


def backup_name(temp: str) -> str:
    """Where a server without posix-rename keeps the replaced file for the moment of the swap:
    the temporary's name with ``.old`` for ``.part``."""
    return temp[: -len(TEMP_SUFFIX)] + BACKUP_SUFFIX


class FileReader(Protocol):
    async def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; fewer also before the end (a server's answers
        are not split): the next read starts where this one ended. Empty at the end."""


async def read_chunks(reader: FileReader, size: int) -> AsyncIterator[bytes]:
    """A file's bytes, ``size`` at a time, from offset 0 to the end."""
    offset = 0
    while data := await reader.read(size, offset):
        offset += len(data)
        yield data


async def read_bounded(tree: Tree, path: str, limit: int, size: int | None = None) -> bytes | None:
    """A small file of ours read whole (a holder, a history, a journal, an index); None when it
    is larger than ``limit`` bytes: a hostile or broken server cannot fill memory. A missing
    file raises NotFound, as ``open_read`` does. ``size``: what it is thought to hold (read
    ahead at that size; any other size is read all the same)."""
    data = bytearray()
    async with tree.open_read(path, size) as reader:
        async for chunk in read_chunks(reader, min(limit + 1, 1 << 20)):
            data += chunk
            if len(data) > limit:
                return None
    return bytes(data)


Hint = asyncio.Future[Listing]
"""The other side's scan, running: what ``Tree.scan`` may guess from (see there)."""


OnSwap = Callable[[str, str, str | None], Awaitable[None]]
"""Told of a replace that is not atomic before it happens: (final path, temporary, aside): the
new file at the temporary, and where the old one goes (None: ``backup_name(temp)``, removed
once the swap is done)."""


class FileWriter(Protocol):
    @property
    def mtime(self) -> int | None:
        """Once ``open_write()``'s block has exited: the mtime the file has where it differs
        from the one asked (a server that ignores mtimes); None: the one asked."""

    async def write(self, data: bytes, offset: int) -> int:
        """Write at ``offset``. An error may surface at the next write or at the close: the
        data is known written only when ``open_write()``'s block has exited."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What setting attributes really does on a tree (probed on a server: ``RemoteTree``).

    ``chmod``: a mode set after creation takes effect. ``create_mode``: a mode given at
    creation does. ``default_mode``: what a file created without one gets (None: unknown).
    ``mtimes``: a modification time set takes effect. ``sequential_writes``: writes must
    arrive in order (one in flight per file). ``links``: ``link`` makes hard links (else a
    backup is made by renames)."""

    chmod: bool = True
    create_mode: bool = True
    default_mode: int | None = None
    mtimes: bool = True
    sequential_writes: bool = False
    links: bool = True

    def creatable(self, mode: int) -> bool:
        """Can a file be made with this mode (``mode & 0o777``) here, one way or another?"""
        return self.chmod or self.create_mode or self.default_mode in (None, mode & 0o777)


FULL = Capabilities()


class Tree(Protocol):
    """Both sides of a mirror. Every method raises only the errors of the contract above."""

    label: str
    cheap_hashes: bool  # True where hashing a file costs no network round trip (LocalTree)

    async def scan(self, excludes: Excludes, hint: Hint | None = None) -> Listing:
        """Every entry under the root but the excluded ones. ``hint`` is the other side's
        scan, as a task (waited for at most while this one goes on; its error is not this
        one's): where a listing costs round trips, the directories it names may be listed
        before the walk gets to them; what the walk finds decides what the listing holds."""
        ...

    async def capabilities(self) -> Capabilities:
        """What setting attributes does here (a server is probed once; it writes a probe file,
        so only a run that writes asks)."""

    async def file_type(self, path: str) -> str | None:
        """What ``path`` is, without following a link: "file", "dir", "symlink" or "other"
        (a FIFO, a device: opening one can block a server for good); None when missing."""

    async def kind_and_size(self, path: str) -> tuple[str, int] | None:
        """``file_type`` and the size it has (so a file of ours is read ahead at that size,
        one round trip after its open)."""

    async def mkdir(self, entry: Entry, *, perms: bool) -> None:
        """Create the directory (``entry.path == ""``: the root, with its parents)."""

    async def set_attrs(self, entry: Entry, *, perms: bool) -> None:
        """Set permission bits (when ``perms``) and, for files, the modification time."""

    async def remove(self, entry: Entry) -> None:
        """Remove a file or symbolic link (never follows the link)."""

    async def rmdir(self, entry: Entry) -> None: ...

    def open_read(
        self, path: str, size: int | None = None
    ) -> AbstractAsyncContextManager[FileReader]:
        """``size``: the file's listed size, where known (a server's read size is learned on
        a large file)."""

    async def hash_files(
        self, paths: Sequence[str], known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """SHA-256 of each file that could be read (the others are left out). ``known``: the
        hashes the caller holds already (a manifest's), by path: where a file's hash is the one
        known, that very string comes back, not an equal copy (``hashing.as_known``)."""

    def open_write(
        self,
        entry: Entry,
        *,
        perms: bool,
        tag: str | None = None,
        on_swap: OnSwap | None = None,
        aside: str | None = None,
    ) -> AbstractAsyncContextManager[FileWriter]:
        """Write to a temporary name (``temp_name(name, tag)``); on success set attributes and
        rename over ``entry.path``. Where the tree cannot replace atomically, ``on_swap(path,
        temp, aside)`` is awaited first (the journal records the swap, so a cut can be
        repaired), and the old file is moved to ``backup_name(temp)`` for the moment of the
        swap. ``aside``: where the file replaced is kept (a backup on a tree without hard
        links): renamed there, then the new one renamed in, one after the other (the name is
        missing in between), the swap told to ``on_swap`` first."""

    async def rename(self, old: str, new: str) -> None:
        """Rename ``old`` to ``new`` (which must not exist)."""

    async def link(self, old: str, new: str) -> None:
        """A hard link ``new`` to ``old`` (no copy; Unsupported where the tree cannot)."""

    async def link_into_place(self, source: str, final: str, *, tag: str) -> None:
        """Put ``source``'s file at ``final`` without copying it: a hard link at a temporary
        name beside ``final`` (``tag``'s), renamed over it atomically, as an upload lands."""

    async def move_into_place(self, source: str, final: str, *, aside: str | None) -> None:
        """Rename ``source`` over ``final`` (where the tree cannot link): atomically where
        ``aside`` is None; else the file at ``final`` (if any) is renamed to ``aside`` first,
        and ``source`` in after it."""

    async def symlink(self, target: str, path: str) -> None:
        """A symbolic link at ``path`` holding ``target`` (Unsupported where the tree has
        none)."""

    async def readlink(self, path: str) -> str:
        """What the symbolic link at ``path`` holds."""

    def open_log(self, path: str) -> AbstractAsyncContextManager[FileWriter]:
        """Create ``path`` (or empty it) and write it in place, no temporary: for our own
        journal, whose reader tolerates a last line cut short."""


class Excludes:
    """gitignore-style patterns, matched against paths relative to the tree's root, plus
    ``reserved`` paths that are never part of a mirror (the manifest)."""

    def __init__(self, patterns: tuple[str, ...] = (), reserved: frozenset[str] = frozenset()):
        self.patterns = patterns
        self.reserved = reserved
        self._spec = pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None

    def __call__(self, path: str, is_dir: bool) -> bool:
        if path in self.reserved:
            return True
        if self._spec is None:
            return False
        return bool(self._spec.match_file(path + "/" if is_dir else path))


class Names:
    """A tree's paths are compared in Unicode NFC (macOS writes NFD, Linux keeps bytes); this
    remembers the name on disk wherever it differs, so I/O uses the real name while a new file
    gets the NFC one."""

    def __init__(self) -> None:
        self._real: dict[str, str] = {}

    def child(self, parent: str, name: str) -> str:
        """The NFC path of ``name`` in ``parent`` (an NFC path); records the real one."""
        if name.isascii():  # NFC already: normalised only when it may not be
            path = f"{parent}/{name}" if parent else name
            if not self._real:  # (then the parent's real name is the parent)
                return path
        else:
            key = unicodedata.normalize("NFC", name)
            path = f"{parent}/{key}" if parent else key
        real = f"{self.real(parent)}/{name}" if parent else name
        if real != path:
            self._real[path] = real
        return path

    def real(self, path: str) -> str:
        """The name on disk (a loop, not recursion: a tree may be deeper than Python's stack)."""
        if not self._real:  # every name so far is its NFC form
            return path
        if not path or path in self._real:
            return self._real.get(path, path)
        tail: list[str] = []
        while path and path not in self._real:
            path, _, name = path.rpartition("/")
            tail.append(name)
        head = self._real.get(path, path)
        return "/".join(([head] if head else []) + tail[::-1])


def new_tag() -> str:
    """A run's tag (8 hex digits): its temporaries carry it, and its journal records it."""
    return secrets.token_hex(4)


def temp_name(name: str, tag: str | None = None) -> str:
    """A hidden name beside ``name`` for an upload in progress, within NAME_MAX (255 bytes)."""
    tag = tag or new_tag()
    room = 255 - len(TEMP_PREFIX) - len(tag) - 1 - len(TEMP_SUFFIX)
    base = os.fsencode(name)[:room].decode("utf-8", "ignore")
    return f"{TEMP_PREFIX}{tag}.{base}{TEMP_SUFFIX}"
