"""Large file writes that copy each byte once on its way to the socket, not eleven times.

asyncssh copies every byte of a large write at each layer it passes. It slices the caller's
chunk into requests. It builds each SFTP request by concatenation, three times over. It copies
the request into the channel's buffer, slices that buffer into packets, and frames each packet
twice more. It also splits and joins the sealed packet. In a profile of a 512 MiB upload those
copies were a third of the event loop's CPU, and on two CPUs OpenSSH's ``sftp`` was faster.

Here a large write takes another route, and the bytes on the wire stay the same:

- ``BulkWriter.write`` frames the file's SFTP WRITE requests (draft-ietf-secsh-filexfer-02
  §6.4) around views of the caller's chunk, queues them on the channel and awaits every answer.
- ``_ChannelFlush`` replaces the SFTP channel's flush. It fills each SSH_MSG_CHANNEL_DATA
  packet up to the peer's maximum packet size straight from those views. When AES-GCM was
  negotiated, it seals the packet itself (RFC 4253 §6, RFC 5647 §7.1). The payload and padding
  are joined once and encrypted once, with one AESGCM object per key and the IV asyncssh keeps.
  Other cases go through asyncssh's own ``send_packet``, so asyncssh's rules for rekeying and
  for deferring packets still apply. Those cases are: another cipher, compression, a key
  exchange due or under way, packet logs on (debug level 3), and extended data.

The functions this module stands in for are asyncssh's private ones, named in
``surface.SURFACE`` (feature ``bulk``). If any of them differs from the source this module was
written from, or cannot be read, this module does nothing and asyncssh's own path carries the
writes. A test fails when that happens, so an upgrade of asyncssh gets a review of this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import time
from typing import Any

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.constants import (
    FXP_STATUS,
    FXP_WRITE,
    MSG_CHANNEL_DATA,
    MSG_CHANNEL_EOF,
    MSG_CHANNEL_EXTENDED_DATA,
)
from asyncssh.encryption import GCMEncryption
from asyncssh.packet import String, UInt32
from asyncssh.sftp import SFTPClientHandler
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sftpmirror.transport._fastpath import surface
from sftpmirror.transport._fastpath.lean_packets import PACKET_LOG_LEVEL, packet_log_level

log = logging.getLogger("sftpmirror.bulk")

_UINT32 = struct.Struct(">I").pack
_REQUEST_HEAD = struct.Struct(">IBII").pack  # length, FXP_WRITE, request id, handle length
_REQUEST_TAIL = struct.Struct(">QI").pack  # offset, data length
_DATA_HEAD = struct.Struct(">BBII").pack  # padding length, MSG_CHANNEL_DATA, channel, length
_SEQ_MASK = 0xFFFFFFFF
MAX_REQUESTS = 128  # WRITE requests of one write in flight at once (asyncssh's own bound)


class _ChannelFlush:
    """A channel's ``_flush_send_buf``: as asyncssh's, and AES-GCM packets sealed here.

    The send buffer may hold views as well as asyncssh's bytearrays; packets are filled across
    buffer entries of the same data type, so each one is as large as the peer allows.
    """

    def __init__(self, chan: Any, conn: Any, *, seal: bool = True) -> None:
        self._chan = chan
        self._conn = conn
        self._sealing = seal  # (False: every packet through asyncssh's send_packet)
        self._keys: object = None  # the encryption object the AESGCM below belongs to
        self._aes: AESGCM | None = None
        self.sealed = 0  # packets sealed here (the others went through asyncssh)

    def __call__(self) -> None:
        chan = self._chan
        queue: list[tuple[Any, int | None]] = chan._send_buf
        while queue and chan._send_window:
            room = min(chan._send_window, chan._send_pktsize)
            datatype = queue[0][1]
            pieces: list[Any] = []
            size = 0
            while queue and size < room and queue[0][1] == datatype:
                data = queue[0][0]
                take = room - size
                if len(data) > take:
                    view = memoryview(data)
                    pieces.append(view[:take])
                    queue[0] = (view[take:], datatype)
                    size += take
                else:
                    pieces.append(data)
                    del queue[0]
                    size += len(data)
            chan._send_buf_len -= size
            chan._send_window -= size
            if datatype is not None:
                chan.send_packet(
                    MSG_CHANNEL_EXTENDED_DATA, UInt32(datatype), String(b"".join(pieces))
                )
            elif not self._seal(pieces, size):
                chan.send_packet(MSG_CHANNEL_DATA, String(b"".join(pieces)))
        chan._pause_resume_writing()
        if not queue:
            if chan._send_state == "eof_pending":
                chan.send_packet(MSG_CHANNEL_EOF)
                chan._send_state = "eof"
            elif chan._send_state == "close_pending":
                chan._close_send()

    def _seal(self, pieces: list[Any], size: int) -> bool:
        """Send one channel data packet sealed with AES-GCM; False if asyncssh must send it."""
        if not self._sealing:
            return False
        conn = self._conn
        keys = conn._send_encryption
        if keys is not self._keys:  # the first packet, or new keys after a key exchange
            self._keys = keys
            self._aes = AESGCM(keys._cipher._key) if type(keys) is GCMEncryption else None
        channel = self._chan._send_chan
        if (
            self._aes is None
            or channel is None
            or conn._compressor is not None
            or not (conn._kex_complete and conn._auth_complete)
            or conn._rekey_bytes_sent >= conn._rekey_bytes
            or (conn._rekey_seconds and time.monotonic() >= conn._rekey_time)
        ):
            return False
        blocksize: int = conn._send_blocksize
        padding = -(conn._send_enchdrlen + 9 + size) % blocksize
        if padding < 4:
            padding += blocksize
        length = 10 + size + padding  # padding length, type, channel, data length, data, padding
        header = _UINT32(length)
        plain = b"".join(
            [_DATA_HEAD(padding, MSG_CHANNEL_DATA, channel, size), *pieces, os.urandom(padding)]
        )
        cipher = keys._cipher
        sealed = self._aes.encrypt(cipher._iv, plain, header)
        cipher._update_iv()
        conn._send(header + sealed)
        conn._send_seq = (conn._send_seq + 1) & _SEQ_MASK
        conn._rekey_bytes_sent += length
        self.sealed += 1
        return True


class BulkWriter:
    """Large writes to the files of one SFTP session, by the route described above."""

    def __init__(self, sftp: asyncssh.SFTPClient) -> None:
        self._sftp = sftp
        self._ready: bool | None = None  # decided at the first large write
        self._flush: _ChannelFlush | None = None  # the session channel's, once attached

    def _attach(self) -> bool:
        handler: Any = getattr(self._sftp, "_handler", None)
        writer = getattr(handler, "_writer", None)
        chan: Any = getattr(writer, "channel", None)
        if not (
            surface.enabled("bulk")
            and isinstance(handler, SFTPClientHandler)
            and isinstance(chan, SSHChannel)
            and packet_log_level() < PACKET_LOG_LEVEL
        ):
            return False
        flush = chan._flush_send_buf
        inner = getattr(flush, "flush", None)  # packing.py's, at the turn's end
        if isinstance(inner, _ChannelFlush):
            flush = inner
        elif not isinstance(flush, _ChannelFlush):  # another BulkWriter may have attached first
            flush = _ChannelFlush(chan, chan._conn)
            setattr(chan, "_flush_send_buf", flush)  # noqa: B010 - this channel only, on purpose
        self._flush = flush
        return True

    @property
    def active(self) -> bool:
        """True once writes take this module's route (after the first large write)."""
        return bool(self._ready)

    @property
    def sealed(self) -> int:
        """SSH packets sealed by this module on the session's channel so far."""
        return self._flush.sealed if self._flush is not None else 0

    async def write(self, f: asyncssh.SFTPClientFile, data: bytes, offset: int) -> int:
        """Write ``data`` at ``offset`` in requests of the file's write length, at most
        ``MAX_REQUESTS`` in flight; an error is raised once every request sent is answered,
        so nothing of this write is left in flight."""
        if self._ready is None:
            self._ready = self._attach()
        handle = f._handle
        block = f.write_len
        if not self._ready or handle is None or block <= 0 or not isinstance(data, bytes):
            return await f.write(data, offset)
        handler: Any = f._handler
        view = memoryview(data)
        step = block * MAX_REQUESTS
        for start in range(0, len(data), step):
            part = view[start : start + step]
            await _answers(handler, _send_writes(handler, handle, offset + start, part, block))
        return len(data)


