"""The one mapping of asyncssh's SFTP and connection errors to the Tree error contract.

Everything above ``transport/`` sees only ``engine.tree``'s errors and ``errors.ConnectionLost``;
this is the strict point of cut-off (as httpx's ``map_httpcore_exceptions``). Errors of the
connection itself (login, host key) are translated in ``connect.py`` and ``diagnose.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncssh

from sftpmirror.engine.tree import (
    NoSpace,
    NotFound,
    PermissionDenied,
    ServerFailure,
    TreeError,
    Unsupported,
)
from sftpmirror.errors import ConnectionLost

# Errors that mean the session is gone: they stop a run instead of failing one file. A lost
# SFTP session (the server's subsystem died) is one of them: the run reconnects.
CONNECTION_ERRORS = (
    asyncssh.ConnectionLost,
    asyncssh.DisconnectError,
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    ConnectionError,
    BrokenPipeError,
)


def describe(exc: BaseException) -> str:
    """The server's words, without saying the same thing twice."""
    if isinstance(exc, asyncssh.SFTPError):
        reason = (exc.reason or "").strip()
        for cls, words in (
            (asyncssh.SFTPNoSuchFile, "no such file or directory"),
            (asyncssh.SFTPPermissionDenied, "permission denied"),
        ):
            if isinstance(exc, cls):
                if not reason or reason.lower().rstrip(".") == words:
                    return words
                return f"{words} ({reason})"
        return reason or type(exc).__name__
    if isinstance(exc, asyncssh.Error):
        return exc.reason or type(exc).__name__
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def to_tree_error(exc: BaseException) -> BaseException:
    """The contract's error for an asyncssh (or socket) error; anything else unchanged."""
    if isinstance(exc, TimeoutError):
        return ConnectionLost(f"the server stopped answering: {describe(exc)}")
    if isinstance(exc, CONNECTION_ERRORS) or (
        isinstance(exc, asyncssh.Error | OSError) and not isinstance(exc, asyncssh.SFTPError)
    ):
        return ConnectionLost(f"connection lost: {describe(exc)}")
    if not isinstance(exc, asyncssh.SFTPError):
        return exc
    message = describe(exc)
    match exc:
        case asyncssh.SFTPNoSuchFile() | asyncssh.SFTPNoSuchPath():
            return NotFound(message)
        case asyncssh.SFTPPermissionDenied() | asyncssh.SFTPWriteProtect():
            return PermissionDenied(message)
        case asyncssh.SFTPNoSpaceOnFilesystem() | asyncssh.SFTPQuotaExceeded():
            return NoSpace(message)
        case asyncssh.SFTPOpUnsupported():
            return Unsupported(message)
        case asyncssh.SFTPFailure():
            return ServerFailure(message)
    return TreeError(message)


@contextmanager
def mapped() -> Iterator[None]:
    """Raise the contract's error in place of asyncssh's."""
    try:
        yield
    except (asyncssh.Error, OSError) as e:
        raise to_tree_error(e) from None


def reraise(result: object) -> None:
    """For ``gather(..., return_exceptions=True)``: raise a result that is an error, mapped."""
    if isinstance(result, BaseException):
        raise to_tree_error(result)
