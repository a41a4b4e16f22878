"""Prove that tests/openssh.py really runs a chrooted, SFTP-only OpenSSH sshd."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.openssh import SshdInfo, running_sshd

pytestmark = pytest.mark.openssh


@asynccontextmanager
async def _connect(info: SshdInfo, **kwargs: Any) -> AsyncIterator[asyncssh.SSHClientConnection]:
    options: dict[str, Any] = {
        "username": info.user,
        "password": info.password,
        "known_hosts": str(info.known_hosts),
        "client_keys": None,
        "agent_path": None,
        "preferred_auth": "password",
        "connect_timeout": 10,
    }
    options.update(kwargs)
    async with asyncssh.connect(info.host, info.port, **options) as conn:
        yield conn


def _wait_for_log(info: SshdInfo, *needles: str, timeout: float = 5.0) -> str:
    """sshd writes its log asynchronously: poll until one of *needles* shows up."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = info.log.read_text(errors="replace")
        if any(needle in text for needle in needles):
            return text
        time.sleep(0.05)
    return text


def test_info_shape(sshd: SshdInfo) -> None:
    assert sshd.host == "127.0.0.1"
    assert sshd.url() == f"sftp://{sshd.user}@127.0.0.1:{sshd.port}/public_html"
    assert sshd.web_root == sshd.chroot / "public_html"
    chroot_stat = sshd.chroot.stat()
    assert chroot_stat.st_uid == 0
    assert stat.S_IMODE(chroot_stat.st_mode) == 0o755
    # every component up to "/" must satisfy sshd's safely_chroot()
    for component in [sshd.chroot, *sshd.chroot.parents]:
        st = component.stat()
        assert st.st_uid == 0, component
        assert not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), component
    web_stat = sshd.web_root.stat()
    assert web_stat.st_uid != 0
    assert stat.S_IMODE(web_stat.st_mode) == 0o755
    lines = sshd.known_hosts.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [
        [f"[127.0.0.1]:{sshd.port}", "ssh-ed25519"],
        [f"[127.0.0.1]:{sshd.port}", "ssh-rsa"],
    ]
    assert len(sshd.host_key_fingerprints) == 2
    assert all(fp.startswith("SHA256:") for fp in sshd.host_key_fingerprints)
    assert f"Server listening on 127.0.0.1 port {sshd.port}." in sshd.log.read_text()


def test_password_login_upload_lands_in_web_root(sshd: SshdInfo) -> None:
    payload = b"hello from the sftpmirror fixture\n" + os.urandom(64)

    async def scenario() -> tuple[str, str]:
        async with _connect(sshd) as conn:
            key = conn.get_server_host_key()
            assert key is not None
            fingerprint = key.get_fingerprint("sha256")
            async with conn.start_sftp_client() as sftp:
                async with sftp.open("public_html/hello.txt", "wb") as fh:
                    await fh.write(payload)
                attrs = await sftp.stat("public_html/hello.txt")
                assert attrs.size == len(payload)
                return fingerprint, await sftp.realpath("public_html/hello.txt")

    fingerprint, remote_path = asyncio.run(scenario())
    assert fingerprint in sshd.host_key_fingerprints
    assert remote_path == "/public_html/hello.txt"
    on_disk = sshd.web_root / "hello.txt"
    assert on_disk.read_bytes() == payload
    assert on_disk.stat().st_uid == sshd.web_root.stat().st_uid  # written as the user
    assert "Accepted password for " + sshd.user in _wait_for_log(sshd, "Accepted password")


def test_login_is_chrooted(sshd: SshdInfo) -> None:
    async def scenario() -> tuple[str, list[str]]:
        async with _connect(sshd) as conn, conn.start_sftp_client() as sftp:
            cwd = await sftp.realpath(".")
            names = sorted(n for n in await sftp.listdir("/") if n not in (".", ".."))
            # the chroot root is root-owned 0755: the user cannot write there
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.mkdir("/newdir")
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.open("/escape.txt", "wb")
            # nothing outside the chroot is reachable
            assert not await sftp.exists("/etc/passwd")
            assert await sftp.realpath("/../../..") == "/"
            return cwd, names

    cwd, names = asyncio.run(scenario())
    assert cwd == "/"
    assert names == ["public_html"]
    assert not (sshd.chroot / "escape.txt").exists()
    assert not (sshd.chroot / "newdir").exists()
    assert f'Changed root directory to "{sshd.chroot}"' in _wait_for_log(
        sshd, "Changed root directory"
    )


