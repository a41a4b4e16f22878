"""Requests sent without waiting for answers that are not needed yet.

asyncssh's ``SFTPClient`` waits for each answer before it sends the next request of the same
operation: a directory listing costs four round trips (open, read, read to learn it has
ended, close), a small file's write one of its own, and a small file's download five (open,
reads, reads again to learn it has ended, close). Servers answer the requests on one handle in
the order they were sent, so all three can be pipelined: this module talks to asyncssh's
request layer (``SFTPClient._handler``, ``SFTPClientFile._handle``: private, named in
``surface.py`` as the feature ``pipeline``) to do that. When that feature is off, the session
uses ``scandir``, ``SFTPClientFile.write`` and ``SFTPClientFile.read`` instead
(``transport/session.py``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import asyncssh
from asyncssh.constants import (
    FILEXFER_ATTR_ACMODTIME,
    FILEXFER_ATTR_DEFINED_V3,
    FILEXFER_ATTR_EXTENDED,
    FILEXFER_ATTR_MODIFYTIME,
    FILEXFER_ATTR_PERMISSIONS,
    FILEXFER_ATTR_SIZE,
    FILEXFER_ATTR_UIDGID,
    FXP_CLOSE,
    FXP_DATA,
    FXP_NAME,
    FXP_READ,
    FXP_READDIR,
    FXP_STATUS,
)
from asyncssh.packet import SSHPacket, String
from asyncssh.sftp import SFTPBadMessage, SFTPClientHandler

from sftpmirror.transport._fastpath.bulk_writes import BulkWriter

_UINT32 = struct.Struct(">I").pack
_REQUEST_HEAD = struct.Struct(">BI").pack  # packet type, request id
_READ_RANGE = struct.Struct(">QI").pack  # a READ's offset and length, after its handle


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


def _send_readdir(handler: SFTPClientHandler, handle: bytes) -> asyncio.Future[Any]:
    """A READDIR sent as ``_make_request`` sends it; the future its answer resolves."""
    waiter: asyncio.Future[Any] = handler._loop.create_future()
    waiter.add_done_callback(_drop)  # (an answer left unread when the caller is cancelled)
    handler._send_request(FXP_READDIR, (String(handle),), waiter)
    return waiter


def _names(handler: SFTPClientHandler, answer: tuple[int, SSHPacket]) -> tuple[list[Listed], bool]:
    """One READDIR's answer: its names and whether the server said they were the last (SFTP
    v6), or the error asyncssh's ``readdir`` raises (``SFTPEOFError`` at the end of the list).
    A v3 answer is decoded by ``decode_names``, any other by asyncssh."""
    kind, packet = answer
    if kind == FXP_NAME:
        if handler._version == 3:
            return decode_names(packet.get_remaining_payload()), False
        names, last = handler._process_name(packet)
        return [compact(n) for n in names if n.filename not in _DOTS], last
    if kind != FXP_STATUS:
        raise SFTPBadMessage(f"Unexpected response type: {kind}")
    handler._process_status(packet)  # raises the server's error
    raise SFTPBadMessage("Unexpected FX_OK response")


async def list_directory(sftp: asyncssh.SFTPClient, path: str) -> list[Listed]:
    """Every name in a directory but ``.`` and ``..``, in two round trips where ``scandir()``
    takes four.

    READDIRs go out two at a time: most directories fit in one answer, and the second answer
    is the end of the list, which ``scandir()`` asks for only after the first came back. Their
    answers are awaited here, in turn, with no task each; the CLOSE goes out with no task
    either, and its answer is not waited for.
    """
    handler = sftp._handler
    handle = await handler.opendir(sftp.compose_path(path))
    found: list[Listed] = []
    try:
        at_end = False
        while not at_end:
            waiters = [_send_readdir(handler, handle), _send_readdir(handler, handle)]
            error: Exception | None = None
            for waiter in waiters:
                try:
                    names, last = _names(handler, await waiter)
                except asyncssh.SFTPEOFError as eof:
                    at_end = True
                    # asyncssh raises it from a local: its traceback holds that frame, the
                    # frame holds it, and the frames above hold ``found``. Cut here, the
                    # cycle goes at once; left, each directory's names waited for the
                    # collector, which a scan pauses (+22 MiB at 100,000 files).
                    eof.__traceback__ = None
                except Exception as e:  # the other's answer is still taken in
                    error = error or e
                else:
                    if not at_end:
                        found += names
                        at_end = last
            if error is not None:
                raise error
    finally:
        _close_unanswered(handler, handle)
    return found


def _close_unanswered(handler: SFTPClientHandler, handle: bytes) -> None:
    """A CLOSE sent as ``handler.close`` sends it; its answer (or the session's end) is taken
    in and dropped."""
    writer = handler._writer
    if writer is None or writer.channel.is_closing():
        return
    waiter: asyncio.Future[Any] = handler._loop.create_future()
    waiter.add_done_callback(_drop)
    handler._send_request(FXP_CLOSE, (String(handle),), waiter)


def _drop(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


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


Answer = asyncio.Future[tuple[int, Any]]  # an answer's type and packet, not yet read
Request = tuple[int, bytes]  # the packet type, and what follows the request id


def _send_requests(handler: Any, requests: list[Request]) -> list[Answer]:
    """Send ``requests`` as asyncssh's ``_send_request`` and ``send_packet`` would, one after
    the other, but in one write to the channel (one SSH packet where they fit, where asyncssh
    sends one each: a padding from os.urandom and a seal each), each with a future for its
    answer and no task to send it or wait for it."""
    writer = handler._writer
    if writer is None or writer.channel.is_closing():  # asyncssh would leave them unanswered
        raise asyncssh.SFTPConnectionLost("Connection closed")
    loop = asyncio.get_running_loop()
    answers: list[Answer] = []
    packets: list[bytes] = []
    for pkttype, args in requests:
        pktid = handler._next_pktid
        handler._next_pktid = (pktid + 1) & 0xFFFFFFFF
        answer: Answer = loop.create_future()
        handler._requests[pktid] = answer
        answers.append(answer)
        payload = _REQUEST_HEAD(pkttype, pktid) + args
        packets.append(_UINT32(len(payload)) + payload)
        handler.log_sent_packet(pkttype, pktid, payload)
    writer.write(b"".join(packets))
    return answers


def _data(handler: Any, answer: tuple[int, Any]) -> bytes:
    """A READ's data; the server's error (``SFTPEOFError`` at the end) raised."""
    kind, packet = answer
    if kind == FXP_DATA:
        data: bytes = handler._process_data(packet)[0]
        return data
    if kind == FXP_STATUS:
        handler._process_status(packet)
    raise asyncssh.SFTPBadMessage(f"Unexpected response type: {kind}")


class OversizedAnswer(Exception):
    """The server answered a READ with more bytes than it asked for (it breaks the protocol)."""

    def __init__(self, asked: int, got: int) -> None:
        super().__init__(asked, got)
        self.asked, self.got = asked, got


class ReadAhead:
    """A file read from its start to its end, its READs sent before the caller asks for them.

    asyncssh's ``SFTPClientFile.read`` sends the READs of one call at once, but asks for more
    than a small file holds, then for the rest of the short answer, and the next call (which
    learns that the file has ended) starts only when they are all answered. Here, as soon as
    the handle is known, READs go out for the file's listed ``size`` (``block`` bytes each, the
    size the server answers whole), then one READ at ``size`` (answered "end of file" where the
    file did not grow) and the CLOSE: a small file's download is the OPEN and one round trip.
    At most ``ahead`` bytes (or the caller's read, if larger) are asked for beyond what the
    caller has taken, so the answers of a large file cannot pile up in memory; the READ at the
    end and the CLOSE go once the last READ has gone.

    What does not go as listed is read through asyncssh's own ``read``: an answer shorter than
    asked (from that offset on), a file longer than listed (the READ at ``size`` had data), a
    read elsewhere than where the last one ended. It reads from the handle while it is open and
    from the file opened again (``reopen``) once it is closed.
    """

    def __init__(
        self,
        f: asyncssh.SFTPClientFile,
        size: int,
        block: int,
        ahead: int,
        reopen: Callable[[], Awaitable[asyncssh.SFTPClientFile]],
    ) -> None:
        handle = f._handle
        assert handle is not None
        self.f = f
        self._handler: Any = f._handler
        self._handle = handle
        self.size = size
        self.block = block
        self.ahead = ahead
        self._reopen = reopen
        self._debug = self._handler.logger.isEnabledFor(logging.DEBUG)
        self._answers: deque[tuple[int, int, Answer]] = deque()  # offset, length, answer
        self._sent = 0  # where the next READ starts
        self._closing: Answer | None = None  # the CLOSE, sent after the last READ
        self._at = 0  # where the caller's next read is expected
        self._rest = b""  # what the last answer held beyond the caller's read
        self._ended = False  # the end of the file was answered at ``_at``
        self._astray = False  # from ``_at`` on, asyncssh's read
        self._reopened: asyncssh.SFTPClientFile | None = None
        self._send(ahead)

    def _send(self, until: int) -> None:
        """READs up to ``until`` (not past the listed size); then the READ at the size and the
        CLOSE. All in one write to the channel."""
        if self._closing is not None:
            return
        handle = String(self._handle)
        reads: list[tuple[int, int]] = []
        end = min(until, self.size)
        while self._sent < end:
            length = min(self.block, self.size - self._sent)
            reads.append((self._sent, length))
            self._sent += length
        closing = self._sent >= self.size
        if closing:
            reads.append((self.size, self.block))
        if not reads:
            return
        if self._debug:
            for offset, length in reads:
                self._handler.logger.debug1(
                    "Sending read for %d bytes at offset %d in handle %s",
                    length, offset, self._handle.hex(),
                )  # fmt: skip
        requests = [(FXP_READ, handle + _READ_RANGE(offset, length)) for offset, length in reads]
        if closing:
            requests.append((FXP_CLOSE, handle))
        answers = _send_requests(self._handler, requests)
        if closing:
            self._closing = answers.pop()
            self.f._handle = None  # closed by the request just made
        self._answers.extend((o, n, a) for (o, n), a in zip(reads, answers, strict=True))

    async def read(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer where an answer ends: whole answers are
        not split, except one larger than ``size``); empty at the end of the file."""
        if size <= 0:
            return b""
        if offset != self._at or self._astray:
            self._astray = True
            return await self._read_astray(size, offset)
        if self._ended:
            return b""
        pieces: list[bytes] = []
        got = 0
        if self._rest:
            pieces.append(self._rest[:size])
            self._rest = self._rest[size:]
            got = len(pieces[0])
        while got < size and not self._astray and not self._ended:
            self._send(max(offset + size, offset + got + self.ahead))
            start, length, answer = self._answers[0]
            if got and got + length > size:
                break  # not split: the next read takes it whole
            self._answers.popleft()
            try:
                data = _data(self._handler, await answer)
            except asyncssh.SFTPEOFError:
                self._ended = True  # the end, where it was listed or before (it shrank)
                break
            if len(data) > length:
                raise OversizedAnswer(length, len(data))
            # Data at the listed size (the file grew), or a short answer: the rest from there.
            self._astray = start >= self.size or len(data) < length
            if len(data) > size - got:
                data, self._rest = data[: size - got], data[size - got :]
            pieces.append(data)
            got += len(data)
        self._at = offset + got
        if not got and self._astray:
            return await self._read_astray(size, offset)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    async def _read_astray(self, size: int, offset: int) -> bytes:
        if self.f._handle is not None:
            f = self.f
        else:
            if self._reopened is None:
                self._reopened = await self._reopen()
            f = self._reopened
        data: bytes = await f.read(size, offset)
        self._at = offset + len(data)
        return data

    async def close(self) -> None:
        """Close the handle (the CLOSE sent, if it was not yet) and the file opened again, if
        any; wait for every answer still due (their errors are dropped: the file is done)."""
        due: list[asyncio.Future[Any]] = [answer for _, _, answer in self._answers]
        self._answers.clear()
        if self._closing is None:
            self.f._handle = None
            with suppress(asyncssh.Error):  # the session is gone, and the handle with it
                (self._closing,) = _send_requests(
                    self._handler, [(FXP_CLOSE, String(self._handle))]
                )
        if self._closing is not None:
            due.append(self._closing)
        if self._reopened is not None:
            due.append(asyncio.ensure_future(self._reopened.close()))
        if due:
            await asyncio.wait(due)
        for future in due:
            if not future.cancelled():
                future.exception()  # retrieved: the file is done, whatever its requests got
