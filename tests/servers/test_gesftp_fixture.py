"""Smoke test of the gesftpserver fixture: gesftpserver behind a dedicated sshd takes the
password, starts the client in its own login directory and writes as the account."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.servers import smoke
from tests.servers.base import COMPAT_USER, CompatServer
from tests.servers.gesftp import COMPAT_HOME, running_gesftpserver


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CompatServer]:
    with running_gesftpserver(tmp_path_factory.mktemp("gesftp")) as running:
        yield running


def test_upload_lands_in_web_root(server: CompatServer) -> None:
    assert server.kind == "gesftpserver"
    assert server.host == "127.0.0.1"
    assert server.user == COMPAT_USER
    payload = b"gesftpserver smoke\n" + os.urandom(256)
    put = asyncio.run(smoke.put(server, "hello.bin", payload))
    assert Path(put.cwd) == server.login_dir
    assert server.login_dir != COMPAT_HOME
    assert put.banner.startswith("SSH-2.0-OpenSSH")
    target = server.web_root / "hello.bin"
    assert target.read_bytes() == payload
    assert target.stat().st_uid == server.login_dir.stat().st_uid != 0
    assert "forced-command" in (server.log.read_text() if server.log else "")


def test_reset_empties_web_root(server: CompatServer) -> None:
    asyncio.run(smoke.put(server, "left-over.txt", b"x"))
    assert any(server.web_root.iterdir())
    server.reset()
    assert list(server.web_root.iterdir()) == []
    st = server.web_root.stat()
    assert st.st_uid == server.login_dir.stat().st_uid
    assert st.st_mode & 0o777 == 0o755


def test_known_hosts_holds_the_ed25519_key(server: CompatServer) -> None:
    (line,) = server.known_hosts.read_text().splitlines()
    assert line.split()[:2] == [f"[127.0.0.1]:{server.port}", "ssh-ed25519"]


def test_root_cannot_log_in(server: CompatServer) -> None:
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(smoke.login(server, username="root"))
