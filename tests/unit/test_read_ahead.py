"""ReadAhead (``_fastpath/pipeline.py``) against a fake SFTP handler that records what is sent:
a small file is asked for whole with the READ at its end and the CLOSE, before any answer; a
large one never has more than ``ahead`` asked beyond what was taken; what does not go as listed
(a short answer, a file that grew or shrank, a read elsewhere, an answer longer than asked)
falls back to asyncssh's own read, on the file opened again once the handle is closed."""

from __future__ import annotations

import asyncio
import logging
import os
from types import SimpleNamespace
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import FXP_CLOSE, FXP_DATA, FXP_READ, FXP_STATUS
from asyncssh.packet import SSHPacket

from sftpmirror.engine.transfer import CHUNK
from sftpmirror.transport._fastpath.pipeline import OversizedAnswer, ReadAhead

BLOCK = 1000


class Server:
    """The file's bytes, and what the client sent, in order; answers only when told."""

    def __init__(self, data: bytes, *, cap: int = 0, extra: int = 0) -> None:
        self.data = data
        self.cap = cap  # answer at most this much per READ (0: all asked)
        self.extra = extra  # answer this much more than asked (a broken server)
        self.sent: list[tuple[str, int, int]] = []  # ("read", offset, length) / ("close", 0, 0)
        self.answered = asyncio.Event()
        self.answered.set()  # cleared: requests wait until it is set again

    def read(self, offset: int, length: int) -> bytes:
        if offset >= len(self.data):
            raise asyncssh.SFTPEOFError("end of file")
        length = min(length, self.cap) if self.cap else length
        return self.data[offset : offset + length] + b"x" * self.extra


