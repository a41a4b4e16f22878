"""Open the one SSH connection and SFTP session a run uses; turn asyncssh's errors into ours.

ssh_config is resolved by asyncssh (Host aliases, HostName, User, Port, IdentityFile,
IdentitiesOnly, IdentityAgent, PreferredAuthentications, ProxyJump, UserKnownHostsFile); the
choice of what to offer at login is ours (``auth.py``, ``login.py``), and so is the diagnosis
when it fails (``diagnose.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh

from sftpmirror.errors import ConnectError, UsageError
from sftpmirror.transport import _fastpath as fastpath
from sftpmirror.transport._fastpath.lean_packets import (
    lean_sftp,
    quiet_packet_logs,
    skip_ignore_packets,
)
from sftpmirror.transport._fastpath.write_batching import batch_writes
from sftpmirror.transport.auth import PUBLICKEY, ConnectOptions, method_order
from sftpmirror.transport.diagnose import auth_failure, connect_failure, no_sftp
from sftpmirror.transport.hostkeys import HostKeyCheck
from sftpmirror.transport.login import (
    LoginClient,
    LoginTrace,
    OfferedKey,
    PasswordSource,
    gather_keys,
)
from sftpmirror.transport.session import Session
from sftpmirror.url import RemoteSpec

KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 4
# AES-GCM first: with AES instructions it is several times cheaper than ChaCha20-Poly1305 per
# byte and per packet (asyncssh's default order), and the client's order decides (RFC 4253).
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
DEFAULT_SSH_CONFIG = "~/.ssh/config"

log = logging.getLogger("sftpmirror.login")

_LIVE: weakref.WeakSet[asyncssh.SSHClientConnection] = weakref.WeakSet()


def abort_all() -> int:
    """Drop every open connection at once (a stop request on a slow link): requests in flight
    fail now instead of draining. Returns how many were dropped."""
    live = list(_LIVE)
    for conn in live:
        conn.abort()
    return len(live)


def debug_logging() -> None:
    """asyncssh's debug messages (``--debug``): level 2, no packet dumps."""
    asyncssh.set_debug_level(2)


def _config_files(options: ConnectOptions) -> list[str]:
    if options.ssh_config is not None:
        return [str(options.ssh_config)]
    default = os.path.expanduser(DEFAULT_SSH_CONFIG)
    return [default] if os.access(default, os.R_OK) else []


async def resolve(spec: RemoteSpec, options: ConnectOptions) -> asyncssh.SSHClientConnectionOptions:
    """What ssh_config makes of the destination: real host, port, user, keys, agent."""
    kwargs: dict[str, Any] = {"host": spec.host}
    if spec.user:
        kwargs["username"] = spec.user
    if spec.port:
        kwargs["port"] = spec.port
    kwargs["config"] = _config_files(options)
    try:
        resolved: asyncssh.SSHClientConnectionOptions = (
            await asyncssh.SSHClientConnectionOptions.construct(**kwargs)
        )
    except (OSError, ValueError, asyncssh.Error) as e:
        raise UsageError(f"ssh_config: {e}") from None
    return resolved


def known_hosts_paths(
    options: ConnectOptions, resolved: asyncssh.SSHClientConnectionOptions
) -> list[Path]:
    if options.known_hosts is not None:
        return [options.known_hosts]
    configured = resolved.known_hosts
    if isinstance(configured, list) and configured and all(isinstance(p, str) for p in configured):
        return [Path(p).expanduser() for p in configured]
    return [DEFAULT_KNOWN_HOSTS.expanduser()]


async def allowed_methods(resolved: asyncssh.SSHClientConnectionOptions) -> list[str] | None:
    """Ask the server which methods it allows (the ``none`` method; counts as no failure)."""
    tunnel: Any = resolved.tunnel or ()
    try:
        async with asyncio.timeout(resolved.connect_timeout or 30):
            methods = await asyncssh.get_server_auth_methods(
                resolved.host, resolved.port, resolved.username, tunnel=tunnel
            )
    except (OSError, TimeoutError, asyncssh.Error) as e:
        log.debug("could not ask the server for its methods: %s", e)
        return None
    return list(methods)


