"""Every asyncssh private the fast paths lean on, named once, with the fingerprint it had when
the code using it was written (asyncssh 2.24.1), and the switch that turns them off.

A fast path is on only when every one of its entries still has that fingerprint: for a
function, the SHA-256 of its source (first 16 hex digits); for a constant, of its ``repr``.
A changed entry turns its feature off, and asyncssh's public path carries the work instead
(``scandir`` for listings, ``SFTPClientFile.write`` for writes, and so on). A missing one
(renamed, or no source to read in a byte-code-only install) does the same. ``--debug`` logs
which are on; ``tests/unit/test_fastpath_surface.py`` fails when any entry differs, so an
asyncssh upgrade gets a review here before the pin is lifted.

``SFTPMIRROR_NO_FASTPATH=1`` turns every fast path off (to tell whether one is the cause of a
bug, in one command); ``SFTPMIRROR_NO_FASTPATH=pipeline,bulk`` turns off the ones named.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import linecache
import logging
import os
from dataclasses import dataclass

log = logging.getLogger("sftpmirror.fastpath")

SWITCH = "SFTPMIRROR_NO_FASTPATH"

#: What each feature does for us, for ``--debug`` and the README.
FEATURES = {
    "pipeline": "directory listings in two round trips, their names decoded straight into "
    "tuples; small writes answered later; downloads read ahead, a small file in one round "
    "trip after its open",
    "batching": "one send() per turn of the event loop",
    "lean": "no ignore packets with per-packet-nonce ciphers; no unread log lines",
    "bulk": "large writes framed around views of the chunk; AES-GCM sealed in one pass",
    "packing": "the SFTP requests of one turn of the event loop packed into full SSH packets",
    "facts": "doctor reads strict-KEX and extension flags",
    "watchdog": "a session that stops answering is dropped after --timeout seconds",
    "probe": "the server profile: probe requests in a set order; posix-rename tried "
    "unadvertised; the read size learnt where none is stated",
}


@dataclass(frozen=True, slots=True)
class Private:
    feature: str
    name: str  # "module:Qualified.name"
    digest: str


SURFACE = (
    # pipeline: SFTPClient._handler, the handler's request methods, SFTPClientFile._handle,
    # ._handler and .write_len (set in the __init__s named here). A READDIR is sent as
    # readdir/_make_request send it (_send_request, the handler's _loop and _version), its
    # answer taken as _process_packet hands it over; a v3 name list is decoded as
    # SFTPName.decode and SFTPAttrs.decode do, from get_remaining_payload; others, and errors,
    # by _process_name and _process_status. Reads ahead send requests as _send_request and
    # send_packet do (a request id from _next_pktid, a future in _requests, the packet framed
    # and logged, written to _writer, which drops it once its channel is closing: checked
    # first), answered by _process_packet, failed by _cleanup when the session ends, and read
    # by _process_data and _process_status.
    Private("pipeline", "asyncssh.sftp:SFTPClient.__init__", "52af55f917c173b5"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler.__init__", "0b9be11180467223"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler.opendir", "65b66b84cbbc0aad"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler.readdir", "0592a11e10fe3073"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._make_request", "89d230f05bd86d76"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._send_request", "382bd9c702819eeb"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._process_packet", "5c121c9917d55583"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._process_status", "e682a5aaa954eaa4"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._process_name", "cdc0bfae3a4967a0"),
    Private("pipeline", "asyncssh.sftp:SFTPName.decode", "64c2c4007e75effa"),
    Private("pipeline", "asyncssh.sftp:SFTPAttrs.decode", "876251f6bf71e1a4"),
    Private("pipeline", "asyncssh.packet:SSHPacket.get_remaining_payload", "dd8a128b48dc3775"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler.close", "73c96883b13a7673"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler.write", "21803ccf8973dd07"),
    Private("pipeline", "asyncssh.sftp:SFTPClientFile.__init__", "372a3642ce73fa9e"),
    Private("pipeline", "asyncssh.sftp:SFTPHandler.__init__", "f4067a8a90addc41"),
    Private("pipeline", "asyncssh.packet:SSHPacketLogger.log_sent_packet", "d21306e3c6b2b2f5"),
    Private("pipeline", "asyncssh.sftp:SFTPHandler.send_packet", "0c22ab5cc5f282e9"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._cleanup", "0f3c7c78ce34ce0e"),
    Private("pipeline", "asyncssh.sftp:SFTPClientHandler._process_data", "9d4895fcdba26e4d"),
    # batching: SSHConnection._transport, set in connection_made and written in _send.
    Private("batching", "asyncssh.connection:SSHConnection.connection_made", "e7b867af0f590a2c"),
    Private("batching", "asyncssh.connection:SSHConnection._send", "c6698a37eb80f574"),
    # lean: send_packet's signature, MSG_IGNORE, the packet loggers, SSHLogger's insides.
    Private("lean", "asyncssh.connection:SSHConnection.send_packet", "fb9da7bec6dd395a"),
    Private("lean", "asyncssh.constants:MSG_IGNORE", "d4735e3a265e16ee"),
    Private("lean", "asyncssh.packet:SSHPacketLogger.log_sent_packet", "d21306e3c6b2b2f5"),
    Private("lean", "asyncssh.packet:SSHPacketLogger.log_received_packet", "38e8df0c0c53ac0a"),
    Private("lean", "asyncssh.logging:SSHLogger.__init__", "c55bc8335b6d7068"),
    Private("lean", "asyncssh.logging:SSHLogger.set_debug_level", "b05bdc0644143d56"),
    # bulk: the functions bulk_writes.py stands in for.
    Private("bulk", "asyncssh.channel:SSHChannel._flush_send_buf", "3f11e9dc27c58b18"),
    Private("bulk", "asyncssh.connection:SSHConnection.send_packet", "fb9da7bec6dd395a"),
    Private("bulk", "asyncssh.encryption:GCMEncryption.encrypt_packet", "6a59190103eaab06"),
    Private("bulk", "asyncssh.crypto.cipher:GCMCipher.encrypt_and_sign", "adb87dbdb4f9039a"),
    Private("bulk", "asyncssh.sftp:SFTPHandler.send_packet", "0c22ab5cc5f282e9"),
    Private("bulk", "asyncssh.sftp:SFTPClientHandler._send_request", "382bd9c702819eeb"),
    # packing: the channel's flush (put off to the turn's end) as write, close and write_eof
    # call it, the packets it makes with send_packet, and _send_chan, cleared by _cleanup.
    Private("packing", "asyncssh.channel:SSHChannel._flush_send_buf", "3f11e9dc27c58b18"),
    Private("packing", "asyncssh.channel:SSHChannel.write", "1045e20008469933"),
    Private("packing", "asyncssh.channel:SSHChannel.close", "2d0f6c05f1998289"),
    Private("packing", "asyncssh.channel:SSHChannel.write_eof", "0466daebc7aaca21"),
    Private("packing", "asyncssh.channel:SSHChannel.send_packet", "00e81b763c8f3dd2"),
    Private("packing", "asyncssh.channel:SSHChannel._cleanup", "5d0b2593194bbf4b"),
    # watchdog: every answer goes through the handler's log_received_packet; _requests waits.
    Private("watchdog", "asyncssh.sftp:SFTPHandler.recv_packets", "f1c5fb1ba31b4800"),
    Private("watchdog", "asyncssh.sftp:SFTPClientHandler._process_packet", "5c121c9917d55583"),
    Private("watchdog", "asyncssh.sftp:SFTPClientHandler.__init__", "0b9be11180467223"),
    # probe: SFTPClientFile._handler/_handle, the handler's requests sent in task order, and
    # _supports_posix_rename (set in SFTPClientHandler.__init__, read by posix_rename).
    Private("probe", "asyncssh.sftp:SFTPClientFile.__init__", "372a3642ce73fa9e"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.__init__", "0b9be11180467223"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.posix_rename", "f368918c3534d462"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.fstat", "3da38dc43c658bf0"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.fsetstat", "4c721ebeb556f55d"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.write", "21803ccf8973dd07"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.close", "73c96883b13a7673"),
    Private("probe", "asyncssh.sftp:SFTPClientHandler.read", "b90d5159e2743652"),
    # facts: SSHConnection._strict_kex and SFTPClientHandler._supports_* (doctor only).
    Private("facts", "asyncssh.connection:SSHConnection.__init__", "41da2e469f2a3964"),
    Private("facts", "asyncssh.sftp:SFTPClientHandler.__init__", "0b9be11180467223"),
)


def resolve(name: str) -> object:
    """The object an entry names; AttributeError or ImportError when it is gone."""
    module, _, qualname = name.partition(":")
    obj: object = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@functools.cache
def _digest_of(obj: object) -> str:
    text = _source_of(obj) if callable(obj) else repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _source_of(obj: object) -> str:
    """A function's source, the text ``inspect.getsource`` gives (from its first line to its
    last line of code), at a sixth of the cost: ``getsource`` tokenizes the file to find where
    the function ends (20 ms for the table's 40 functions, at every push); the code object
    knows. Anything else goes to ``getsource``."""
    code = getattr(inspect.unwrap(obj), "__code__", None)  # type: ignore[arg-type]
    if code is None:
        return inspect.getsource(obj)  # type: ignore[arg-type]
    lines = linecache.getlines(code.co_filename)
    last = max((line for _, _, line in code.co_lines() if line is not None), default=0)
    if not lines or last < code.co_firstlineno:
        raise OSError("no source")
    return "".join(lines[code.co_firstlineno - 1 : last])


def fingerprint(name: str) -> str | None:
    """The entry's fingerprint in the installed asyncssh, None when it cannot be had."""
    try:
        obj = resolve(name)
        return _digest_of(obj)
    except (AttributeError, ImportError, OSError, TypeError):
        return None


def changed(feature: str | None = None) -> list[str]:
    """The entries (of one feature, or all) that differ from the surface table."""
    return [
        p.name
        for p in SURFACE
        if (feature is None or p.feature == feature) and fingerprint(p.name) != p.digest
    ]


def switched_off() -> set[str]:
    """The features ``SFTPMIRROR_NO_FASTPATH`` turns off."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if not value or value in ("0", "no", "false"):
        return set()
    if value in ("1", "yes", "true", "all"):
        return set(FEATURES)
    return {part.strip() for part in value.split(",") if part.strip()}


def enabled(feature: str) -> bool:
    """Is this fast path on: not switched off, and every private it uses unchanged?"""
    if feature in switched_off():
        return False
    return not changed(feature)


def status() -> dict[str, str]:
    """Per feature: "on", or "off: <why>" (for ``--debug`` and doctor)."""
    off = switched_off()
    result: dict[str, str] = {}
    for feature in FEATURES:
        if feature in off:
            result[feature] = f"off: {SWITCH}"
        elif differ := changed(feature):
            result[feature] = "off: asyncssh changed " + ", ".join(differ)
        else:
            result[feature] = "on"
    return result


def log_status() -> None:
    if log.isEnabledFor(logging.DEBUG):
        for feature, state in status().items():
            log.debug("fast path %s: %s (%s)", feature, state, FEATURES[feature])
