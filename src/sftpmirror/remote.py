"""RemoteTree: the SFTP side, over one asyncssh SFTP client (many requests in flight).

Directory scans run concurrently; every name the server lists is checked before it is used
(a hostile or broken server must not make a pull write outside LOCAL_DIR). asyncssh's SFTP
errors become ``RemoteError`` here, at the boundary.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import TypeVar

import asyncssh

from .bulk_writes import BulkWriter
from .concurrency import run_pool, task_group
from .errors import RemoteError
from .manifest import HASH_CHUNK
from .model import Entry, Kind, Listing
from .sftp_pipeline import Spawn, WriteAhead, list_directory
from .tree import Excludes, FileReader, FileWriter, Names, is_temp, read_chunks, temp_name

# Directories listed at once. In A/B runs of a no-change push of the 1,281-file benchmark
# site: 128 → 512 took 1.32 s to 1.12 s at 20 ms RTT and 2.28 s to 1.88 s at 50 ms, and made
# no difference at 0 ms; 1,024 gained nothing more. OpenSSH's sftp-server holds a descriptor
# per open directory (a usual limit is 1,024); fewer than that are handled by _retry_busy.
SCAN_CONCURRENCY = 512
# A server out of file descriptors (sftp-server holds one per open file or directory) answers
# an open with a bare "Failure". Opens that get one are tried again while other requests
# finish: after 20 ms, then twice as long each time, eight times (5.1 s in all).
BUSY_RETRIES = 8
BUSY_FIRST_WAIT = 0.02

T = TypeVar("T")

# Errors that mean the session is gone: they abort a run instead of failing one file.
CONNECTION_ERRORS = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    ConnectionError,
)


def describe_sftp_error(exc: asyncssh.SFTPError) -> str:
    reason = exc.reason or type(exc).__name__
    if isinstance(exc, asyncssh.SFTPNoSuchFile):
        return f"no such file or directory ({reason})"
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return f"permission denied ({reason})"
    return reason


def _unsafe_name(name: str) -> str | None:
    if name in ("", ".", ".."):
        return "is not a file name"
    if "/" in name or "\0" in name:
        return "contains '/' or NUL"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "contains control characters"
    return None


async def free_space(sftp: asyncssh.SFTPClient, directory: str) -> int | None:
    """Bytes available to us in ``directory`` (statvfs@openssh.com), None if unknown."""
    try:
        vfs = await sftp.statvfs(directory or ".")
    except asyncssh.Error:
        return None
    return int(vfs.bavail * vfs.frsize)


class RemoteTree:
    cheap_hashes = False

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        root: str,
        label: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.sftp = sftp
        self.root = root
        self.label = label
        self.warn = warn
        self.names = Names()
        self._posix_rename = True
        self._retry_failures = True
        self.bulk = BulkWriter(sftp)

    async def _retry_busy(self, open_: Callable[[], Awaitable[T]]) -> T:
        """``open_()``, tried again on a generic Failure (see BUSY_RETRIES); other errors at
        once. An open still failing after every retry is not for want of descriptors (a
        read-only or full file system answers the same way): from then on, no retries, so
        such a run fails at once for its other files too, not 5 s per file."""
        wait = BUSY_FIRST_WAIT
        for _ in range(BUSY_RETRIES):
            if not self._retry_failures:
                break
            try:
                return await open_()
            except asyncssh.SFTPFailure:
                await asyncio.sleep(wait)
                wait *= 2
        try:
            return await open_()
        except asyncssh.SFTPFailure:
            self._retry_failures = False
            raise

    async def hash_files(self, paths: Sequence[str]) -> dict[str, str]:
        """Download and hash (``--verify``): the server has no shell to hash for us."""
        hashes: dict[str, str] = {}

        async def one(path: str) -> None:
            digest = hashlib.sha256()
            try:
                async with self.open_read(path) as reader:
                    async for data in read_chunks(reader, HASH_CHUNK):
                        digest.update(data)
            except asyncssh.SFTPError:
                return
            hashes[path] = digest.hexdigest()

        await run_pool(paths, one, SCAN_CONCURRENCY)
        return hashes

    def _full(self, path: str) -> str:
        if not path:
            return self.root or "."
        real = self.names.real(path)
        return posixpath.join(self.root, real) if self.root else real

    async def scan(self, excludes: Excludes) -> Listing:
        listing = Listing()
        limit = asyncio.Semaphore(SCAN_CONCURRENCY)
        async with task_group() as group:

            async def list_dir(rel_dir: str, names: list[asyncssh.SFTPName] | None = None) -> None:
                if names is None:
                    async with limit:
                        names = await self._readdir(rel_dir, group.create_task)
                seen: set[str] = set()
                for name in names:
                    if name.filename in (".", ".."):
                        continue
                    if isinstance(name.filename, str) and is_temp(name.filename):
                        path = self.names.child(rel_dir, name.filename)
                        listing.stale.append(Entry(path, Kind.FILE))
                        continue
                    child = self._entry(rel_dir, name, seen, listing)
                    if child is None:
                        continue
                    if excludes(child.path, child.kind is Kind.DIR):
                        listing.excluded.add(child.path)
                        continue
                    listing.add(child)
                    if child.kind is Kind.DIR:
                        group.create_task(list_dir(child.path))

            # The root's stat (does it exist, is it a directory?) and its listing go out
            # together: one round trip, not two.
            attrs, names = await asyncio.gather(
                self.sftp.stat(self._full("")),
                self._readdir("", group.create_task),
                return_exceptions=True,
            )
            if isinstance(attrs, asyncssh.SFTPNoSuchFile):
                listing.root_exists = False
                return listing
            if isinstance(attrs, asyncssh.SFTPError):
                raise RemoteError(f"{self.label}: {describe_sftp_error(attrs)}")
            if isinstance(attrs, BaseException):
                raise attrs
            if not stat.S_ISDIR(attrs.permissions or 0):
                raise RemoteError(f"{self.label}: not a directory")
            if isinstance(names, BaseException):
                raise names
            await list_dir("", names)
        return listing

    async def _readdir(self, rel_dir: str, spawn: Spawn) -> list[asyncssh.SFTPName]:
        path = self._full(rel_dir)
        try:
            return await self._retry_busy(lambda: list_directory(self.sftp, path, spawn))
        except asyncssh.SFTPError as e:
            raise RemoteError(f"cannot list {path}: {describe_sftp_error(e)}") from None

    def _entry(
        self, rel_dir: str, name: asyncssh.SFTPName, seen: set[str], listing: Listing
    ) -> Entry | None:
        filename = name.filename
        if not isinstance(filename, str):
            raise RemoteError(f"{rel_dir or '.'}: the server listed a name that is not UTF-8")
        if problem := _unsafe_name(filename):
            raise RemoteError(
                f"the server listed an unsafe name {filename!r} in {self._full(rel_dir)}: "
                f"it {problem}; refusing to go on"
            )
        if filename in seen:
            raise RemoteError(f"the server listed {filename!r} twice in {self._full(rel_dir)}")
        seen.add(filename)
        rel = self.names.child(rel_dir, filename)
        if listing.twin(rel):
            return None
        attrs = name.attrs
        mode = attrs.permissions or 0
        mtime = int(attrs.mtime or 0)
        if stat.S_ISDIR(mode):
            return Entry(rel, Kind.DIR, mtime=mtime, mode=stat.S_IMODE(mode))
        if stat.S_ISREG(mode):
            return Entry(rel, Kind.FILE, attrs.size or 0, mtime, stat.S_IMODE(mode))
        if stat.S_ISLNK(mode):
            return Entry(rel, Kind.SYMLINK, mtime=mtime)
        listing.warnings.append(f"{rel}: not a regular file, directory or link, skipped")
        return None

    async def mkdir(self, entry: Entry, *, perms: bool) -> None:
        path = self._full(entry.path)
        if not entry.path:
            await self.sftp.makedirs(path, exist_ok=True)
            return
        mode = entry.mode & 0o777 if perms else None
        if mode is None:
            await self.sftp.mkdir(path)
            return
        # mkdir's mode passes through the server's umask, chmod's does not. Both are sent at
        # once (one round trip): servers answer a session's requests in order. One that does
        # not may fail the chmod, which is then retried.
        made, chmodded = await asyncio.gather(
            self.sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode)),
            self.sftp.chmod(path, mode),
            return_exceptions=True,
        )
        if isinstance(made, BaseException):
            raise made
        if isinstance(chmodded, BaseException):
            await self.sftp.chmod(path, mode)

    async def set_attrs(self, entry: Entry, *, perms: bool) -> None:
        attrs = asyncssh.SFTPAttrs()
        if perms:
            attrs.permissions = entry.mode & 0o777
        if entry.kind is Kind.FILE:
            attrs.atime = attrs.mtime = entry.mtime
        await self.sftp.setstat(self._full(entry.path), attrs)

    async def remove(self, entry: Entry) -> None:
        await self.sftp.remove(self._full(entry.path))

    async def rmdir(self, entry: Entry) -> None:
        await self.sftp.rmdir(self._full(entry.path))

    @asynccontextmanager
    async def open_read(self, path: str) -> AsyncIterator[FileReader]:
        f = await self._retry_busy(lambda: self.sftp.open(self._full(path), "rb"))
        async with f:
            yield f

    @asynccontextmanager
    async def open_write(self, entry: Entry, *, perms: bool) -> AsyncIterator[FileWriter]:
        final = self._full(entry.path)
        directory, name = posixpath.split(final)
        tmp = posixpath.join(directory, temp_name(name))
        # Private while it is partial; without perms, the server's default mode from the start.
        initial = asyncssh.SFTPAttrs(permissions=0o600) if perms else asyncssh.SFTPAttrs()
        f = await self._retry_busy(lambda: self.sftp.open(tmp, "xb", initial))
        writer = WriteAhead(f, self.bulk)
        try:
            yield writer
            attrs = asyncssh.SFTPAttrs(atime=entry.mtime, mtime=entry.mtime)
            if perms:
                attrs.permissions = entry.mode & 0o777
            # The last write, the attributes and the close in one round trip (answered in
            # order); the rename waits for all three, so a failure never puts the file in place.
            answers = await asyncio.gather(
                writer.flush(), f.setstat(attrs), f.close(), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
            await self._rename(tmp, final)
        except BaseException as exc:
            await asyncio.shield(writer.abandon())
            await asyncio.shield(self._discard(f, tmp))
            if isinstance(exc, asyncssh.SFTPFailure | asyncssh.SFTPNoSpaceOnFilesystem):
                free = await free_space(self.sftp, directory)
                if free is not None and free < max(entry.size, 1):
                    raise RemoteError(
                        f"remote filesystem full: {free} bytes free in {directory or '.'}, "
                        f"{entry.path} needs {entry.size}",
                        hint="free space on the server, or ask for a larger quota",
                    ) from None
            raise

    async def _discard(self, f: asyncssh.SFTPClientFile, tmp: str) -> None:
        # If the connection is gone, the next run sweeps the temporary file.
        with suppress(asyncssh.Error, OSError):
            await f.close()
        with suppress(asyncssh.Error, OSError):
            await self.sftp.remove(tmp)

    async def _rename(self, tmp: str, final: str) -> None:
        if self._posix_rename:
            try:
                await self.sftp.posix_rename(tmp, final)
                return
            except asyncssh.SFTPOpUnsupported:
                self._posix_rename = False
                if self.warn is not None:
                    self.warn(
                        "the server refuses posix-rename: a replaced file is removed, then the "
                        "new one renamed in, so it is missing for a moment"
                    )
        # No atomic replace on this server: the final name is missing for one round trip.
        try:
            await self.sftp.rename(tmp, final)
        except asyncssh.SFTPFailure:
            await self.sftp.remove(final)
            await self.sftp.rename(tmp, final)
