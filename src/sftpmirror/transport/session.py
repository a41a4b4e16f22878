"""One SFTP session, as the layers above see it: paths in, plain data out, and only the Tree
error contract's errors (``transport/errors.py`` maps asyncssh's).

``RemoteTree`` and ``doctor`` talk to the server through this and nothing else, so asyncssh
stays inside ``transport/``. The fast paths (``_fastpath/``) are chosen here once per session:
a pipelined listing or asyncssh's ``scandir``, a write answered later or asyncssh's ``write``.
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
import stat
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, replace

import asyncssh

from sftpmirror.engine.tree import NotFound, TreeError, Unsupported
from sftpmirror.errors import ConnectionLost, RemoteError
from sftpmirror.transport import _fastpath as fastpath
from sftpmirror.transport._fastpath.bulk_writes import BulkWriter
from sftpmirror.transport._fastpath.pipeline import Listed as Listed
from sftpmirror.transport._fastpath.pipeline import (
    OversizedAnswer,
    ReadAhead,
    WriteAhead,
    compact,
    list_directory,
)
from sftpmirror.transport._fastpath.watchdog import Watchdog
from sftpmirror.transport.errors import describe, mapped, reraise, to_tree_error
from sftpmirror.transport.profile import (
    SAFE_READ,
    Profile,
    learn_read,
    probe,
    refused,
    send_posix_rename,
)

# Files and directories open at once where the server states no limit (no limits@openssh.com):
# gesftpserver allows 128 and fails badly past it; OpenSSH states its own (about 1,000).
DEFAULT_HANDLES = 64
# Handles kept free below a limit the server states (its own files, a doctor's probe).
HANDLE_MARGIN = 8
# The most a tree opens at once (directories listed, files read or written). In A/B runs of a
# no-change push of the 1,281-file benchmark site: 128 → 512 listings at once took 1.32 s to
# 1.12 s at 20 ms RTT and 2.28 s to 1.88 s at 50 ms, and made no difference at 0 ms; 1,024
# gained nothing more. A server out of descriptors despite it is retried (RemoteTree).
MAX_HANDLES = 512
# The read size tried on a server that states none (OpenSSH's own limit). Measured at 20 ms on
# 20 MiB: ProFTPD 0.99 s at 16 KiB → 0.70 s, gesftpserver 0.89 → 0.75 s, paramiko 1.35 → 1.20 s;
# rclone answers 32 KiB at most, and asking more of it is slower (asyncssh asks for the rest of
# each short answer in turn: 5.75 s), hence learnt, not assumed.
READ_TRY = 256 << 10
# What a download asks for ahead of what it has taken (``ReadAhead``): a file this small is
# asked whole with its CLOSE, in the round trip after its OPEN (every file of the benchmark
# site). As much as the copy's two reads of 1 MiB in flight asked before, per file.
READ_AHEAD = 2 << 20


#: SFTP extensions doctor asks about (asyncssh's ``_supports_<name>`` flags).
EXTENSIONS = ("posix_rename", "statvfs", "fsync", "limits", "hardlink", "copy_data")


@dataclass(frozen=True, slots=True)
class Facts:
    """What the connection and the session are: for doctor and ``--debug``."""

    host_key: str  # SHA256 fingerprint of the host key the server proved it holds
    cipher: str
    mac: str
    strict_kex: bool | None  # None: unknown (the "facts" fast path is off)
    username: str
    sftp_version: int
    max_read: int
    max_write: int
    max_handles: int  # 0: the server set no limit (or did not say)


@dataclass(frozen=True, slots=True)
class Attrs:
    """What a server says of one name: ``mode`` with its file type bits, mtime in seconds."""

    mode: int = 0
    size: int = 0
    mtime: int = 0


def _attrs(a: asyncssh.SFTPAttrs) -> Attrs:
    return Attrs(a.permissions or 0, a.size or 0, int(a.mtime or 0))


Mapper = Callable[[], AbstractContextManager[None]]


def _oversized(asked: int, got: int) -> RemoteError:
    return RemoteError(
        f"the server answered a read of {asked} bytes with {got}: it breaks the SFTP protocol; "
        "refusing to go on"
    )


class Reader:
    """An open remote file, read at offsets; with ``ahead``, its READs pipelined."""

    def __init__(
        self, f: asyncssh.SFTPClientFile, mapped: Mapper = mapped, ahead: ReadAhead | None = None
    ) -> None:
        self._f = f
        self._mapped = mapped
        self._ahead = ahead

    async def read(self, size: int, offset: int) -> bytes:
        with self._mapped():
            try:
                if self._ahead is not None:
                    data: bytes | str = await self._ahead.read(size, offset)
                else:
                    data = await self._f.read(size, offset)
            except OversizedAnswer as e:
                raise _oversized(e.asked, e.got) from None
        if len(data) > size:
            raise _oversized(size, len(data))
        return data if isinstance(data, bytes) else data.encode()

    async def close(self) -> None:
        with suppress(asyncssh.Error, OSError):
            if self._ahead is not None:
                await self._ahead.close()
            else:
                await self._f.close()


def _settable(mode: int | None, mtime: int | None) -> asyncssh.SFTPAttrs:
    """The attributes to set: only those given (SFTP sets nothing it is not sent)."""
    attrs = asyncssh.SFTPAttrs()
    if mode is not None:
        attrs.permissions = mode
    if mtime is not None:
        attrs.atime = attrs.mtime = mtime
    return attrs


class Writer:
    """A remote file being written: ``write`` at offsets, then ``finish`` or ``discard``."""

    def __init__(
        self,
        f: asyncssh.SFTPClientFile,
        bulk: BulkWriter,
        pipelined: bool,
        mapped: Mapper = mapped,
    ) -> None:
        self._f = f
        self._ahead = WriteAhead(f, bulk) if pipelined else None
        self._mapped = mapped
        self.mtime: int | None = None  # what the server says the file's mtime is (observe)

    async def write(self, data: bytes, offset: int) -> int:
        with self._mapped():
            if self._ahead is not None:
                return await self._ahead.write(data, offset)
            await self._f.write(data, offset)
            return len(data)

    async def finish(
        self,
        *,
        mode: int | None,
        mtime: int | None,
        observe: bool = False,
        lenient: bool = False,
    ) -> None:
        """The last write's answer, the attributes and the close, in one round trip (answered
        in order); any failure among them is raised. ``observe``: ask the server the file's
        mtime too (``self.mtime``), for a server that ignores the one it is sent. ``lenient``:
        attributes the server refuses are left unset (the server's profile is not known yet)."""
        flush = self._ahead.flush() if self._ahead is not None else asyncio.sleep(0)
        steps: list[Coroutine[object, object, object]] = [flush]
        setting = mode is not None or mtime is not None
        if setting:
            steps.append(self._f.setstat(_settable(mode, mtime)))
        if observe:
            steps.append(self._f.stat())
        steps.append(self._f.close())
        answers = await asyncio.gather(*steps, return_exceptions=True)
        if setting and lenient and refused(answers[1]):
            answers[1] = None
        for answer in answers:
            reraise(answer)
            if isinstance(answer, asyncssh.SFTPAttrs) and answer.mtime is not None:
                self.mtime = int(answer.mtime)

    async def discard(self) -> None:
        """Forget the write in flight and close; errors are dropped (the file is abandoned)."""
        if self._ahead is not None:
            await self._ahead.abandon()
        with suppress(asyncssh.Error, OSError):
            await self._f.close()


class Session:
    """One SFTP session (of one connection)."""

    def __init__(
        self,
        sftp: asyncssh.SFTPClient,
        conn: asyncssh.SSHClientConnection | None = None,
        *,
        stall_timeout: float | None = None,
    ) -> None:
        self._sftp = sftp
        self._conn = conn
        self._pipelined = fastpath.enabled("pipeline")
        self._bulk = BulkWriter(sftp)
        self._watchdog: Watchdog | None = None
        if conn is not None and stall_timeout and fastpath.enabled("watchdog"):
            self._watchdog = Watchdog(sftp, conn, stall_timeout)
        self.profile = self._stated()
        # The size one read asks for: the server's stated limit, else learnt (None: not yet,
        # asyncssh's safe 16 KiB meanwhile).
        self.read_len: int | None = self.profile.max_read if self.profile.limits else None
        self._learning = asyncio.Lock()
        self._symlink_swapped: bool | None = None  # learnt by the session's first symlink

    def _stated(self) -> Profile:
        """The profile as far as the server states it (version, limits, extensions); the
        probe (``probe()``) finds out the rest."""
        limits = self._sftp.limits
        stated = limits.max_open_handles
        handles = min(MAX_HANDLES, max(1, stated - HANDLE_MARGIN)) if stated else DEFAULT_HANDLES
        offered = self.extensions()
        software = self._conn.get_extra_info("server_version", "?") if self._conn else "?"
        return Profile(
            software=str(software),
            max_handles=MAX_HANDLES if offered.get("limits") and not stated else handles,
            max_read=limits.max_read_len,
            max_write=limits.max_write_len,
            limits=bool(offered.get("limits")),
            posix_rename=True if offered.get("posix_rename") else None,
            posix_rename_advertised=bool(offered.get("posix_rename")),
            hardlink=offered.get("hardlink"),
        )

    async def probe(self, directory: str, tag: str | None = None) -> Profile:
        """Find out what the server really does, with probe files in ``directory`` (see
        ``transport/profile.py``) and return the profile. Without the ``probe`` fast path
        (asyncssh changed), the stated profile is kept."""
        if self.profile.probed or not fastpath.enabled("probe"):
            return self.profile
        self.profile = await probe(self._sftp, directory, self.profile, tag)
        return self.profile

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        """``errors.mapped``, and a connection dropped by the watchdog said as a stall."""
        try:
            with mapped():
                yield
        except ConnectionLost:
            if self._watchdog is not None and self._watchdog.stalled:
                raise ConnectionLost(
                    f"the server stopped answering: no reply in {self._watchdog.timeout:g} s"
                ) from None
            raise

    @property
    def pipelined(self) -> bool:
        return self._pipelined

    def facts(self) -> Facts:
        conn = self._conn
        key = conn.get_server_host_key() if conn is not None else None
        strict = getattr(conn, "_strict_kex", None) if fastpath.enabled("facts") else None
        limits = self._sftp.limits
        return Facts(
            host_key=key.get_fingerprint("sha256") if key else "(unknown)",
            cipher=str(conn.get_extra_info("send_cipher", "?")) if conn else "?",
            mac=str(conn.get_extra_info("send_mac", "?")) if conn else "?",
            strict_kex=strict if isinstance(strict, bool) else None,
            username=str(conn.get_extra_info("username", "?")) if conn else "?",
            sftp_version=self._sftp.version,
            max_read=limits.max_read_len,
            max_write=limits.max_write_len,
            max_handles=limits.max_open_handles,
        )

    async def stat(self, path: str) -> Attrs:
        with self._mapped():
            return _attrs(await self._sftp.stat(path))

    async def lstat(self, path: str) -> Attrs:
        """The attributes of ``path`` itself (a link is not followed)."""
        with self._mapped():
            return _attrs(await self._sftp.lstat(path))

    async def listdir(self, path: str) -> list[Listed]:
        """Every name in a directory but ``.`` and ``..``: (name as the server sent it, str
        where it is UTF-8 and bytes where not, mode with its file type bits, size, mtime)."""
        with self._mapped():
            if self._pipelined:
                return await list_directory(self._sftp, path)
            # A bytes path: asyncssh gives the names undecoded too.
            return [
                compact(name)
                async for name in self._sftp.scandir(path.encode())
                if name.filename not in (b".", b"..")
            ]

    async def makedirs(self, path: str) -> None:
        with self._mapped():
            await self._sftp.makedirs(path, exist_ok=True)

    async def mkdir(self, path: str, mode: int | None) -> None:
        """Make a directory; with ``mode``, chmod it too (mkdir's mode passes through the
        server's umask, chmod's does not). Both go out at once, one round trip: servers answer
        a session's requests in order. One that does not may fail the chmod: tried again."""
        with self._mapped():
            if mode is None:
                await self._sftp.mkdir(path)
                return
            if self.profile.chmod_refused:  # its mode from the mkdir alone
                await self._sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode))
                return
            made, chmodded = await asyncio.gather(
                self._sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=mode)),
                self._sftp.chmod(path, mode),
                return_exceptions=True,
            )
            reraise(made)
            if isinstance(chmodded, BaseException):
                await self._chmod_made(path, mode)

    async def _chmod_made(self, path: str, mode: int) -> None:
        """The chmod of a directory just made failed: tried again (a server that answers out
        of order); refused, the directory is fine if the mkdir gave it its mode already (the
        server's refusal learnt), else the error says what it got."""
        try:
            await self._sftp.chmod(path, mode)
            return
        except asyncssh.SFTPError as e:
            error = e
        got = stat.S_IMODE((await self._sftp.stat(path)).permissions or 0)
        if refused(error):
            self.profile = replace(self.profile, chmod_refused=True)
        if got != mode:
            raise type(to_tree_error(error))(
                f"made, but with mode {got:03o}: the server refused its mode {mode:03o} "
                f"({describe(error)})"
            )

    async def setstat(self, path: str, *, mode: int | None, mtime: int | None) -> None:
        with self._mapped():
            await self._sftp.setstat(path, _settable(mode, mtime))

    async def remove(self, path: str) -> None:
        with self._mapped():
            await self._sftp.remove(path)

    async def rmdir(self, path: str) -> None:
        with self._mapped():
            await self._sftp.rmdir(path)

    async def rename(self, old: str, new: str) -> None:
        """SFTP v3 rename: fails where ``new`` exists (on most servers)."""
        with self._mapped():
            await self._sftp.rename(old, new)

    async def link(self, old: str, new: str) -> None:
        """A hard link (hardlink@openssh.com); Unsupported where the server lacks it, or where
        the probe saw it make no link (rclone answers OK)."""
        if self.profile.hardlink is False and self.profile.probed:
            raise Unsupported("the server's hardlink@openssh.com makes no link")
        with self._mapped():
            await self._sftp.link(old, new)

    async def posix_rename(self, old: str, new: str) -> None:
        """Atomic replace (posix-rename@openssh.com); Unsupported where the server lacks it.
        Where it is not advertised, it is sent all the same while the profile does not say it
        fails (paramiko supports it unadvertised): the first answer settles it, whether the
        probe's or a replace's before the probe (the deploy lock's holder)."""
        profile = self.profile
        if profile.posix_rename_advertised or not fastpath.enabled("probe"):
            with self._mapped():
                await self._sftp.posix_rename(old, new)
            return
        if profile.posix_rename is False or (profile.posix_rename is None and profile.probed):
            raise Unsupported("the server does not support posix-rename")
        with self._mapped():
            try:
                await send_posix_rename(self._sftp, old, new)
            except asyncssh.SFTPOpUnsupported:
                self.profile = replace(self.profile, posix_rename=False)
                raise
            except asyncssh.SFTPError as e:
                if self.profile.posix_rename is None:  # no telling: as if unsupported
                    raise Unsupported(describe(e)) from None
                raise
            self.profile = replace(self.profile, posix_rename=True)

    async def symlink(self, target: str, path: str) -> None:
        """A symbolic link at ``path`` holding ``target``. SSH_FXP_SYMLINK's two paths are read
        in opposite orders by servers (OpenSSH's sftp-server, ProFTPD, paramiko: target
        first; gesftpserver: the draft's link first), and asyncssh picks one by the server's
        version string, wrongly for ProFTPD, Dropbear and gesftpserver. So the first link of a
        session is preceded by a probe (``_symlink_order``) that finds out which way works."""
        if self._symlink_swapped is None:
            self._symlink_swapped = await self._symlink_order(posixpath.dirname(path))
        with self._mapped():
            if self._symlink_swapped:
                await self._sftp.symlink(path, target)
            else:
                await self._sftp.symlink(target, path)

    async def _symlink_order(self, directory: str) -> bool:
        """Ask for a link at A to B, both temporary names in ``directory``: wherever the
        server reads the paths, the link lands on one of our two names (never elsewhere), and
        where it landed says whether asyncssh's order must be swapped. Both are removed."""
        tag = secrets.token_hex(4)
        a, b = (posixpath.join(directory, f".sftpmirror.{tag}.{n}.part") for n in ("sa", "sb"))
        try:
            with self._mapped():
                await self._sftp.symlink(b, a)
            try:
                await self.lstat(a)
                return False
            except NotFound:
                await self.lstat(b)  # the link is there: the order is the other one
                return True
        finally:
            for name in (a, b):
                with suppress(TreeError):
                    await self.remove(name)

    async def readlink(self, path: str) -> str:
        with self._mapped():
            found = await self._sftp.readlink(path)
        return found if isinstance(found, str) else found.decode("utf-8", "replace")

    async def realpath(self, path: str) -> str:
        with self._mapped():
            found = await self._sftp.realpath(path)
        return found if isinstance(found, str) else found.decode("utf-8", "replace")

    async def free_space(self, directory: str) -> int | None:
        """Bytes available to us in ``directory`` (statvfs@openssh.com), None if unknown."""
        try:
            vfs = await self._sftp.statvfs(directory or ".")
        except (asyncssh.Error, OSError):
            return None
        return int(vfs.bavail * vfs.frsize)

    def extensions(self) -> dict[str, bool | None]:
        """Which extensions the server offered (None: unknown to this asyncssh)."""
        if not fastpath.enabled("facts"):
            return dict.fromkeys(EXTENSIONS)
        handler = getattr(self._sftp, "_handler", None)
        return {name: getattr(handler, f"_supports_{name}", None) for name in EXTENSIONS}

    async def open(self, path: str, size: int | None = None) -> Reader:
        """An existing file, for reading; ``Reader.close()`` when done. Where the server
        states no read limit, the first file of at least ``2 * READ_TRY`` bytes (``size``)
        shows how much one read gets (``learn_read``), and later reads ask that much. With
        ``size`` (the listed one), the file is read from start to end with its READs
        pipelined (``ReadAhead``): the caller reads it in order."""
        with self._mapped():
            f = await self._sftp.open(path, "rb")
            learn = self.read_len is None and size is not None and size >= 2 * READ_TRY
            if learn and fastpath.enabled("probe"):
                async with self._learning:
                    if self.read_len is None:
                        self.read_len = await learn_read(f, READ_TRY)
            if self.read_len is not None:
                f.read_len = self.read_len
            if size is None or not self._pipelined:
                return Reader(f, self._mapped)

            async def reopen() -> asyncssh.SFTPClientFile:
                again = await self._sftp.open(path, "rb")
                again.read_len = f.read_len
                return again

            block = f.read_len if f.read_len > 0 else SAFE_READ
            ahead = ReadAhead(f, size, block, READ_AHEAD, reopen)
            return Reader(f, self._mapped, ahead)

    async def create(self, path: str, mode: int | None, *, replace: bool = False) -> Writer:
        """A new file (exclusive create: an existing name is an error), ``mode`` from the
        start when given, else the server's default. ``replace``: empty an existing file
        instead, and write without holding a write's answer back (many writes in flight)."""
        attrs = asyncssh.SFTPAttrs(permissions=mode) if mode is not None else asyncssh.SFTPAttrs()
        with self._mapped():
            f = await self._sftp.open(path, "wb" if replace else "xb", attrs)
        return Writer(f, self._bulk, self._pipelined and not replace, self._mapped)
