"""``sftpmirror serve``: a throwaway SFTP server on loopback, for the demo and the tests.

It behaves like a web host's chrooted SFTP-only account: the client sees ROOT as ``/``, logs in
with a password (publickey is offered too, and fails unless ``authorized_keys`` lists the key),
has no shell, and after ``max_auth_tries`` failed attempts is disconnected with "Too many
authentication failures", as OpenSSH's ``MaxAuthTries`` does.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from sftpmirror.transport.auth import Secret
from sftpmirror.transport.hostkeys import host_pattern

DEFAULT_USER = "deploy"
HOST_KEY_NAME = "ssh_host_ed25519_key"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "sftpmirror" / "serve"


def generate_password() -> Secret:
    return Secret(secrets.token_urlsafe(12))


@dataclass(frozen=True, slots=True)
class ServerConfig:
    root: Path
    password: Secret
    user: str = DEFAULT_USER
    host: str = "127.0.0.1"
    port: int = 0
    max_auth_tries: int = 6
    state_dir: Path | None = None
    authorized_keys: Path | None = None


@dataclass(frozen=True, slots=True)
class ServerInfo:
    host: str
    port: int
    user: str
    fingerprint: str
    known_hosts_line: str

    def url(self, path: str = "") -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}/{path}"


def load_host_key(state_dir: Path) -> asyncssh.SSHKey:
    """The server's host key, made on first use and kept, so known_hosts stays valid."""
    path = state_dir / HOST_KEY_NAME
    if path.exists():
        return asyncssh.read_private_key(path)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(path)
    path.chmod(0o600)
    return key


class _AuthServer(asyncssh.SSHServer):
    def __init__(self, config: ServerConfig, keys: list[asyncssh.SSHKey]) -> None:
        self._config = config
        self._keys = keys
        self._failures = 0
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        good = hmac.compare_digest(password.encode(), self._config.password.reveal().encode())
        return self._judge(username == self._config.user and good)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._judge(username == self._config.user and key in self._keys)

    def _judge(self, ok: bool) -> bool:
        if not ok:
            self._failures += 1
            if self._failures >= self._config.max_auth_tries and self._conn is not None:
                self._conn.disconnect(
                    asyncssh.DISC_PROTOCOL_ERROR, "Too many authentication failures"
                )
        return ok


@asynccontextmanager
async def serve(
    config: ServerConfig, sftp_class: type[asyncssh.SFTPServer] = asyncssh.SFTPServer
) -> AsyncIterator[ServerInfo]:
    """Listen until the block ends. ``sftp_class`` lets tests inject faults or watch requests."""
    root = config.root.resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"not a directory: {root}")
    host_key = load_host_key(config.state_dir or default_state_dir())
    keys: list[asyncssh.SSHKey] = []
    if config.authorized_keys is not None:
        keys = list(asyncssh.read_public_key_list(config.authorized_keys))

    def sftp_factory(chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return sftp_class(chan, chroot=os.fsencode(root))

    server = await asyncssh.create_server(
        lambda: _AuthServer(config, keys),
        config.host,
        config.port,
        server_host_keys=[host_key],
        sftp_factory=sftp_factory,
        allow_scp=False,
    )
    port = server.sockets[0].getsockname()[1]
    public = host_key.export_public_key("openssh").decode().split()
    info = ServerInfo(
        host=config.host,
        port=port,
        user=config.user,
        fingerprint=host_key.get_fingerprint("sha256"),
        known_hosts_line=f"{host_pattern(config.host, port)} {public[0]} {public[1]}",
    )
    try:
        yield info
    finally:
        server.close()
        await server.wait_closed()
