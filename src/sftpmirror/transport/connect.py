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
import sys
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncssh

from sftpmirror.errors import ConnectError, HostKeyError, UsageError
from sftpmirror.transport import _fastpath as fastpath
from sftpmirror.transport._fastpath.lean_packets import (
    lean_sftp,
    quiet_packet_logs,
    skip_ignore_packets,
)
from sftpmirror.transport._fastpath.packing import pack_requests
from sftpmirror.transport._fastpath.write_batching import batch_writes
from sftpmirror.transport.auth import PASSWORD_METHODS, PUBLICKEY, ConnectOptions, method_order
from sftpmirror.transport.diagnose import auth_failure, connect_failure, no_sftp
from sftpmirror.transport.hostkeys import FIRST_CONTACT_ALGS, HostKeyCheck, key_type, read_policy
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
# The SSH channel's receive window: what the server may send before we have read it (asyncssh's
# default is 2 MiB). A download gets at most this much per round trip: copying a 40 MiB file at
# 20 ms took 1.05-1.26 s with 2 MiB, 0.38-0.56 s with 8 MiB, no less with 16 MiB (two runs
# each). The server sends only what was asked for (``session.READ_AHEAD`` ahead per file).
WINDOW = 8 << 20
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


def _asks_for_a_password(options: ConnectOptions) -> bool:
    """No password given, no method or key named, and a terminal to ask on."""
    return (
        options.password is None
        and options.prompt_password
        and options.auth is None
        and not options.identities
        and sys.stdin.isatty()
    )


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


HOST_KEY_TYPES = (
    ("ED25519", ("ssh-ed25519",)),
    ("ECDSA", ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")),
    ("RSA", ("rsa-sha2-512", "rsa-sha2-256")),
)


async def other_host_keys(resolved: asyncssh.SSHClientConnectionOptions, shown: str) -> list[str]:
    """The server's host keys of the other types ("RSA SHA256:…"), each asked for on a
    connection of its own (a first contact only; a few hundred milliseconds)."""
    found: list[str] = []
    tunnel: Any = resolved.tunnel or ()
    for name, algs in HOST_KEY_TYPES:
        if name == shown:
            continue
        try:
            async with asyncio.timeout(5):
                key = await asyncssh.get_server_host_key(
                    resolved.host, resolved.port, server_host_key_algs=list(algs), tunnel=tunnel
                )
        except (OSError, TimeoutError, asyncssh.Error, ValueError):
            continue
        if key is not None:
            found.append(f"{name} {key.get_fingerprint('sha256')}")
    return found


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
    # A host known_hosts has no key for gets OpenSSH's order (ED25519 first), so the key shown
    # is the one a control panel lists; a known one, asyncssh's: the known key's type first.
    known = host_keys.keys_for(host, port) or host_keys.authorities
    if not known:  # ssh_config's say on unknown keys matters only then (ssh -G: a process)
        policy = await asyncio.to_thread(
            read_policy, spec.host, spec.port, spec.user, _config_files(options)
        )
        strict = "accept-new" if options.accept_new_host_key else policy.strict
        host_keys.accept_new = strict in ("accept-new", "no")
        host_keys.hash_names = policy.hash_names
        if strict == "no":
            log.warning("StrictHostKeyChecking no: an unknown host key is trusted unchecked")
    host_key_algs: Any = () if known else list(FIRST_CONTACT_ALGS)  # (): asyncssh's choice
    explicit_keys = bool(resolved.config.get("IdentityFile", ()))
    if _asks_for_a_password(options) and PUBLICKEY in trace.methods and not resolved.preferred_auth:
        # On a terminal with no password given: ask the server what it allows before spending
        # its tries on agent keys (the key spray, on the interactive path).
        allowed = await allowed_methods(resolved)
        if allowed is not None and any(m in allowed for m in PASSWORD_METHODS):
            trace.methods = ((PUBLICKEY,) if explicit_keys else ()) + tuple(
                m for m in PASSWORD_METHODS if m in allowed
            )
            trace.asked_first = not explicit_keys
    keys: list[OfferedKey] = []
    agent: asyncssh.SSHAgentClient | None = None
    if PUBLICKEY in trace.methods:
        keys, agent = await gather_keys(options, resolved)
        if trace.methods[-1] != PUBLICKEY and explicit_keys and _asks_for_a_password(options):
            keys = [k for k in keys if k.source != "agent"]  # the keys named for this host
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
            window=WINDOW,
            server_host_key_algs=host_key_algs,
        )
    except asyncssh.HostKeyNotVerifiable as e:
        error = host_keys.error(e.reason)
        if host_keys.offered is not None and not host_keys.known and not host_keys.revoked:
            others = await other_host_keys(resolved, key_type(host_keys.offered))
            if others:  # a control panel may list another type: say every one
                error = HostKeyError(
                    f"{error.message}; the server also has {', '.join(others)}", hint=error.hint
                )
        raise error from None
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
    if host_keys.added:
        trace.notices.append(host_keys.added)
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
    pack_requests(sftp)
    try:
        yield sftp
    finally:
        sftp.exit()
