"""One ``send()`` per turn of the event loop instead of one per SSH packet.

asyncssh hands every SSH packet to the socket transport on its own, and sends an
``SSH_MSG_IGNORE`` before each one, so a transfer costs two ``send()`` system calls per
32 KiB of data and a directory listing two per request: the largest single cost in a
profile of a 1 GiB upload. ``batch_writes`` puts a thin layer in front of the connection's
transport that gathers what one turn of the loop writes and passes it on in one piece, at
the end of that turn. Nothing waits longer than that turn; ``close`` sends what is
gathered first, ``abort`` drops it (as the transport itself would).

This reaches into asyncssh's private ``_transport`` attribute, like ``sftp_pipeline.py``
uses its request layer; the dependency is pinned below asyncssh 3 for both.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncssh


class _BatchedTransport:
    """Stands in for an ``asyncio.Transport``; only ``write`` behaves differently."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            with contextlib.suppress(ConnectionError):  # asyncssh ignores these too
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def batch_writes(conn: asyncssh.SSHClientConnection) -> None:
    """Batch the writes of an open connection (a no-op if asyncssh's insides changed)."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, asyncio.Transport) and not isinstance(transport, _BatchedTransport):
        batched = _BatchedTransport(transport, asyncio.get_running_loop())
        setattr(conn, "_transport", batched)  # noqa: B010 - a private attribute, on purpose
