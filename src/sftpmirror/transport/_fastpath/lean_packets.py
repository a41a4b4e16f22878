"""Per-packet work asyncssh does that this client does not need.

Two costs are paid for every SSH packet, whatever the cipher and whatever the log level, and
together they were about 15% of the client's CPU in a profile of a 512 MiB upload:

- an ``SSH_MSG_IGNORE`` sent before each packet. That is the countermeasure for the
  predictable IVs of CBC mode (Bellare, Kohno and Namprempre, 2002); the ciphers this client
  offers (``ssh.CIPHERS``: AES-GCM, ChaCha20-Poly1305, AES-CTR) take a fresh nonce or counter
  per packet and are not open to that attack, and OpenSSH's own client sends no such packets.
  ``skip_ignore_packets`` drops them when the negotiated cipher is one of those, and leaves
  the connection as it is otherwise.
- a log line formatted for each packet sent and received (name lookup, byte count, a copy of
  the payload), thrown away unless asyncssh's debug level is 3. ``quiet_packet_logs`` skips it
  at lower levels; ``--debug`` is level 2, so packet logs show only when a library user asks
  for them with ``asyncssh.set_debug_level(3)`` before connecting.

And one per SFTP request: asyncssh's logger turns every argument of a debug message into text
before it asks whether debug messages are wanted (a directory listing logs four). The objects
made lean get a logger that asks first (``LevelFirst``), so nothing changes when they are.

All of this replaces a method or logger on one object (the connection, its SFTP channel and
handler), never on asyncssh's classes, so other connections in the process are untouched. Like
``write_batching.py`` this leans on asyncssh's insides, hence the pin below asyncssh 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncssh
from asyncssh.constants import MSG_IGNORE
from asyncssh.logging import SSHLogger

# Modes with a fresh nonce or counter per packet: GCM (RFC 5647), CTR (RFC 4344), OpenSSH's
# PROTOCOL.chacha20poly1305. CBC, and anything not named here, keeps its ignore packets.
PER_PACKET_NONCE = ("-gcm@openssh.com", "-ctr", "chacha20-poly1305@openssh.com")
PACKET_LOG_LEVEL = 3  # asyncssh logs packets from this debug level up


def skip_ignore_packets(conn: asyncssh.SSHClientConnection) -> bool:
    """Stop the ignore packet before each packet; True if the cipher allowed it."""
    cipher = conn.get_extra_info("send_cipher")
    if not (isinstance(cipher, str) and cipher.endswith(PER_PACKET_NONCE)):
        return False
    send_packet: Callable[..., None] = conn.send_packet

    def without_ignore(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype != MSG_IGNORE:
            send_packet(pkttype, *args, handler=handler)

    setattr(conn, "send_packet", without_ignore)  # noqa: B010 - this object only, on purpose
    return True


def _no_log(*_args: object) -> None:
    return None


class LevelFirst(SSHLogger):
    """asyncssh's logger, asking whether a level is wanted before preparing the message."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            super().log(level, msg, *args, **kwargs)


def packet_log_level() -> int:
    """asyncssh's debug level (packets are logged from ``PACKET_LOG_LEVEL`` up)."""
    level = getattr(SSHLogger, "_debug_level", PACKET_LOG_LEVEL)
    return level if isinstance(level, int) else PACKET_LOG_LEVEL


def quiet_packet_logs(*objs: object) -> bool:
    """Skip preparing log lines on these objects while nobody reads them; False if packet logs
    are on (asyncssh's debug level 3), which leaves the objects as they are."""
    if packet_log_level() >= PACKET_LOG_LEVEL:
        return False
    for obj in objs:
        for name in ("log_sent_packet", "log_received_packet"):
            if callable(getattr(obj, name, None)):
                setattr(obj, name, _no_log)
        logger = getattr(obj, "_logger", None)
        if type(logger) is SSHLogger:
            context = getattr(logger, "_context", "")
            setattr(obj, "_logger", LevelFirst(logger.logger, "", context))  # noqa: B010
    return True


def lean_sftp(sftp: asyncssh.SFTPClient) -> None:
    """``quiet_packet_logs`` for an SFTP session's handler and channel."""
    handler = getattr(sftp, "_handler", None)
    writer = getattr(handler, "_writer", None)
    quiet_packet_logs(handler, getattr(writer, "channel", None))
