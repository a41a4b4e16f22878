"""Turn a failed connection or login into a diagnosis: what happened, and the fix on both sides.

The seed's lesson: "Too many authentication failures" alone took ``lftp -d``, ``ssh -v`` and
guesswork. Here a failed login says what the server allows (asked with the ``none`` method),
what we offered in order (key sources and fingerprints, never secrets), and what to change on
this side and on the server.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from sftpmirror.errors import AuthError, ConnectError, RemoteError
from sftpmirror.transport.auth import KBDINT, PASSWORD, PASSWORD_METHODS, PUBLICKEY
from sftpmirror.transport.login import LoginTrace

CLIENT_PASSWORD_FIX = (
    "give the password (--password-file FILE or SFTPMIRROR_PASSWORD): then only the password "
    "is offered, no keys; or --auth password"
)
SERVER_KEYS_IN_CHROOT_FIX = (
    "a chrooted account cannot read ~/.ssh inside its chroot: keep its keys outside, e.g. "
    "'AuthorizedKeysFile /etc/ssh/authorized_keys/%u' (root-owned, mode 644)"
)


def auth_failure(
    where: str,
    user: str,
    trace: LoginTrace,
    allowed: Sequence[str] | None,
    *,
    too_many: bool,
) -> AuthError:
    """The error for a refused login, with the evidence and the fixes as detail lines."""
    details = [
        "server allows: "
        + (", ".join(allowed) if allowed else "(could not ask)")
        + "  (asked with the 'none' method)",
        "we offered, in order:",
    ]
    if trace.attempts:
        for n, attempt in enumerate(trace.attempts, 1):
            extra = f"  {attempt.detail}" if attempt.detail else ""
            details.append(f"  {n}. {attempt.method}{extra}  → refused")
    else:
        details.append("  nothing: " + _why_nothing(trace, allowed))
    if trace.keys_left_out:
        more = "" if too_many else "; --max-keys N offers more, if the right one is among them"
        details.append(
            f"  ({trace.keys_left_out} more key(s) left out, to stay under the server's "
            f"MaxAuthTries{more})"
        )
    client, server = _fixes(user, trace, allowed, too_many)
    details += [f"fix here: {line}" for line in client]
    details += [f"fix on the server: {line}" for line in server]
    if too_many:
        message = (
            f"login to {user}@{where} failed: the server disconnected with 'Too many "
            f"authentication failures' after {len(trace.attempts)} attempt(s) (its MaxAuthTries)"
        )
    else:
        message = f"login to {user}@{where} failed: permission denied"
    return AuthError(message, details=tuple(details))


def _why_nothing(trace: LoginTrace, allowed: Sequence[str] | None) -> str:
    usable = [m for m in trace.methods if allowed is None or m in allowed]
    if not usable:
        return f"none of our methods ({', '.join(trace.methods)}) is allowed by the server"
    if PUBLICKEY in usable and not trace.keys_held:
        return "no key (no --identity, no agent key, no IdentityFile) and no password"
    return "no password was given and there is no terminal to ask for one"


def _fixes(
    user: str, trace: LoginTrace, allowed: Sequence[str] | None, too_many: bool
) -> tuple[list[str], list[str]]:
    allows = set(allowed or ())
    password_ok = bool(allows & set(PASSWORD_METHODS)) or allowed is None
    keys_offered = trace.offered(PUBLICKEY)
    password_offered = trace.offered(PASSWORD) or trace.offered(KBDINT)
    client: list[str] = []
    server: list[str] = []
    if password_offered and password_ok:
        tries = sum(1 for a in trace.attempts if a.method in PASSWORD_METHODS)
        sent = "sent once" if tries <= 1 else f"tried {tries} times"
        client.append(f"check the user name ({user}) and the password; it was {sent}")
        server.append(
            f"the sshd log says why (journalctl -u ssh, /var/log/auth.log): a locked account "
            f"(passwd -S {user}), AllowUsers/DenyUsers, or PAM"
        )
    if keys_offered and not password_offered and password_ok:
        client.append(CLIENT_PASSWORD_FIX)
        if not trace.identities_named:
            client.append(
                "or name the one right key: --identity FILE, or 'IdentitiesOnly yes' with "
                "'IdentityFile' in ~/.ssh/config"
            )
    if not password_offered and password_ok and not keys_offered:
        client.append(CLIENT_PASSWORD_FIX)
    if allowed is not None and not allows & set(PASSWORD_METHODS) and not keys_offered:
        client.append("the server takes keys only: --identity FILE")
    if keys_offered and (PUBLICKEY in allows or allowed is None):
        server.append(
            "to log in with a key, its public half must be in the account's authorized_keys; "
            + SERVER_KEYS_IN_CHROOT_FIX
        )
    if too_many or (keys_offered and password_ok):
        server.append(
            f"for a password-only account say so, so clients offer no keys: 'Match User {user}' "
            "then 'AuthenticationMethods password' (or 'PubkeyAuthentication no')"
        )
    if too_many:
        server.append("or raise 'MaxAuthTries' (default 6) above the keys a client's agent holds")
    return client, server


def connect_failure(where: str, host: str, error: BaseException, timeout: float) -> ConnectError:
    if isinstance(error, socket.gaierror):
        return ConnectError(
            f"cannot resolve host {host!r}",
            details=("fix here: check the host name, or HostName in ~/.ssh/config",),
        )
    if isinstance(error, ConnectionRefusedError):
        return ConnectError(
            f"cannot connect to {where}: connection refused (nothing listens there)",
            details=(
                "fix here: check the port (sftp://host:PORT/… or Port in ~/.ssh/config)",
                "fix on the server: is sshd running and listening on that address "
                "(ListenAddress, Port)? is a firewall rejecting it?",
            ),
        )
    if isinstance(error, TimeoutError):
        return ConnectError(
            f"cannot connect to {where}: no answer within {timeout:.0f}s",
            details=(
                "fix here: check the address, your network or VPN; --timeout to wait longer",
                "fix on the server: a firewall may be dropping the connection",
            ),
        )
    reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
    return ConnectError(f"cannot connect to {where}: {reason}")


def no_sftp(where: str, reason: str) -> RemoteError:
    return RemoteError(
        f"{where} accepted the login but gave no SFTP session ({reason})",
        details=(
            "fix on the server: with OpenSSH, a ChrootDirectory any of whose path components is "
            "not root-owned or is group/world-writable ends the session right after login "
            "(the sshd log says 'bad ownership or modes for chroot directory')",
            "fix on the server: the account needs 'Subsystem sftp internal-sftp' or "
            "'ForceCommand internal-sftp'",
        ),
    )


__all__ = ["auth_failure", "connect_failure", "no_sftp"]
