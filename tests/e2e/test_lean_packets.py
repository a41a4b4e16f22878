"""lean_packets over real connections. With every cipher the client offers, no SSH_MSG_IGNORE
goes before each packet (OpenSSH's sshd negotiates each one in turn); with a CBC cipher they
still do; packet logs still appear at asyncssh's debug level 3, and below it none is even
formatted. Uploads through a lean connection arrive intact (the rest of the suite runs on
lean connections too)."""

from __future__ import annotations

import asyncio
import os
import posixpath
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.logging import SSHLogger
from asyncssh.packet import SSHPacketLogger

from sftpmirror.transport._fastpath.lean_packets import quiet_packet_logs, skip_ignore_packets
from sftpmirror.transport.auth import ConnectOptions, Secret
from sftpmirror.transport.connect import CIPHERS, connect, open_sftp
from sftpmirror.url import RemoteSpec
from tests.conftest import Target
from tests.e2e.helpers import asyncssh_log, plain_connect
from tests.openssh import SshdInfo

PAGE = b"<html>lean</html>\n" * 4000  # 72 KiB: three SSH packets of data
LISTINGS = 10  # each at least 8 packets (open, readdir, readdir, close and their answers)


@contextmanager
def counted_log_work(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts, in this thread (the client's), the packet log lines asyncssh formats and the
    log messages it prepares, on any connection, channel or SFTP handler."""
    calls = {"packet lines": 0, "messages": 0}
    client = threading.get_ident()
    log_packet = SSHPacketLogger._log_packet
    log = SSHLogger.log

    def counting_log_packet(self: SSHPacketLogger, *args: Any) -> None:
        calls["packet lines"] += threading.get_ident() == client
        log_packet(self, *args)

    def counting_log(self: SSHLogger, *args: Any, **kwargs: Any) -> None:
        calls["messages"] += threading.get_ident() == client
        log(self, *args, **kwargs)

    monkeypatch.setattr(SSHPacketLogger, "_log_packet", counting_log_packet)
    monkeypatch.setattr(SSHLogger, "log", counting_log)
    yield calls
    monkeypatch.undo()


async def upload_and_list(sftp: asyncssh.SFTPClient, root: str) -> list[str]:
    async with sftp.open(posixpath.join(root, "lean.html"), "wb") as f:
        await f.write(PAGE)
    for _ in range(LISTINGS - 1):
        await sftp.listdir(root)
    return sorted(await sftp.listdir(root))


async def lean_session(target: Target) -> list[str]:
    spec = RemoteSpec(target.host, path="", user=target.user, port=target.port)
    options = ConnectOptions(password=Secret(target.password), known_hosts=target.known_hosts)
    async with connect(spec, options) as conn, open_sftp(conn) as sftp:
        return await upload_and_list(sftp, target.path)


def test_no_ignore_packets_and_packet_logs_kept_at_level_3(target: Target) -> None:
    with asyncssh_log(3) as log:
        names = asyncio.run(lean_session(target))
    assert "lean.html" in names
    assert (target.disk / "lean.html").read_bytes() == PAGE
    assert log.sent("MSG_CHANNEL_DATA") >= 3  # packet logs are still there at level 3
    # Key exchange and login go as asyncssh sends them; once logged in, no ignore packet.
    assert log.sent("MSG_IGNORE", since="MSG_CHANNEL_OPEN") == 0


def test_no_log_work_while_nobody_reads_it(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    asyncssh.set_debug_level(2)  # what --debug sets; the logger itself stays at WARNING
    try:
        with counted_log_work(monkeypatch) as lean:
            asyncio.run(lean_session(target))
        with counted_log_work(monkeypatch) as plain:
            asyncio.run(plain_session(target))
    finally:
        asyncssh.set_debug_level(1)
    # Key exchange and login (about 30 packets) are logged as usual, before the connection is
    # made lean; the requests after it add nothing. Plain asyncssh does the work for each one.
    assert lean["packet lines"] < 40
    assert plain["packet lines"] > lean["packet lines"] + 8 * LISTINGS
    assert lean["messages"] < 60
    assert plain["messages"] > lean["messages"] + 3 * LISTINGS


def test_debug_messages_still_shown_when_wanted(target: Target) -> None:
    with asyncssh_log(2) as log:
        asyncio.run(lean_session(target))
    assert sum("Sending opendir for" in line for line in log.lines) == LISTINGS
    assert sum("Sending readdir for handle" in line for line in log.lines) >= LISTINGS
    assert log.sent("MSG_CHANNEL_DATA") == 0  # level 2: no packet lines (asyncssh's rule)


async def plain_session(target: Target) -> list[str]:
    async with plain_connect(target) as conn, conn.start_sftp_client() as sftp:
        return await upload_and_list(sftp, target.path)


@pytest.mark.parametrize("cipher", CIPHERS)
def test_every_offered_cipher_goes_without_ignore_packets(sshd: SshdInfo, cipher: str) -> None:
    async def session() -> tuple[bool, str]:
        async with plain_connect(Target.of(sshd), encryption_algs=[cipher]) as conn:
            skipped = skip_ignore_packets(conn)
            async with conn.start_sftp_client() as sftp:
                await upload_and_list(sftp, "public_html")
            return skipped, conn.get_extra_info("send_cipher")

    with asyncssh_log(3) as log:
        skipped, negotiated = asyncio.run(session())
    assert negotiated == cipher
    assert skipped
    assert (sshd.web_root / "lean.html").read_bytes() == PAGE
    assert log.sent("MSG_CHANNEL_DATA") >= 3
    assert log.sent("MSG_IGNORE", since="MSG_CHANNEL_OPEN") == 0


def test_cbc_keeps_its_ignore_packets(tmp_path: Path) -> None:
    """CBC needs the countermeasure: nothing is dropped (an asyncssh server offering only CBC)."""

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return password == "cbc-test-pw"

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    files = tmp_path / "files"
    files.mkdir()
    ports: list[int] = []
    stop = threading.Event()

    async def serve() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_factory=Server,
            server_host_keys=[host_key],
            encryption_algs=["aes128-cbc"],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=os.fsencode(files)),
        )
        ports.append(server.sockets[0].getsockname()[1])
        await asyncio.to_thread(stop.wait)
        server.close()
        await server.wait_closed()

    async def session() -> tuple[bool, bool, str]:
        async with asyncssh.connect(
            "127.0.0.1",
            ports[0],
            username="web",
            password="cbc-test-pw",
            known_hosts=None,
            client_keys=None,
            agent_path=None,
            encryption_algs=["aes128-cbc"],
        ) as conn:
            skipped = skip_ignore_packets(conn)
            quieted = quiet_packet_logs(conn)
            async with conn.start_sftp_client() as sftp:
                await upload_and_list(sftp, ".")
            return skipped, quieted, conn.get_extra_info("send_cipher")

    server = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    server.start()
    try:
        for _ in range(200):
            if ports:
                break
            time.sleep(0.05)
        with asyncssh_log(3) as log:
            skipped, quieted, negotiated = asyncio.run(session())
    finally:
        stop.set()
        server.join(10)
    assert negotiated == "aes128-cbc"
    assert not skipped
    assert not quieted  # level 3: logs stay
    assert (files / "lean.html").read_bytes() == PAGE
    data = log.sent("MSG_CHANNEL_DATA")
    assert data >= 3
    assert log.sent("MSG_IGNORE", since="MSG_CHANNEL_OPEN") >= data
