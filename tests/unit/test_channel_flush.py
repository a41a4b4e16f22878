"""bulk_writes' channel flush, on a channel that records the packets it is asked to send:
packets filled across buffer entries, the send window obeyed, data types kept apart, and the
end of the channel (EOF, close) sent once the buffer drains, as asyncssh's own flush does.
Sealing is covered against real servers in tests/e2e/test_bulk_writes.py; with no AES-GCM
keys, as here, every packet goes through the channel's ``send_packet``."""

from __future__ import annotations

import struct

from asyncssh.constants import MSG_CHANNEL_DATA, MSG_CHANNEL_EOF, MSG_CHANNEL_EXTENDED_DATA

from sftpmirror.transport._fastpath.bulk_writes import _ChannelFlush


class Conn:
    _send_encryption = None  # not AES-GCM: nothing is sealed by the flush itself


class Channel:
    """The parts of an asyncssh SSHChannel that a flush reads and writes."""

    def __init__(self, window: int, pktsize: int) -> None:
        self._send_buf: list[tuple[object, int | None]] = []
        self._send_buf_len = 0
        self._send_window = window
        self._send_pktsize = pktsize
        self._send_state = "open"
        self._send_chan = 7
        self.sent: list[tuple[int, int | None, bytes]] = []
        self.closed = False

    def queue(self, data: object, datatype: int | None = None) -> None:
        self._send_buf.append((data, datatype))
        self._send_buf_len += len(data)  # type: ignore[arg-type]

    def send_packet(self, pkttype: int, *args: bytes) -> None:
        payload = b"".join(args)
        datatype = None
        if pkttype == MSG_CHANNEL_EXTENDED_DATA:
            datatype, payload = struct.unpack(">I", payload[:4])[0], payload[4:]
        if pkttype != MSG_CHANNEL_EOF:
            (length,) = struct.unpack(">I", payload[:4])
            payload = payload[4:]
            assert length == len(payload)
        self.sent.append((pkttype, datatype, payload))

    def _pause_resume_writing(self) -> None:
        pass

    def _close_send(self) -> None:
        self.closed = True


def data_sent(chan: Channel) -> bytes:
    return b"".join(payload for kind, _, payload in chan.sent if kind == MSG_CHANNEL_DATA)


def test_packets_are_filled_across_entries() -> None:
    chan = Channel(window=1 << 20, pktsize=100)
    blob = bytes(range(256)) * 2
    chan.queue(b"head-1")
    chan.queue(memoryview(blob)[:250])
    chan.queue(bytearray(b"head-2"))
    chan.queue(memoryview(blob)[250:])
    _ChannelFlush(chan, Conn())()
    expected = b"head-1" + blob[:250] + b"head-2" + blob[250:]
    assert data_sent(chan) == expected
    assert [len(p) for _, _, p in chan.sent] == [100] * 5 + [len(expected) - 500]
    assert chan._send_buf == []
    assert chan._send_buf_len == 0
    assert chan._send_window == (1 << 20) - len(expected)


def test_the_window_is_obeyed_and_the_rest_waits() -> None:
    chan = Channel(window=150, pktsize=100)
    chan.queue(b"a" * 120)
    chan.queue(b"b" * 120)
    flush = _ChannelFlush(chan, Conn())
    flush()
    assert data_sent(chan) == b"a" * 120 + b"b" * 30
    assert [len(p) for _, _, p in chan.sent] == [100, 50]
    assert chan._send_window == 0
    assert chan._send_buf_len == 90
    chan._send_window = 1000  # a window adjust arrives
    flush()
    assert data_sent(chan) == b"a" * 120 + b"b" * 120
    assert chan._send_buf_len == 0


def test_data_types_are_not_mixed_in_a_packet() -> None:
    chan = Channel(window=1000, pktsize=100)
    chan.queue(b"out-1")
    chan.queue(b"err", datatype=1)
    chan.queue(b"out-2")
    _ChannelFlush(chan, Conn())()
    assert chan.sent == [
        (MSG_CHANNEL_DATA, None, b"out-1"),
        (MSG_CHANNEL_EXTENDED_DATA, 1, b"err"),
        (MSG_CHANNEL_DATA, None, b"out-2"),
    ]


def test_eof_and_close_wait_for_the_buffer_to_drain() -> None:
    chan = Channel(window=10, pktsize=100)
    chan.queue(b"x" * 20)
    chan._send_state = "eof_pending"
    flush = _ChannelFlush(chan, Conn())
    flush()
    assert [kind for kind, _, _ in chan.sent] == [MSG_CHANNEL_DATA]
    assert chan._send_state == "eof_pending"
    chan._send_window = 10
    flush()
    kinds = [kind for kind, _, _ in chan.sent]
    assert kinds == [MSG_CHANNEL_DATA, MSG_CHANNEL_DATA, MSG_CHANNEL_EOF]
    assert chan._send_state == "eof"
    chan._send_state = "close_pending"
    flush()
    assert chan.closed
