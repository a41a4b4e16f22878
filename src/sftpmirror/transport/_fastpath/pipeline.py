"""Requests sent without waiting for answers that are not needed yet.

asyncssh's ``SFTPClient`` waits for each answer before it sends the next request of the same
operation: a directory listing costs four round trips (open, read, read to learn it has
ended, close) and a small file's write one of its own. Servers answer the requests on one
handle in the order they were sent, so both can be pipelined: this module talks to asyncssh's
request layer (``SFTPClient._handler``, ``SFTPClientFile._handle``: private, named in
``surface.py`` as the feature ``pipeline``) to do that. When that feature is off, the session
uses ``scandir`` and ``SFTPClientFile.write`` instead (``transport/session.py``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Coroutine
from contextlib import suppress

import asyncssh
from asyncssh.constants import (
    FILEXFER_ATTR_ACMODTIME,
    FILEXFER_ATTR_DEFINED_V3,
    FILEXFER_ATTR_EXTENDED,
    FILEXFER_ATTR_MODIFYTIME,
    FILEXFER_ATTR_PERMISSIONS,
    FILEXFER_ATTR_SIZE,
    FILEXFER_ATTR_UIDGID,
    FXP_NAME,
    FXP_READDIR,
    FXP_STATUS,
)
from asyncssh.packet import SSHPacket, String
from asyncssh.sftp import SFTPBadMessage, SFTPClientHandler

from sftpmirror.transport._fastpath.bulk_writes import BulkWriter

Spawn = Callable[[Coroutine[None, None, None]], object]


Listed = tuple[str | bytes, int, int, int]
"""A name as a listing keeps it: the file name (str, or the bytes the server sent where they
are not UTF-8), mode with its file type bits, size, mtime. The rest (long name, owner,
atime…) is dropped at once: a directory of 300,000 names costs tuples, not asyncssh's
objects."""

_DOTS = (b".", b"..")
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from
# The attributes every name of OpenSSH's sftp-server (and most servers) carries, in SFTP v3:
# flags 0x0000000f, size, uid, gid, permissions, atime, mtime.
_EVERY_V3 = (
    FILEXFER_ATTR_SIZE | FILEXFER_ATTR_UIDGID | FILEXFER_ATTR_PERMISSIONS | FILEXFER_ATTR_ACMODTIME
)
_ATTRS_V3 = struct.Struct(">IQIIIII")


def _listed(raw: bytes, mode: int, size: int, mtime: int) -> Listed:
    """The name decoded where it is UTF-8 (bytes where not), with its attributes."""
    try:
        return raw.decode("utf-8"), mode, size, mtime
    except UnicodeDecodeError:
        return raw, mode, size, mtime


def compact(name: asyncssh.SFTPName) -> Listed:
    """What a listing keeps of asyncssh's name (the public path, and SFTP versions after 3)."""
    raw = name.filename if isinstance(name.filename, bytes) else name.filename.encode()
    attrs = name.attrs
    return _listed(raw, attrs.permissions or 0, attrs.size or 0, int(attrs.mtime or 0))


def decode_names(data: bytes) -> list[Listed]:
    """An SSH_FXP_NAME reply's names (SFTP v3; ``data`` after its id), ``.`` and ``..`` left
    out, decoded as asyncssh's ``SFTPName.decode`` does (``SFTPBadMessage`` where it would
    raise), but straight into tuples: asyncssh builds two objects per name and reads each field
    through a method call, which was the largest cost of listing 100,000 files."""
    found: list[Listed] = []
    try:
        (count,) = _U32(data, 0)
        pos = 4
        for _ in range(count):
            (length,) = _U32(data, pos)
            start = pos + 4
            pos = start + length
            raw = data[start:pos]
            (length,) = _U32(data, pos)  # the long name ("ls -l"), not kept
            pos += 4 + length
            (flags,) = _U32(data, pos)
            if flags == _EVERY_V3:
                _, size, _, _, mode, _, mtime = _ATTRS_V3.unpack_from(data, pos)
                pos += _ATTRS_V3.size
            else:
                size, mode, mtime, pos = _attrs_v3(data, pos + 4, flags)
            if raw not in _DOTS:
                try:
                    found.append((raw.decode("utf-8"), mode & 0xFFFF, size, mtime))
                except UnicodeDecodeError:
                    found.append((raw, mode & 0xFFFF, size, mtime))
    except struct.error:
        raise SFTPBadMessage("Incomplete packet") from None
    if pos != len(data):  # (v3 has no end-of-list flag: nothing may follow the names)
        raise SFTPBadMessage("Unexpected data at end of packet")
    return found


