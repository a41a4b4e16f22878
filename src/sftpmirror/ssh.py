"""Open the one SSH connection and SFTP session a run uses; turn asyncssh's errors into ours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncssh

from .auth import ConnectOptions, auth_kwargs
from .errors import AuthError, ConnectError, RemoteError
from .hostkeys import HostKeyCheck
from .url import RemoteSpec

KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 4


class _Client(asyncssh.SSHClient):
    def __init__(self, host_keys: HostKeyCheck) -> None:
        self._host_keys = host_keys

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._host_keys.validate(host, addr, port, key)


def _offered(options: ConnectOptions) -> str:
    if options.identities:
        return "the key " + ", ".join(str(p) for p in options.identities)
    if options.password is not None:
        return "a password (password and keyboard-interactive only, no keys)"
    return "keys from ssh_config and the agent" + (
        ", then a password" if options.prompt_password else ""
    )


def _denied_hint(options: ConnectOptions) -> str:
    if options.password is not None and not options.identities:
        return "check the user name and the password"
    return (
        "check the user name, and that the server has your public key (a chrooted account "
        "cannot read ~/.ssh inside its chroot); or give the password"
    )


@asynccontextmanager
async def connect(
    spec: RemoteSpec, options: ConnectOptions
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    host_keys = HostKeyCheck(options.known_hosts_path, accept_new=options.accept_new_host_key)
    where = f"{spec.host}:{spec.port or 22}"
    kwargs: dict[str, Any] = auth_kwargs(options, f"{spec.user or ''}@{spec.host}'s password: ")
    if spec.user:
        kwargs["username"] = spec.user
    if spec.port:
        kwargs["port"] = spec.port
    if options.ssh_config is not None:
        kwargs["config"] = [str(options.ssh_config)]
    try:
        conn = await asyncssh.connect(
            spec.host,
            known_hosts=host_keys.match,
            client_factory=lambda: _Client(host_keys),
            connect_timeout=options.timeout,
            login_timeout=options.timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            **kwargs,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise host_keys.error() from None
    except asyncssh.PermissionDenied:
        raise AuthError(
            f"permission denied: {where} refused {_offered(options)}",
            hint=_denied_hint(options),
        ) from None
    except asyncssh.DisconnectError as e:
        if "too many authentication failures" in e.reason.lower():
            raise AuthError(
                f"{where} disconnected: Too many authentication failures "
                f"(the server's MaxAuthTries was used up; offered {_offered(options)})",
                hint="give the password (--password-file or SFTPMIRROR_PASSWORD) so no keys are "
                "offered, or name the one key with --identity",
            ) from None
        raise ConnectError(f"{where} disconnected: {e.reason}") from None
    except TimeoutError:
        raise ConnectError(f"cannot connect to {where}: timed out") from None
    except OSError as e:
        raise ConnectError(f"cannot connect to {where}: {e.strerror or e}") from None
    except asyncssh.Error as e:
        raise ConnectError(f"{where}: {e.reason}") from None
    try:
        yield conn
    finally:
        conn.close()
        await conn.wait_closed()


@asynccontextmanager
async def open_sftp(conn: asyncssh.SSHClientConnection) -> AsyncIterator[asyncssh.SFTPClient]:
    try:
        sftp = await conn.start_sftp_client()
    except (asyncssh.ChannelOpenError, asyncssh.SFTPError) as e:
        raise RemoteError(
            f"the server accepted the login but has no SFTP service: {e.reason}"
        ) from None
    except asyncssh.Error as e:
        raise ConnectError(f"SFTP session failed: {e.reason}") from None
    try:
        yield sftp
    finally:
        sftp.exit()
