"""What the servers' smoke tests (``test_*_fixture.py``) share: an asyncssh client that logs in
to a :class:`~tests.servers.base.CompatServer` with its password and known_hosts file (no keys,
no agent), and an upload into ``public_html``. Plain helpers: no pytest imports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncssh

from tests.servers.base import CompatServer

__all__ = ["Put", "connect", "login", "put", "sftp"]


@asynccontextmanager
async def connect(
    server: CompatServer, *, username: str | None = None, password: str | None = None
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """An SSH connection to ``server`` by password only, as its user (or ``username``) with its
    password (or ``password``), checking the host key against its known_hosts file."""
    async with asyncssh.connect(
        server.host,
        port=server.port,
        username=server.user if username is None else username,
        password=server.password if password is None else password,
        known_hosts=str(server.known_hosts),
        client_keys=None,
        agent_path=None,
        preferred_auth="password",
        connect_timeout=10,
    ) as conn:
        yield conn


@asynccontextmanager
async def sftp(server: CompatServer) -> AsyncIterator[asyncssh.SFTPClient]:
    """An SFTP session on a :func:`connect` connection as the server's user."""
    async with connect(server) as conn, conn.start_sftp_client() as client:
        yield client


async def login(
    server: CompatServer, *, username: str | None = None, password: str | None = None
) -> None:
    """Log in (as in :func:`connect`) and leave at once; raises what the login raises."""
    async with connect(server, username=username, password=password):
        pass


@dataclass(frozen=True)
class Put:
    """What :func:`put` saw of the server."""

    cwd: str  # the directory the session started in, as the server names it
    banner: str  # the server's SSH version string
    listing: list[str]  # public_html's names after the write, sorted


async def put(server: CompatServer, name: str, data: bytes) -> Put:
    """Write ``data`` to ``public_html/<name>`` (relative to where the session starts) in one
    SFTP session; return that start directory, the server's banner and public_html's names."""
    async with connect(server) as conn, conn.start_sftp_client() as client:
        cwd = str(await client.getcwd())
        async with client.open(f"public_html/{name}", "wb") as f:
            await f.write(data)
        return Put(
            cwd=cwd,
            banner=str(conn.get_extra_info("server_version")),
            listing=sorted(await client.listdir("public_html")),
        )
