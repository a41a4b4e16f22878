"""Fault injection for tests: a TCP proxy that cuts the connection; a hostile SFTP server."""

from __future__ import annotations

import asyncio
import stat
import threading
from collections.abc import AsyncIterator
from typing import ClassVar

import asyncssh


class CuttingProxy:
    """Forward 127.0.0.1:port → 127.0.0.1:target; after ``limit`` bytes from the client, close
    both sides (a dropped line, mid-deploy); with ``rate``, a slow line. With ``only_first``,
    only the first connection is cut and later ones go through (the line came back), to
    ``later_port`` if given (another server now answers at that address). Runs its own loop in
    a daemon thread."""

    def __init__(
        self,
        target_port: int,
        limit: int,
        *,
        only_first: bool = False,
        later_port: int = 0,
        rate: float = 0.0,
    ) -> None:
        self.target_port = target_port
        self.limit = limit
        self.rate = rate  # bytes per second from the client (0: as fast as it comes)
        self.only_first = only_first
        self.later_port = later_port or target_port
        self.sent = 0
        self.connections = 0
        self.cut = threading.Event()
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        first = self.connections == 1
        port = self.target_port if first else self.later_port
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        cutting = first or not self.only_first

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            while data := await src.read(8192 if count and self.rate else 65536):
                if count and self.rate:
                    await asyncio.sleep(len(data) / self.rate)
                if count and cutting:
                    self.sent += len(data)
                    if self.sent > self.limit:
                        self.cut.set()
                        break
                dst.write(data)
                await dst.drain()

        try:
            await asyncio.wait(
                [
                    asyncio.ensure_future(pump(reader, up_writer, True)),
                    asyncio.ensure_future(pump(up_reader, writer, False)),
                ],
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for w in (writer, up_writer):
                w.transport.abort()

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


class HostileServer(asyncssh.SFTPServer):
    """Lists one forged name in every directory, besides the real entries."""

    forged: ClassVar[list[bytes]] = []

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        attrs = asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR,
            permissions=stat.S_IFREG | 0o644,
            size=5,
            mtime=1_700_000_000,
        )
        for forged in type(self).forged:
            yield asyncssh.SFTPName(forged, attrs=attrs)


class EndlessFileServer(asyncssh.SFTPServer):
    """``endless.bin`` is listed as 8 bytes but never reaches its end: every read is answered
    in full (F8). ``oversized.bin`` answers each read with more than was asked."""

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        name = getattr(file_obj, "name", b"")
        name = name if isinstance(name, bytes) else str(name).encode()
        if name.endswith(b"endless.bin"):
            return b"x" * size
        if name.endswith(b"oversized.bin"):
            return b"y" * (size + 100)
        result = super().read(file_obj, offset, size)
        data = result if isinstance(result, bytes) else await result
        return bytes(data)


class EndlessNestingServer(asyncssh.SFTPServer):
    """Every directory holds a directory ``d`` (a loop on the server, say): without a bound a
    scan never ends (F17)."""

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        attrs = asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_DIRECTORY, permissions=stat.S_IFDIR | 0o755
        )
        yield asyncssh.SFTPName(b"d", attrs=attrs)

    def map_path(self, path: bytes) -> bytes:
        # every d/d/d… is the root again
        parts = [p for p in path.split(b"/") if p and p != b"d"]
        return super().map_path(b"/" + b"/".join(parts))


class SlowWriteServer(asyncssh.SFTPServer):
    """Every write waits 20 ms: a deploy of a few MiB takes seconds, long enough to meet it."""

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        await asyncio.sleep(0.02)
        result = super().write(file_obj, offset, data)
        return result if isinstance(result, int) else await result


class StallingServer(asyncssh.SFTPServer):
    """Never answers a READDIR in a directory named ``stuck``, nor a READ of ``stuck.bin``,
    though the SSH connection stays up and keepalives are answered (F7)."""

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        if path.rstrip(b"/").endswith(b"/stuck"):
            await asyncio.Event().wait()
        async for name in super().scandir(path):
            yield name

    async def read(self, file_obj: object, offset: int, size: int) -> bytes:
        name = getattr(file_obj, "name", b"")
        if (name if isinstance(name, bytes) else str(name).encode()).endswith(b"stuck.bin"):
            try:
                await asyncio.Event().wait()
            finally:
                close = getattr(file_obj, "close", None)
                if callable(close):
                    close()  # the session is gone: the file is closed with it
        result = super().read(file_obj, offset, size)
        data = result if isinstance(result, bytes) else await result
        return bytes(data)
