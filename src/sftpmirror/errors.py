"""Errors and exit codes: one small tree, the exit code on the class, mapped in one place.

    SftpMirrorError                 exit 1   (base; never raised bare)
    ├── UsageError                  exit 2   bad arguments, URL, local directory, config
    ├── ConnectError                exit 3   TCP, SSH transport, lost connection
    │   ├── HostKeyError            exit 3   unknown or changed host key
    │   └── ConnectionLost          exit 3   lost after the login (the run reconnects first)
    ├── AuthError                   exit 4   login refused
    ├── RemoteError                 exit 5   the server refused an SFTP operation we cannot skip
    ├── SafetyError                 exit 6   refused because it could lose data
    ├── LockError                   exit 7   another deploy holds the destination's lock
    ├── Interrupted                 exit 130 Ctrl-C or SIGTERM (the CLI's; the library raises
    │                                        KeyboardInterrupt)
    └── InternalError               exit 70  anything else (out of memory, a bug): still one
                                             line, and the JSON object

``message`` is the one line the CLI prints; ``details`` (evidence, fixes) and ``hint`` follow it.
Per-file failures are not exceptions that escape: execute() records them in the Report and the
run exits with ``ExitStatus.FAILED_ITEMS`` (1). asyncssh's exceptions are translated into these
only at the SSH/SFTP boundary (``remote.py`` and ``ssh.py``). Messages never contain passwords.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sftpmirror.engine.model import Plan, Report


class ExitStatus(IntEnum):
    OK = 0
    FAILED_ITEMS = 1
    USAGE = 2
    CONNECTION = 3
    AUTH = 4
    REMOTE = 5
    SAFETY = 6
    LOCKED = 7
    INTERNAL = 70  # EX_SOFTWARE (sysexits.h)
    INTERRUPTED = 130


class SftpMirrorError(Exception):
    """Base of every error sftpmirror reports to the user. ``done`` is what the run had done
    when the error stopped it (when it was copying), so the summary tells the truth."""

    exit_status = ExitStatus.FAILED_ITEMS
    done: Report | None = None

    def __init__(
        self, message: str, *, hint: str | None = None, details: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message


class UsageError(SftpMirrorError):
    """Bad command-line input, URL, or local directory."""

    exit_status = ExitStatus.USAGE


class ConnectError(SftpMirrorError):
    """The SSH connection could not be made or was lost."""

    exit_status = ExitStatus.CONNECTION


class HostKeyError(ConnectError):
    """The server's host key is unknown or differs from the one in known_hosts."""


class ConnectionLost(ConnectError):
    """The connection dropped after the login; ``done`` is what the run had done by then (when
    it was copying)."""

    def __init__(self, message: str, *, done: Report | None = None) -> None:
        super().__init__(message)
        if done is not None:
            self.done = done


class AuthError(SftpMirrorError):
    """The server refused every authentication we offered."""

    exit_status = ExitStatus.AUTH


class RemoteError(SftpMirrorError):
    """The server refused an SFTP operation the run cannot do without."""

    exit_status = ExitStatus.REMOTE


class SafetyError(SftpMirrorError):
    """Refused because going on could lose data. ``plan``: in a dry run, what the refused run
    would have done (the CLI prints it)."""

    exit_status = ExitStatus.SAFETY
    plan: Plan | None = None


class LockError(SftpMirrorError):
    """Another deploy holds the destination's lock (or took it over from this run)."""

    exit_status = ExitStatus.LOCKED


class Interrupted(SftpMirrorError):
    """Stopped by Ctrl-C or SIGTERM: what was done stays, nothing is left half-written."""

    exit_status = ExitStatus.INTERRUPTED


class InternalError(SftpMirrorError):
    """Something no other error names: out of memory, or a bug in sftpmirror."""

    exit_status = ExitStatus.INTERNAL

    @classmethod
    def of(cls, exc: BaseException) -> InternalError:
        what = "out of memory" if isinstance(exc, MemoryError) else type(exc).__name__
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return cls(
            f"unexpected error: {what}" + (f": {detail}" if detail else ""),
            hint="nothing was deleted; --debug shows the trace (please report it)",
        )
