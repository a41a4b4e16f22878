"""Prove that tests/servers/rclone.py runs a real ``rclone serve sftp`` that asyncssh can use."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator

import asyncssh
import pytest

from tests.servers import smoke
from tests.servers.base import HOST, CompatServer
from tests.servers.rclone import running_rclone

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def rclone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatServer]:
    with running_rclone(tmp_path_factory.mktemp("rclone")) as server:
        yield server


@pytest.fixture
def server(rclone: CompatServer) -> CompatServer:
    rclone.reset()
    return rclone


def test_shape(server: CompatServer) -> None:
    assert server.kind == "rclone"
    assert server.host == HOST
    assert server.web_root == server.login_dir / "public_html"
    assert stat.S_IMODE(server.web_root.stat().st_mode) == 0o755
    assert server.known_hosts.read_text().startswith(f"[{HOST}]:{server.port} ssh-ed25519 ")
    assert server.log is not None
    assert "SFTP server listening on 127.0.0.1:" in server.log.read_text()


def test_write_lands_in_web_root(server: CompatServer) -> None:
    data = os.urandom(100_000)
    put = asyncio.run(smoke.put(server, "hello.bin", data))
    assert put.cwd == "/"
    assert "hello.bin" in put.listing
    assert (server.web_root / "hello.bin").read_bytes() == data


def test_wrong_password_refused(server: CompatServer) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(smoke.login(server, password="not-the-password"))


def test_reset_empties_web_root_and_rclone_sees_it(server: CompatServer) -> None:
    async def write() -> None:
        async with smoke.sftp(server) as sftp:
            await sftp.mkdir("public_html/sub")
            async with sftp.open("public_html/sub/a.txt", "wb") as f:
                await f.write(b"a")

    async def listing() -> list[str]:
        async with smoke.sftp(server) as sftp:
            return list(await sftp.listdir("public_html"))

    asyncio.run(write())
    assert (server.web_root / "sub" / "a.txt").read_bytes() == b"a"
    server.reset()
    assert list(server.web_root.iterdir()) == []
    assert stat.S_IMODE(server.web_root.stat().st_mode) == 0o755
    # no directory cache: rclone does not list what was removed behind its back
    assert asyncio.run(listing()) == []


def test_second_chunk_before_first_is_illegal_seek(server: CompatServer) -> None:
    """The reported failure: with the default VFS cache mode, a write at an offset past the end
    waits --vfs-write-wait (1 s) for the gap to fill, then fails with "Illegal seek". (A small
    second chunk: each of its 16 KiB requests waits its second, so 8 MiB would take ~16 s.)"""
    first, second = os.urandom(8 * MIB), os.urandom(64 * 1024)

    async def scenario() -> None:
        async with smoke.sftp(server) as sftp, sftp.open("public_html/big.bin", "wb") as f:
            await f.write(second, 8 * MIB)
            await f.write(first, 0)

    with pytest.raises(asyncssh.SFTPFailure, match="Illegal seek"):
        asyncio.run(scenario())


def test_in_order_writes_work(server: CompatServer) -> None:
    data = os.urandom(16 * MIB)

    async def scenario() -> None:
        async with smoke.sftp(server) as sftp, sftp.open("public_html/big.bin", "wb") as f:
            await f.write(data, 0)  # asyncssh pipelines the chunks, in order

    asyncio.run(scenario())
    assert (server.web_root / "big.bin").read_bytes() == data


def test_chmod_is_accepted_but_not_applied(server: CompatServer) -> None:
    async def scenario() -> int:
        async with smoke.sftp(server) as sftp:
            async with sftp.open("public_html/m.txt", "wb") as f:
                await f.write(b"m")
            await sftp.chmod("public_html/m.txt", 0o600)
            return stat.S_IMODE((await sftp.stat("public_html/m.txt")).permissions or 0)

    assert asyncio.run(scenario()) == 0o644
    assert stat.S_IMODE((server.web_root / "m.txt").stat().st_mode) == 0o644


def test_login_dir_is_the_root(server: CompatServer) -> None:
    async def scenario() -> list[str]:
        async with smoke.sftp(server) as sftp:
            return list(await sftp.listdir("../.."))

    assert asyncio.run(scenario()) == ["public_html"]
