"""The error tree and its exit statuses (DESIGN §6)."""

from __future__ import annotations

import asyncssh
import pytest

from sftpmirror.engine.tree import (
    NoSpace,
    NotFound,
    PermissionDenied,
    ServerFailure,
    Unsupported,
)
from sftpmirror.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    ExitStatus,
    HostKeyError,
    Interrupted,
    RemoteError,
    SafetyError,
    SftpMirrorError,
    UsageError,
)
from sftpmirror.transport.errors import describe, to_tree_error


@pytest.mark.parametrize(
    ("cls", "status", "parent"),
    [
        pytest.param(SftpMirrorError, 1, Exception, id="base"),
        pytest.param(UsageError, 2, SftpMirrorError, id="usage"),
        pytest.param(ConnectError, 3, SftpMirrorError, id="connect"),
        pytest.param(HostKeyError, 3, ConnectError, id="host-key"),
        pytest.param(AuthError, 4, SftpMirrorError, id="auth"),
        pytest.param(RemoteError, 5, SftpMirrorError, id="remote"),
        pytest.param(SafetyError, 6, SftpMirrorError, id="safety"),
        pytest.param(Interrupted, 130, SftpMirrorError, id="interrupted"),
    ],
)
def test_exit_status(cls: type[SftpMirrorError], status: int, parent: type[Exception]) -> None:
    assert cls.exit_status == status
    assert issubclass(cls, parent)
    error = cls("boom", hint="try this")
    assert error.exit_status == status
    assert isinstance(error, SftpMirrorError)
    assert str(error) == "boom"
    assert error.message == "boom"
    assert error.hint == "try this"


@pytest.mark.parametrize(
    ("member", "value"),
    [
        pytest.param(ExitStatus.OK, 0, id="ok"),
        pytest.param(ExitStatus.FAILED_ITEMS, 1, id="failed-items"),
        pytest.param(ExitStatus.USAGE, 2, id="usage"),
        pytest.param(ExitStatus.CONNECTION, 3, id="connection"),
        pytest.param(ExitStatus.AUTH, 4, id="auth"),
        pytest.param(ExitStatus.REMOTE, 5, id="remote"),
        pytest.param(ExitStatus.SAFETY, 6, id="safety"),
        pytest.param(ExitStatus.INTERRUPTED, 130, id="interrupted"),
    ],
)
def test_exit_status_values(member: ExitStatus, value: int) -> None:
    assert member == value
    assert int(member) == value


def test_host_key_error_is_caught_as_connect_error() -> None:
    with pytest.raises(ConnectError) as info:
        raise HostKeyError("changed host key")
    assert info.value.exit_status == ExitStatus.CONNECTION


def test_hint_defaults_to_none() -> None:
    assert UsageError("x").hint is None


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (asyncssh.SFTPPermissionDenied("Permission denied"), "permission denied"),
        (asyncssh.SFTPPermissionDenied("quota reached"), "permission denied (quota reached)"),
        (asyncssh.SFTPNoSuchFile("No such file"), "no such file or directory (No such file)"),
        (asyncssh.SFTPNoSuchFile(""), "no such file or directory"),
        (asyncssh.SFTPFailure("Failure"), "Failure"),
    ],
)
def test_the_servers_words_are_said_once(error: asyncssh.SFTPError, said: str) -> None:
    """It printed "permission denied (Permission denied)"."""
    assert describe(error) == said


def test_asyncssh_errors_become_the_tree_contracts() -> None:
    assert isinstance(to_tree_error(asyncssh.SFTPNoSuchFile("x")), NotFound)
    assert isinstance(to_tree_error(asyncssh.SFTPPermissionDenied("x")), PermissionDenied)
    assert isinstance(to_tree_error(asyncssh.SFTPNoSpaceOnFilesystem("x")), NoSpace)
    assert isinstance(to_tree_error(asyncssh.SFTPOpUnsupported("x")), Unsupported)
    assert isinstance(to_tree_error(asyncssh.SFTPFailure("x")), ServerFailure)
    assert isinstance(to_tree_error(asyncssh.SFTPConnectionLost("x")), ConnectionLost)
    assert isinstance(to_tree_error(ConnectionResetError()), ConnectionLost)
    stalled = to_tree_error(TimeoutError())
    assert isinstance(stalled, ConnectionLost)
    assert "stopped answering" in str(stalled)
