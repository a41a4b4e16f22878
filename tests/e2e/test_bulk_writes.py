"""bulk_writes over real connections. With every cipher the client offers, a large write taken
by this route arrives intact at OpenSSH's sshd, at the offsets it was given. With AES-GCM the
data packets are sealed by the module, and filled to the peer's maximum size. A key exchange in
the middle of the writes, packet logs, a changed asyncssh, a failing write and a cut connection
each get the behaviour the module promises."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sftpmirror.transport._fastpath import bulk_writes, surface
from sftpmirror.transport._fastpath.bulk_writes import BulkWriter
from sftpmirror.transport._fastpath.lean_packets import (
    lean_sftp,
    quiet_packet_logs,
    skip_ignore_packets,
)
from sftpmirror.transport._fastpath.write_batching import batch_writes
from sftpmirror.transport.auth import ConnectOptions, Secret
from sftpmirror.transport.connect import CIPHERS, connect, open_sftp
from sftpmirror.url import RemoteSpec
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, asyncssh_log, plain_connect, run_cli
from tests.faults import CuttingProxy
from tests.openssh import SshdInfo

# Three chunks, none a multiple of a request's size: 3 MiB + 5 bytes at offsets 0, 1 MiB, 2 MiB.
CHUNKS = [os.urandom(1 << 20), os.urandom(1 << 20), os.urandom((1 << 20) + 5)]
DATA = b"".join(CHUNKS)
OPENSSH_PACKET = 32768  # sshd's maximum packet size for a session channel
OPENSSH_WRITE = 261120  # internal-sftp's max_write_len (limits@openssh.com)
HANDLE = 4  # bytes in an OpenSSH handle


async def upload(sftp: asyncssh.SFTPClient, path: str) -> BulkWriter:
    bulk = BulkWriter(sftp)
    async with sftp.open(path, "wb") as f:
        offset = 0
        for chunk in CHUNKS:
            assert await bulk.write(f, chunk, offset) == len(chunk)
            offset += len(chunk)
    return bulk


async def lean_upload(target: Target, path: str, **options: object) -> tuple[bool, int, str]:
    """Through a plain asyncssh connection made lean as ``ssh.connect`` makes it: whether the
    route was taken, the packets it sealed and the cipher negotiated."""
    async with plain_connect(target, **options) as conn:
        batch_writes(conn)
        skip_ignore_packets(conn)
        quiet_packet_logs(conn)
        async with conn.start_sftp_client() as sftp:
            lean_sftp(sftp)
            bulk = await upload(sftp, path)
            return bulk.active, bulk.sealed, conn.get_extra_info("send_cipher")


@pytest.mark.parametrize("cipher", CIPHERS)
def test_every_offered_cipher_writes_intact(sshd: SshdInfo, cipher: str) -> None:
    target = Target.of(sshd)
    active, sealed, negotiated = asyncio.run(
        lean_upload(target, "public_html/bulk.bin", encryption_algs=[cipher])
    )
    assert negotiated == cipher
    assert active
    assert (sshd.web_root / "bulk.bin").read_bytes() == DATA
    if "-gcm@" not in cipher:
        assert sealed == 0  # asyncssh seals these; the SFTP framing is still this module's
        return
    # Packets are filled across requests: fewer than half a packet more than the stream needs
    # (a window adjust may free less than a packet). asyncssh ends each of the 15 requests with
    # a short packet of its own.
    requests = sum(math.ceil(len(chunk) / OPENSSH_WRITE) for chunk in CHUNKS)
    stream = len(DATA) + requests * (4 + 1 + 4 + 4 + HANDLE + 8 + 4)
    assert math.ceil(stream / OPENSSH_PACKET) <= sealed < stream / OPENSSH_PACKET + requests / 2


def test_the_default_connection_takes_the_route(target: Target) -> None:
    """What a deploy gets, against both servers: AES-GCM, packets sealed by the module."""

    async def session() -> tuple[bool, int]:
        spec = RemoteSpec(target.host, path="", user=target.user, port=target.port)
        options = ConnectOptions(password=Secret(target.password), known_hosts=target.known_hosts)
        async with connect(spec, options) as conn, open_sftp(conn) as sftp:
            bulk = await upload(sftp, f"{target.path}/bulk.bin")
            return bulk.active, bulk.sealed

    active, sealed = asyncio.run(session())
    assert active
    assert sealed >= len(DATA) // OPENSSH_PACKET
    assert (target.disk / "bulk.bin").read_bytes() == DATA


def test_key_exchanges_in_the_middle_of_the_writes(sshd: SshdInfo) -> None:
    """New keys every 512 KiB: packets queued during each exchange go through asyncssh (which
    holds them until it ends), then the module seals with the new key."""
    with asyncssh_log(1) as log:
        active, sealed, _ = asyncio.run(
            lean_upload(
                Target.of(sshd),
                "public_html/rekeyed.bin",
                encryption_algs=["aes256-gcm@openssh.com"],
                rekey_bytes=512 << 10,
            )
        )
    exchanges = sum("Completed key exchange" in line for line in log.lines)
    assert exchanges >= 5  # the first one, and one per 512 KiB sent after login
    assert active
    assert sealed > len(DATA) // OPENSSH_PACKET // 2
    assert (sshd.web_root / "rekeyed.bin").read_bytes() == DATA


def test_packet_logs_keep_asyncssh_on_the_wire(sshd: SshdInfo) -> None:
    with asyncssh_log(3) as log:
        active, sealed, _ = asyncio.run(lean_upload(Target.of(sshd), "public_html/logged.bin"))
    assert not active
    assert sealed == 0
    assert sum("Sent MSG_CHANNEL_DATA" in line for line in log.lines) >= len(DATA) // 32768
    assert (sshd.web_root / "logged.bin").read_bytes() == DATA


def test_a_changed_asyncssh_turns_the_route_off(
    sshd: SshdInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    differs = tuple(
        dataclasses.replace(p, digest="0" * 16) if p.name.endswith("._flush_send_buf") else p
        for p in surface.SURFACE
    )
    monkeypatch.setattr(surface, "SURFACE", differs)
    assert not surface.enabled("bulk")
    active, sealed, _ = asyncio.run(lean_upload(Target.of(sshd), "public_html/plain.bin"))
    monkeypatch.undo()
    assert not active
    assert sealed == 0
    assert (sshd.web_root / "plain.bin").read_bytes() == DATA
    assert surface.enabled("bulk")


def test_requests_in_flight_are_bounded(sshd: SshdInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 16 KiB requests, 3 MiB is 193 of them: sent as 128, then the rest."""
    in_flight: list[int] = []
    answers = bulk_writes._answers

    async def counting(handler: Any, waiters: list[asyncio.Future[Any]]) -> None:
        in_flight.append(len(handler._requests))
        await answers(handler, waiters)

    monkeypatch.setattr(bulk_writes, "_answers", counting)

    async def session() -> bool:
        async with plain_connect(Target.of(sshd)) as conn, conn.start_sftp_client() as sftp:
            bulk = BulkWriter(sftp)
            async with sftp.open("public_html/small-requests.bin", "wb", block_size=16384) as f:
                await bulk.write(f, DATA, 0)
            return bulk.active

    assert asyncio.run(session())
    assert in_flight == [bulk_writes.MAX_REQUESTS, 193 - bulk_writes.MAX_REQUESTS]
    assert (sshd.web_root / "small-requests.bin").read_bytes() == DATA