@asynccontextmanager
async def connect(
    spec: RemoteSpec, options: ConnectOptions, trace: LoginTrace | None = None
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    resolved = await resolve(spec, options)
    host, port, user = resolved.host, resolved.port, resolved.username
    where = f"{host}:{port}"
    trace = trace if trace is not None else LoginTrace()
    trace.methods = method_order(options, tuple(resolved.preferred_auth or ()))
    host_keys = HostKeyCheck(
        known_hosts_paths(options, resolved), accept_new=options.accept_new_host_key
    )
    keys: list[OfferedKey] = []
    agent: asyncssh.SSHAgentClient | None = None
    if PUBLICKEY in trace.methods:
        keys, agent = await gather_keys(options, resolved)
    trace.keys_held = len(keys)
    trace.identities_named = bool(options.identities)
    if options.auth is None and not options.identities:
        trace.keys_left_out = max(0, len(keys) - options.max_keys)
        keys = keys[: options.max_keys]
    prompt = f"{user}@{host}'s password: " if options.prompt_password else None
    password = PasswordSource(options.password, prompt)
    log.debug("login to %s as %s; methods %s; %d key(s)", where, user, trace.methods, len(keys))
    try:
        conn = await asyncssh.connect(
            spec.host,
            options=resolved,
            known_hosts=host_keys.match,
            client_factory=lambda: LoginClient(host_keys, keys, password, trace),
            client_keys=None,
            agent_path=None,
            preferred_auth=",".join(trace.methods),
            connect_timeout=options.timeout,
            login_timeout=options.timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
            encryption_algs=list(CIPHERS),
        )
    except asyncssh.HostKeyNotVerifiable as e:
        raise host_keys.error(e.reason) from None
    except asyncssh.PermissionDenied:
        allowed = await allowed_methods(resolved)
        raise auth_failure(where, user, trace, allowed, too_many=False) from None
    except asyncssh.DisconnectError as e:
        if "too many authentication failures" in e.reason.lower():
            allowed = await allowed_methods(resolved)
            raise auth_failure(where, user, trace, allowed, too_many=True) from None
        if host_keys.authorities_only and not trace.attempts:
            raise host_keys.no_certificate() from None
        raise ConnectError(f"{where} disconnected: {e.reason}") from None
    except (OSError, TimeoutError) as e:
        if host_keys.authorities_only and not trace.attempts:
            raise host_keys.no_certificate() from None
        raise connect_failure(where, host, e, options.timeout) from None
    except asyncssh.Error as e:
        if host_keys.authorities_only and not trace.attempts:
            raise host_keys.no_certificate() from None
        raise ConnectError(f"{where}: {e.reason}") from None
    finally:
        if agent is not None:
            agent.close()
    _LIVE.add(conn)
    fastpath.log_status()
    if fastpath.enabled("batching"):
        batch_writes(conn)
    if fastpath.enabled("lean"):
        skip_ignore_packets(conn)
        quiet_packet_logs(conn)
    try:
        yield conn
    finally:
        conn.close()
        await conn.wait_closed()


@asynccontextmanager
async def open_session(
    spec: RemoteSpec, options: ConnectOptions, trace: LoginTrace | None = None
) -> AsyncIterator[Session]:
    """Log in and start SFTP: the one door the layers above come through."""
    async with connect(spec, options, trace) as conn, open_sftp(conn) as sftp:
        session = Session(sftp, conn, stall_timeout=options.timeout)
        try:
            yield session
        finally:
            session.close()


@asynccontextmanager
async def open_sftp(conn: asyncssh.SSHClientConnection) -> AsyncIterator[asyncssh.SFTPClient]:
    where = "{}:{}".format(*conn.get_extra_info("peername", ("server", 22))[:2])
    try:
        sftp = await conn.start_sftp_client()
    except (asyncssh.ChannelOpenError, asyncssh.SFTPError, asyncssh.ConnectionLost) as e:
        raise no_sftp(where, e.reason or type(e).__name__) from None
    except asyncssh.Error as e:
        raise ConnectError(f"SFTP session failed: {e.reason}") from None
    if fastpath.enabled("lean"):
        lean_sftp(sftp)
    try:
        yield sftp
    finally:
        sftp.exit()