class Handler:
    """What ReadAhead uses of asyncssh's SFTPClientHandler: its request ids and waiters, its
    channel's writer (requests written there are parsed and answered on a later turn of the
    loop, in order), and the answers' parsing."""

    logger = logging.getLogger("test.read_ahead")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.closing = False
        self._next_pktid = 0
        self._requests: dict[int, Any] = {}
        self._writer = SimpleNamespace(
            channel=SimpleNamespace(is_closing=lambda: self.closing), write=self.received
        )
        self.writes = 0  # writes to the channel
        self.answering: set[asyncio.Task[None]] = set()

    def log_sent_packet(self, pkttype: int, pktid: int, payload: bytes) -> None:
        pass

    def received(self, data: bytes) -> None:
        self.writes += 1
        while data:
            length = int.from_bytes(data[:4], "big")
            packet = SSHPacket(data[4 : 4 + length])
            data = data[4 + length :]
            pkttype, pktid = packet.get_byte(), packet.get_uint32()
            packet.get_string()  # the handle
            if pkttype == FXP_CLOSE:
                self.server.sent.append(("close", 0, 0))
                self._later(pktid, FXP_STATUS, None)
                continue
            assert pkttype == FXP_READ
            offset, length = packet.get_uint64(), packet.get_uint32()
            self.server.sent.append(("read", offset, length))
            try:
                self._later(pktid, FXP_DATA, self.server.read(offset, length))
            except asyncssh.SFTPEOFError as e:
                self._later(pktid, FXP_STATUS, e)

    def _later(self, pktid: int, kind: int, answer: object) -> None:
        task = asyncio.ensure_future(self._answer(pktid, kind, answer))
        self.answering.add(task)
        task.add_done_callback(self.answering.discard)

    async def _answer(self, pktid: int, kind: int, answer: object) -> None:
        await self.server.answered.wait()
        waiter = self._requests.pop(pktid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result((kind, answer))

    def lost(self) -> None:
        """The session ends, as asyncssh's ``_cleanup``: every request still due fails."""
        self.closing = True
        for waiter in self._requests.values():
            if not waiter.done():
                waiter.set_exception(asyncssh.SFTPConnectionLost("Connection lost"))
        self._requests = {}

    def _process_data(self, answer: bytes) -> tuple[bytes, bool]:
        return answer, False

    def _process_status(self, answer: Exception | None) -> None:
        if answer is not None:
            raise answer


class File:
    """What ReadAhead uses of asyncssh's ``SFTPClientFile``: its handler, its handle, ``read``
    (asyncssh's own path, counted) and ``close``."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._handler = Handler(server)
        self._handle: bytes | None = b"h1"
        self.own_reads = 0
        self.closed = False

    async def read(self, size: int, offset: int) -> bytes:
        assert self._handle is not None, "read on a closed handle"
        self.own_reads += 1
        try:
            return self.server.read(offset, size)
        except asyncssh.SFTPEOFError:
            return b""

    async def close(self) -> None:
        self.closed = True
        self._handle = None


def reader(server: Server, size: int, ahead: int = 4 * BLOCK) -> tuple[ReadAhead, list[File]]:
    opened: list[File] = []

    async def reopen() -> Any:
        again = File(server)
        opened.append(again)
        return again

    f: Any = File(server)
    return ReadAhead(f, size, BLOCK, ahead, reopen), opened


async def read_all(ahead: ReadAhead, chunk: int = CHUNK) -> bytes:
    """As ``copy_file`` reads: in order, until an empty answer."""
    data = bytearray()
    while piece := await ahead.read(chunk, len(data)):
        data += piece
    await ahead.close()
    return bytes(data)


def test_a_small_file_is_asked_whole_with_its_end_and_close_before_any_answer() -> None:
    async def main() -> tuple[list[tuple[str, int, int]], bytes, int]:
        server = Server(os.urandom(2500))
        server.answered.clear()
        ahead, _ = reader(server, 2500)
        sent = list(server.sent)
        server.answered.set()
        return sent, await read_all(ahead), ahead._handler.writes

    sent, data, writes = asyncio.run(main())
    assert writes == 1  # in one SSH packet
    assert sent == [
        ("read", 0, BLOCK),
        ("read", 1000, BLOCK),
        ("read", 2000, 500),
        ("read", 2500, BLOCK),  # answered "end of file": the file ended where it was listed
        ("close", 0, 0),
    ]
    assert len(data) == 2500


async def pulled(
    server: Server, size: int, ahead: int = 4 * BLOCK, chunk: int = CHUNK
) -> tuple[bytes, list[File]]:
    """The file read as ``copy_file`` reads it, and the files opened again."""
    reading, opened = reader(server, size, ahead)
    return await read_all(reading, chunk), opened


@pytest.mark.parametrize("size", [0, 1, BLOCK, 3 * BLOCK])
def test_sizes_on_and_off_the_block(size: int) -> None:
    server = Server(os.urandom(size))
    data, opened = asyncio.run(pulled(server, size, chunk=700))
    assert data == server.data
    assert server.sent[-1] == ("close", 0, 0)
    assert not opened


def test_a_large_file_has_at_most_ahead_asked_beyond_what_was_taken() -> None:
    async def main() -> tuple[bytes, int]:
        server = Server(os.urandom(50 * BLOCK))
        ahead, _ = reader(server, 50 * BLOCK, ahead=4 * BLOCK)
        data = bytearray()
        most = 0
        while True:
            await asyncio.sleep(0)
            asked = max((o + n for kind, o, n in server.sent if kind == "read"), default=0)
            most = max(most, asked - len(data))
            piece = await ahead.read(2 * BLOCK, len(data))
            if not piece:
                break
            data += piece
        await ahead.close()
        return bytes(data), most

    data, most = asyncio.run(main())
    assert len(data) == 50 * BLOCK
    assert most <= 4 * BLOCK + BLOCK  # ahead, and the READ at the end of the file


def test_a_short_answer_is_read_again_from_there() -> None:
    server = Server(os.urandom(5 * BLOCK), cap=600)
    data, opened = asyncio.run(pulled(server, 5 * BLOCK))
    assert data == server.data
    assert len(opened) == 1  # the handle was closed: opened again for the rest
    assert opened[0].own_reads > 1
    assert opened[0].closed


def test_a_file_that_grew_is_read_to_its_end() -> None:
    server = Server(os.urandom(3 * BLOCK + 10))
    data, opened = asyncio.run(pulled(server, 2 * BLOCK))  # listed smaller than it is now
    assert data == server.data
    assert len(opened) == 1
    assert opened[0].closed


@pytest.mark.parametrize("size", [1500, 2000])
def test_a_file_that_shrank_ends_where_it_ends(size: int) -> None:
    """Off a block, the short answer could be the server's cap: asked again to be sure."""
    server = Server(os.urandom(size))
    data, opened = asyncio.run(pulled(server, 3 * BLOCK))
    assert data == server.data
    assert len(opened) == (size % BLOCK != 0)


def test_an_answer_longer_than_asked_is_an_error() -> None:
    server = Server(b"0123456789", extra=5)

    async def main() -> None:
        ahead, _ = reader(server, 10)
        try:
            await ahead.read(CHUNK, 0)
        finally:
            await ahead.close()

    with pytest.raises(OversizedAnswer):
        asyncio.run(main())


def test_a_read_elsewhere_takes_asyncssh_s_path_on_the_open_handle() -> None:
    server = Server(os.urandom(20 * BLOCK))

    async def main() -> tuple[bytes, list[File], Any]:
        ahead, opened = reader(server, 20 * BLOCK, ahead=2 * BLOCK)  # not all asked: open
        first = await ahead.read(BLOCK, 0)
        later = await ahead.read(BLOCK, 10 * BLOCK)
        await ahead.close()
        return first + later, opened, ahead.f

    data, opened, f = asyncio.run(main())
    assert data == server.data[:BLOCK] + server.data[10 * BLOCK : 11 * BLOCK]
    assert not opened
    assert f.own_reads == 1
    assert server.sent[-1] == ("close", 0, 0)


def test_closed_before_the_end_every_answer_is_awaited_and_the_handle_closed() -> None:
    async def main() -> Server:
        server = Server(os.urandom(20 * BLOCK))
        ahead, _ = reader(server, 20 * BLOCK)
        await ahead.read(BLOCK, 0)
        await ahead.close()
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left in flight
        return server

    server = asyncio.run(main())
    assert server.sent[-1] == ("close", 0, 0)
    assert server.sent.count(("close", 0, 0)) == 1


def test_a_lost_session_fails_the_read_and_the_close_is_quiet() -> None:
    async def main() -> None:
        server = Server(os.urandom(20 * BLOCK))
        server.answered.clear()
        ahead, _ = reader(server, 20 * BLOCK)
        await asyncio.sleep(0)
        ahead._handler.lost()
        with pytest.raises(asyncssh.SFTPConnectionLost):
            await ahead.read(CHUNK, 0)
        await ahead.close()  # no CLOSE can go: nothing raised, every answer retrieved
        server.answered.set()

    asyncio.run(main())
