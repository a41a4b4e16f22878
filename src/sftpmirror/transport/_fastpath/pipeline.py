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
from collections.abc import Callable, Coroutine
from contextlib import suppress

import asyncssh
from asyncssh.sftp import SFTPClientHandler

from sftpmirror.transport._fastpath.bulk_writes import BulkWriter

Spawn = Callable[[Coroutine[None, None, None]], object]


Name = tuple[bytes, int, int, int]  # filename as sent, mode with type bits, size, mtime


def compact(name: asyncssh.SFTPName) -> Name:
    """What a listing keeps of a name: the rest (long name, owner, atime…) is dropped at
    once, so a directory of 300,000 names costs tuples, not asyncssh's objects."""
    raw = name.filename if isinstance(name.filename, bytes) else name.filename.encode()
    attrs = name.attrs
    return raw, attrs.permissions or 0, attrs.size or 0, int(attrs.mtime or 0)


async def list_directory(sftp: asyncssh.SFTPClient, path: str, spawn: Spawn) -> list[Name]:
    """Every name in a directory, in two round trips where ``scandir()`` takes four.

    READDIRs go out two at a time: most directories fit in one answer, and the second answer
    is the end of the list, which ``scandir()`` asks for only after the first came back. The
    CLOSE is handed to ``spawn`` and its answer not waited for.
    """
    handler = sftp._handler
    handle = await handler.opendir(sftp.compose_path(path))
    found: list[Name] = []
    try:
        at_end = False
        while not at_end:
            answers = await asyncio.gather(
                handler.readdir(handle), handler.readdir(handle), return_exceptions=True
            )
            for answer in answers:
                if isinstance(answer, asyncssh.SFTPEOFError):
                    at_end = True
                elif isinstance(answer, BaseException):
                    raise answer
                elif not at_end:
                    names, last = answer
                    found.extend(compact(n) for n in names)
                    at_end = bool(last)
    finally:
        close = _close_quietly(handler, handle)
        try:
            spawn(close)
        except RuntimeError:  # the scan is being torn down, and the session with it
            close.close()
    return found  # names as the server sent them (bytes): the session decodes them


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