def test_a_failing_write_is_raised_after_every_answer(sshd: SshdInfo) -> None:
    """Writes to a handle opened for reading fail, each one: the error comes once no request
    of the write is left unanswered, and the session goes on."""
    (sshd.web_root / "readonly.bin").write_bytes(b"keep")

    async def session() -> tuple[BaseException | None, int, bool]:
        async with plain_connect(Target.of(sshd)) as conn, conn.start_sftp_client() as sftp:
            bulk = BulkWriter(sftp)
            error: BaseException | None = None
            async with sftp.open("public_html/readonly.bin", "rb") as f:
                try:
                    await bulk.write(f, DATA, 0)
                except asyncssh.SFTPError as exc:
                    error = exc
            in_flight = len(sftp._handler._requests)
            await upload(sftp, "public_html/after.bin")
            return error, in_flight, bulk.active

    error, in_flight, active = asyncio.run(session())
    assert isinstance(error, asyncssh.SFTPError)
    assert in_flight == 0
    assert active
    assert (sshd.web_root / "readonly.bin").read_bytes() == b"keep"
    assert (sshd.web_root / "after.bin").read_bytes() == DATA


def test_connection_cut_in_a_large_file(openssh: Target, sshd: SshdInfo, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(os.urandom(6 << 20))
    (openssh.disk / "big.bin").write_bytes(b"the old version")
    with CuttingProxy(sshd.port, limit=3 << 20) as proxy:
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        result = run_cli("push", "--reconnects", "0", str(site), url, "--known-hosts", str(kh),
                         password=sshd.password)  # fmt: skip
        assert proxy.cut.is_set(), (result.output, proxy.sent)
    assert result.exit_code == 3, result.output
    time.sleep(0.5)  # let sshd's session process notice and exit
    assert (openssh.disk / "big.bin").read_bytes() == b"the old version"
    result = run_cli("push", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, openssh.disk)
    assert not list(openssh.disk.glob(".sftpmirror.*"))