def _send_writes(
    handler: Any, handle: bytes, offset: int, view: memoryview, block: int
) -> list[asyncio.Future[tuple[int, Any]]]:
    """Queue the WRITE requests for ``view`` on the session's channel and send what the
    window allows; the futures their answers will resolve."""
    if handler._writer is None:
        raise asyncssh.SFTPNoConnection("Connection not open")
    chan: Any = handler._writer.channel
    if chan.is_closing():  # asyncssh would drop the requests and fail them at the end
        raise asyncssh.SFTPConnectionLost("Connection closed")
    loop = asyncio.get_running_loop()
    debug = handler.logger.isEnabledFor(logging.DEBUG)
    waiters: list[asyncio.Future[tuple[int, Any]]] = []
    for start in range(0, len(view), block):
        piece = view[start : start + block]
        size = len(piece)
        pktid = handler._next_pktid
        handler._next_pktid = (pktid + 1) & _SEQ_MASK
        waiter: asyncio.Future[tuple[int, Any]] = loop.create_future()
        handler._requests[pktid] = waiter
        waiters.append(waiter)
        if debug:
            handler.logger.debug1(
                "Sending write for %d bytes at offset %d in handle %s",
                size,
                offset + start,
                handle.hex(),
            )
        head = (
            _REQUEST_HEAD(21 + len(handle) + size, FXP_WRITE, pktid, len(handle))
            + handle
            + _REQUEST_TAIL(offset + start, size)
        )
        chan._send_buf.append((head, None))
        chan._send_buf.append((piece, None))
        chan._send_buf_len += len(head) + size
    chan._flush_send_buf()
    return waiters


async def _answers(handler: Any, waiters: list[asyncio.Future[tuple[int, Any]]]) -> None:
    """Await every answer; raise the first error among them."""
    error: Exception | None = None
    try:
        for waiter in waiters:
            try:
                kind, answer = await waiter
                if kind != FXP_STATUS:
                    raise asyncssh.SFTPBadMessage(f"Unexpected response type: {kind}")
                handler._process_status(answer)
            except Exception as exc:  # asyncssh's, or the one that ended the session
                error = error or exc
    except asyncio.CancelledError:
        for waiter in waiters:  # answered later, or failed when the session ends: unread
            waiter.add_done_callback(_discard_outcome)
        raise
    if error is not None:
        raise error


def _discard_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