def test_wrong_password_is_rejected(sshd: SshdInfo) -> None:
    async def scenario() -> None:
        async with _connect(sshd, password="definitely-not-the-password"):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(scenario())
    assert "Failed password for " + sshd.user in _wait_for_log(sshd, "Failed password")


def test_exec_gives_no_shell(sshd: SshdInfo) -> None:
    async def scenario() -> asyncssh.SSHCompletedProcess:
        async with _connect(sshd) as conn:
            completed: asyncssh.SSHCompletedProcess = await conn.run("id", check=False, timeout=10)
            return completed

    result = asyncio.run(scenario())
    stdout = str(result.stdout or "")
    assert "uid=" not in stdout
    assert result.exit_status != 0
    assert "sftp connections only" in stdout + str(result.stderr or "")
    assert "forced-command (config) 'internal-sftp'" in _wait_for_log(sshd, "forced-command")


def test_real_openssh_sftp_client(sshd: SshdInfo, tmp_path: Path) -> None:
    """The stock OpenSSH ``sftp`` client, password fed through SSH_ASKPASS."""
    assert shutil.which("sftp") is not None, "OpenSSH sftp client not installed"
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\nprintf '%s\\n' '{sshd.password}'\n")
    askpass.chmod(0o700)
    local = tmp_path / "local.txt"
    local.write_bytes(b"uploaded by /usr/bin/sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(f"cd public_html\nput {local} via-openssh.txt\nls -1\npwd\n")
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
    env.pop("SSH_AUTH_SOCK", None)
    proc = subprocess.run(
        [
            "sftp",
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={sshd.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=no",  # sftp -b implies BatchMode=yes (no password)
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=10",
            "-P",
            str(sshd.port),
            "-b",
            str(batch),
            f"{sshd.user}@{sshd.host}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "via-openssh.txt" in proc.stdout
    assert "Remote working directory: /public_html" in proc.stdout
    assert (sshd.web_root / "via-openssh.txt").read_bytes() == local.read_bytes()


def test_too_many_authentication_failures(tmp_path: Path) -> None:
    keys = [asyncssh.generate_private_key("ssh-ed25519") for _ in range(3)]

    with running_sshd(tmp_path, max_auth_tries=2, pubkey=True) as info:

        async def scenario() -> None:
            async with _connect(info, client_keys=keys, preferred_auth="publickey,password"):
                pass

        with pytest.raises((asyncssh.DisconnectError, asyncssh.PermissionDenied)) as excinfo:
            asyncio.run(scenario())
        log = _wait_for_log(info, "maximum authentication attempts exceeded")

    assert "Too many authentication failures" in str(excinfo.value)
    assert "maximum authentication attempts exceeded for " + info.user in log
    assert "Failed password" not in log  # never got as far as the password
    assert not info.chroot.exists()  # cleanup removed the chroot


def test_cleanup_and_startup_errors(tmp_path: Path) -> None:
    with running_sshd(tmp_path / "a") as info:
        pid = int((tmp_path / "a" / "sshd.pid").read_text())
        os.kill(pid, 0)  # running
    assert not info.chroot.exists()
    assert not Path(f"/proc/{pid}").exists()  # reaped, not just signalled
    # a bad option is reported with sshd's own message
    bad = running_sshd(tmp_path / "b", extra_global="NoSuchOption yes")
    with pytest.raises(RuntimeError, match="NoSuchOption"):
        bad.__enter__()


def test_authorized_keys_allow_publickey_login(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    public_line = key.export_public_key("openssh").decode()

    with running_sshd(
        tmp_path, authorized_keys=[public_line], password_authentication=False
    ) as info:

        async def scenario() -> list[str]:
            async with (
                _connect(
                    info, password=None, client_keys=[key], preferred_auth="publickey"
                ) as conn,
                conn.start_sftp_client() as sftp,
            ):
                return sorted(await sftp.listdir("public_html"))

        assert "." in asyncio.run(scenario())
        assert "Accepted publickey for " + info.user in _wait_for_log(info, "Accepted publickey")