def _attrs_v3(data: bytes, pos: int, flags: int) -> tuple[int, int, int, int]:
    """Attributes with other flags than ``_EVERY_V3``: size, mode, mtime, and where they end."""
    if flags & (FILEXFER_ATTR_ACMODTIME | FILEXFER_ATTR_MODIFYTIME):
        flags &= ~FILEXFER_ATTR_MODIFYTIME  # asyncssh's work-around for a Huawei server
    if unsupported := flags & ~FILEXFER_ATTR_DEFINED_V3:
        raise SFTPBadMessage(f"Unsupported attribute flags: 0x{unsupported:08x}")
    size = mode = mtime = 0
    if flags & FILEXFER_ATTR_SIZE:
        (size,) = _U64(data, pos)
        pos += 8
    if flags & FILEXFER_ATTR_UIDGID:
        pos += 8
    if flags & FILEXFER_ATTR_PERMISSIONS:
        (mode,) = _U32(data, pos)
        pos += 4
    if flags & FILEXFER_ATTR_ACMODTIME:
        (mtime,) = _U32(data, pos + 4)
        pos += 8
    if flags & FILEXFER_ATTR_EXTENDED:
        (count,) = _U32(data, pos)
        pos += 4
        for _ in range(2 * count):  # type and data, strings both
            (length,) = _U32(data, pos)
            pos += 4 + length
    if pos > len(data):
        raise struct.error("past the end")
    return size, mode, mtime, pos


async def _readdir(handler: SFTPClientHandler, handle: bytes) -> tuple[list[Listed], bool]:
    """One READDIR: its names and whether the server said they were the last (SFTP v6), or
    the error asyncssh's ``readdir`` raises (``SFTPEOFError`` at the end of the list). The
    request goes out as ``_make_request`` sends it; a v3 answer is decoded by
    ``decode_names``, any other by asyncssh."""
    waiter: asyncio.Future[tuple[int, SSHPacket]] = handler._loop.create_future()
    handler._send_request(FXP_READDIR, (String(handle),), waiter)
    kind, packet = await waiter
    if kind == FXP_NAME:
        if handler._version == 3:
            return decode_names(packet.get_remaining_payload()), False
        names, last = handler._process_name(packet)
        return [compact(n) for n in names if n.filename not in _DOTS], last
    if kind != FXP_STATUS:
        raise SFTPBadMessage(f"Unexpected response type: {kind}")
    handler._process_status(packet)  # raises the server's error
    raise SFTPBadMessage("Unexpected FX_OK response")


async def list_directory(sftp: asyncssh.SFTPClient, path: str, spawn: Spawn) -> list[Listed]:
    """Every name in a directory but ``.`` and ``..``, in two round trips where ``scandir()``
    takes four.

    READDIRs go out two at a time: most directories fit in one answer, and the second answer
    is the end of the list, which ``scandir()`` asks for only after the first came back. The
    CLOSE is handed to ``spawn`` and its answer not waited for.
    """
    handler = sftp._handler
    handle = await handler.opendir(sftp.compose_path(path))
    found: list[Listed] = []
    try:
        at_end = False
        while not at_end:
            answers = await asyncio.gather(
                _readdir(handler, handle), _readdir(handler, handle), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, asyncssh.SFTPEOFError):
                    at_end = True
                elif isinstance(answer, BaseException):
                    raise answer
                elif not at_end:
                    names, last = answer
                    found += names
                    at_end = last
    finally:
        close = _close_quietly(handler, handle)
        try:
            spawn(close)
        except RuntimeError:  # the scan is being torn down, and the session with it
            close.close()
    return found


async def _close_quietly(handler: SFTPClientHandler, handle: bytes) -> None:
    with suppress(asyncssh.Error, OSError):
        await handler.close(handle)


class WriteAhead:
    """A FileWriter that waits for a write's answer only at the next write or at the close.

    A write that fits in one request (the server's max_write_len) is sent at once and its
    answer awaited later, so a small file's only write travels with its attributes and close
    (requests start in the order they were made: asyncio runs tasks first in, first out). A
    larger write goes out as all of its requests at once (``BulkWriter``), awaited in place.
    Every write's answer is awaited before the caller's next step can make the file live.
    """

    def __init__(self, f: asyncssh.SFTPClientFile, bulk: BulkWriter) -> None:
        self.f = f
        self.bulk = bulk
        self.pending: asyncio.Task[int] | None = None

    async def write(self, data: bytes, offset: int) -> int:
        await self.flush()
        handle = self.f._handle
        if handle is None or len(data) > self.f.write_len > 0:
            return await self.bulk.write(self.f, data, offset)
        self.pending = asyncio.ensure_future(self.f._handler.write(handle, offset, data))
        return len(data)

    async def flush(self) -> None:
        """Wait for the write in flight, if any; its error is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    async def abandon(self) -> None:
        """Forget the write in flight (the file is being discarded)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: the error being raised is this or a later one
