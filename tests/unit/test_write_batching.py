"""write_batching: what one turn of the event loop writes reaches the socket in one piece, in
order; close sends what is gathered, abort drops it. Over a real loopback TCP connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sftpmirror.transport._fastpath.write_batching import _BatchedTransport


class Counting:
    """Forwards to a real transport, counting its ``write`` calls."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


@asynccontextmanager
async def connection() -> AsyncIterator[tuple[Counting, _BatchedTransport, asyncio.Queue[bytes]]]:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.read())  # everything, until the client closes
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    counting = Counting(transport)
    try:
        yield counting, _BatchedTransport(counting, loop), received  # type: ignore[arg-type]
    finally:
        transport.close()
        server.close()
        await server.wait_closed()


def test_one_turn_of_writes_is_one_send_in_order() -> None:
    async def main() -> bytes:
        async with connection() as (counting, batched, received):
            for i in range(100):
                batched.write(b"%03d," % i)
            assert counting.writes == 0  # nothing sent before the turn ends
            await asyncio.sleep(0)
            assert counting.writes == 1
            batched.write(b"last")
            await asyncio.sleep(0)
            assert counting.writes == 2
            batched.close()
            return await asyncio.wait_for(received.get(), 5)

    data = asyncio.run(main())
    assert data == b"".join(b"%03d," % i for i in range(100)) + b"last"


def test_close_sends_what_is_gathered_and_abort_drops_it() -> None:
    async def closing() -> bytes:
        async with connection() as (counting, batched, received):
            batched.write(b"page ")
            batched.write(b"bytes")
            batched.close()  # in the same turn: still sent, then closed
            assert counting.writes == 1
            return await asyncio.wait_for(received.get(), 5)

    async def aborting() -> bytes:
        async with connection() as (counting, batched, received):
            batched.write(b"never sent")
            batched.abort()
            await asyncio.sleep(0)
            assert counting.writes == 0
            return await asyncio.wait_for(received.get(), 5)

    assert asyncio.run(closing()) == b"page bytes"
    assert asyncio.run(aborting()) == b""
