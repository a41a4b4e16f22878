"""The SFTP requests of one turn of the event loop in as few SSH packets as they fit in.

asyncssh's ``SSHChannel.write`` puts each write in the channel's send buffer and flushes it at
once, and its flush makes one SSH packet of each buffered write: every SFTP request is an SSH
packet of its own (padded, sealed, framed; decrypted again by sshd). A push with nothing to
do lists every directory (OPENDIR, two READDIRs, CLOSE): on the 914-directory benchmark site
3,700 requests, 3,700 packets. Here the flush of the SFTP session's channel waits for the end
of the turn of the loop it was asked in (``loop.call_soon``), then fills each packet up to the
peer's maximum from as many buffered writes as fit (``bulk_writes._ChannelFlush``, which also
seals AES-GCM packets in one pass when ``bulk`` is on). The bytes of the SFTP stream are the
same, in the same order; nothing waits longer than the turn it was written in.

The privates this leans on are in ``surface.SURFACE`` (feature ``packing``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
from asyncssh.channel import SSHChannel

from sftpmirror.transport._fastpath import surface
from sftpmirror.transport._fastpath.bulk_writes import _ChannelFlush
from sftpmirror.transport._fastpath.lean_packets import PACKET_LOG_LEVEL, packet_log_level


class _AtTurnEnd:
    """A channel's ``_flush_send_buf``: the flush asked for, done once at the end of the turn."""

    def __init__(self, chan: Any, flush: _ChannelFlush) -> None:
        self.flush = flush
        self._chan = chan
        self._loop = asyncio.get_running_loop()
        self._due = False

    def __call__(self) -> None:
        if not self._due:
            self._due = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._due = False
        if self._chan._send_chan is not None:  # (else closed meanwhile: asyncssh drops it too)
            self.flush()


def pack_requests(sftp: asyncssh.SFTPClient) -> bool:
    """Pack the requests of this SFTP session's channel (False where its insides are not as
    this module knows them, or packets are logged: asyncssh's own path then)."""
    handler: Any = getattr(sftp, "_handler", None)
    chan: Any = getattr(getattr(handler, "_writer", None), "channel", None)
    if not (
        surface.enabled("packing")
        and isinstance(chan, SSHChannel)
        and packet_log_level() < PACKET_LOG_LEVEL
    ):
        return False
    flush = chan._flush_send_buf
    if isinstance(flush, _AtTurnEnd):
        return True
    if not isinstance(flush, _ChannelFlush):
        flush = _ChannelFlush(chan, chan._conn, seal=surface.enabled("bulk"))
    setattr(chan, "_flush_send_buf", _AtTurnEnd(chan, flush))  # noqa: B010 - this channel only
    return True
