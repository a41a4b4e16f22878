"""Prove that tests/servers/paramiko_server.py runs a real paramiko SFTP server (in its own
process) that asyncssh can use, and that it behaves as paramiko does."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from asyncssh.packet import String

from tests.servers import smoke
from tests.servers.base import HOST, CompatServer
from tests.servers.paramiko_server import running_paramiko

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def paramiko_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatServer]:
    with running_paramiko(tmp_path_factory.mktemp("paramiko")) as server:
        yield server


@pytest.fixture
def server(paramiko_server: CompatServer) -> CompatServer:
    paramiko_server.reset()
    return paramiko_server


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_shape(server: CompatServer) -> None:
    assert server.kind == "paramiko"
    assert server.host == HOST
    assert server.web_root == server.login_dir / "public_html"
    assert _mode(server.web_root) == 0o755
    assert server.known_hosts.read_text().startswith(f"[{HOST}]:{server.port} ssh-ed25519 ")
    assert server.log is not None
    assert "SFTP server on 127.0.0.1:" in server.log.read_text()


def test_password_not_on_command_line(server: CompatServer) -> None:
    cmdlines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
        except OSError:
            continue
    ours = [c for c in cmdlines if b"tests.servers.paramiko_server" in c]
    assert ours
    assert not any(server.password.encode() in c for c in ours)


def test_write_lands_in_web_root(server: CompatServer) -> None:
    data = os.urandom(100_000)
    put = asyncio.run(smoke.put(server, "hello.bin", data))
    assert put.banner.startswith("SSH-2.0-paramiko_")
    assert put.cwd == "/"
    assert (server.web_root / "hello.bin").read_bytes() == data


def test_wrong_password_refused(server: CompatServer) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(smoke.login(server, password="not-the-password"))


def test_reset_empties_web_root(server: CompatServer) -> None:
    async def scenario() -> None:
        async with smoke.sftp(server) as sftp:
            await sftp.mkdir("public_html/sub")
            async with sftp.open("public_html/sub/a.txt", "wb") as f:
                await f.write(b"a")

    asyncio.run(scenario())
    assert (server.web_root / "sub" / "a.txt").read_bytes() == b"a"
    server.reset()
    assert list(server.web_root.iterdir()) == []
    assert _mode(server.web_root) == 0o755


def test_many_connections_at_once(server: CompatServer) -> None:
    async def one(i: int) -> None:
        async with smoke.sftp(server) as sftp, sftp.open(f"public_html/c{i}.txt", "wb") as f:
            await f.write(str(i).encode())

    async def scenario() -> None:
        await asyncio.gather(*(one(i) for i in range(8)))

    asyncio.run(scenario())
    assert sorted(p.name for p in server.web_root.iterdir()) == [f"c{i}.txt" for i in range(8)]


def test_posix_rename_works_but_is_not_advertised(server: CompatServer) -> None:
    async def scenario() -> bool:
        async with smoke.sftp(server) as sftp:
            for name in ("a", "b"):
                async with sftp.open(f"public_html/{name}", "wb") as f:
                    await f.write(name.encode())
            advertised = sftp._handler._supports_posix_rename
            await sftp._handler._make_request(
                b"posix-rename@openssh.com", String(b"public_html/a"), String(b"public_html/b")
            )
            return advertised

    assert asyncio.run(scenario()) is False
    assert sorted(p.name for p in server.web_root.iterdir()) == ["b"]
    assert (server.web_root / "b").read_bytes() == b"a"


def test_plain_rename_refuses_to_replace(server: CompatServer) -> None:
    async def scenario() -> None:
        async with smoke.sftp(server) as sftp:
            for name in ("a", "b"):
                async with sftp.open(f"public_html/{name}", "wb") as f:
                    await f.write(name.encode())
            await sftp.rename("public_html/a", "public_html/b")

    with pytest.raises(asyncssh.SFTPFailure):
        asyncio.run(scenario())


def test_modes_and_times(server: CompatServer) -> None:
    mtime = 1_600_000_000

    async def scenario() -> None:
        async with smoke.sftp(server) as sftp:
            attrs = asyncssh.SFTPAttrs(permissions=0o600)
            async with sftp.open("public_html/p600", "wb", attrs=attrs) as f:
                await f.write(b"x")
            async with sftp.open("public_html/plain", "wb") as f:
                await f.write(b"x")
                await f.chmod(0o604)  # FSETSTAT
            async with sftp.open("public_html/set", "wb") as f:
                await f.write(b"x")
            await sftp.chmod("public_html/set", 0o640)  # SETSTAT
            await sftp.utime("public_html/set", (mtime, mtime))

    asyncio.run(scenario())
    assert _mode(server.web_root / "p600") == 0o600
    assert _mode(server.web_root / "plain") == 0o604
    assert _mode(server.web_root / "set") == 0o640
    assert int((server.web_root / "set").stat().st_mtime) == mtime


def test_new_file_without_attrs_gets_0644(server: CompatServer) -> None:
    async def scenario() -> None:
        async with smoke.sftp(server) as sftp, sftp.open("public_html/n", "wb") as f:
            await f.write(b"x")

    asyncio.run(scenario())
    assert _mode(server.web_root / "n") == 0o644  # 0o666 minus the server's umask 022


def test_out_of_order_writes(server: CompatServer) -> None:
    first, second = os.urandom(8 * MIB), os.urandom(8 * MIB)

    async def scenario() -> None:
        async with smoke.sftp(server) as sftp, sftp.open("public_html/big.bin", "wb") as f:
            await f.write(second, 8 * MIB)
            await f.write(first, 0)

    asyncio.run(scenario())
    assert (server.web_root / "big.bin").read_bytes() == first + second


def test_no_hardlink(server: CompatServer) -> None:
    async def scenario() -> None:
        async with smoke.sftp(server) as sftp:
            async with sftp.open("public_html/a", "wb") as f:
                await f.write(b"a")
            await sftp._handler._make_request(
                b"hardlink@openssh.com", String(b"public_html/a"), String(b"public_html/h")
            )

    with pytest.raises(asyncssh.SFTPOpUnsupported):
        asyncio.run(scenario())


def test_symlinks(server: CompatServer) -> None:
    async def scenario() -> str:
        async with smoke.sftp(server) as sftp:
            async with sftp.open("public_html/target", "wb") as f:
                await f.write(b"t")
            await sftp.symlink("target", "public_html/link")
            return await sftp.readlink("public_html/link")

    assert asyncio.run(scenario()) == "target"
    assert os.readlink(server.web_root / "link") == "target"


def test_paths_confined_to_the_root(server: CompatServer, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (server.web_root / "escape").symlink_to(outside)

    async def listing() -> list[str]:
        async with smoke.sftp(server) as sftp:
            return sorted(await sftp.listdir("../../.."))

    async def through_link() -> None:
        async with smoke.sftp(server) as sftp:
            await sftp.stat("public_html/escape/secret")

    async def make_link_out() -> None:
        async with smoke.sftp(server) as sftp:
            await sftp.symlink("../../..", "public_html/up")

    assert [n for n in asyncio.run(listing()) if n not in (".", "..")] == ["public_html"]
    with pytest.raises(asyncssh.SFTPPermissionDenied):
        asyncio.run(through_link())
    with pytest.raises(asyncssh.SFTPPermissionDenied):
        asyncio.run(make_link_out())
    assert not (server.web_root / "up").is_symlink()
