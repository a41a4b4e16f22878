"""Secret, password sources, and which authentication methods are offered in what order."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.errors import ExitStatus, UsageError
from sftpmirror.transport.auth import (
    PASSWORD_ENV,
    SSHPASS_ENV,
    ConnectOptions,
    Secret,
    method_order,
    parse_auth_methods,
    password_from_command,
    password_from_env,
    read_password_file,
)
from sftpmirror.transport.login import PasswordSource

VALUE = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    "show",
    [
        pytest.param(repr, id="repr"),
        pytest.param(str, id="str"),
        pytest.param(lambda s: f"{s}", id="f-string"),
        pytest.param(lambda s: f"{s!r}", id="f-string-r"),
        pytest.param(lambda s: "%s %r" % (s, s), id="percent"),  # noqa: UP031
        pytest.param(lambda s: repr([s, {"k": s}]), id="in-container"),
        pytest.param(lambda s: repr(ConnectOptions(password=s)), id="in-options"),
        pytest.param(lambda s: str(ValueError(s)), id="in-exception"),
    ],
)
def test_secret_never_shows_its_value(show: Any) -> None:
    text = show(Secret(VALUE))
    assert isinstance(text, str)
    assert VALUE not in text
    assert "*" in text


def test_secret_not_in_log_record(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sftpmirror.test"):
        logging.getLogger("sftpmirror.test").info("password %s", Secret(VALUE))
    assert caplog.records
    assert VALUE not in caplog.text


def test_secret_reveal_and_no_dict() -> None:
    secret = Secret(VALUE)
    assert secret.reveal() == VALUE
    assert not hasattr(secret, "__dict__")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("pw\n", "pw", id="newline"),
        pytest.param("pw\r\n", "pw", id="crlf"),
        pytest.param("pw", "pw", id="no-newline"),
        pytest.param("two words\n", "two words", id="inner-space"),
        pytest.param("  padded  \n", "  padded  ", id="outer-spaces-kept"),
        pytest.param("\ttab\t\n", "\ttab\t", id="tabs-kept"),
        pytest.param("pässwörd\n", "pässwörd", id="utf-8"),
    ],
)
def test_read_password_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "pw"
    path.write_bytes(content.encode("utf-8"))
    path.chmod(0o600)
    assert read_password_file(path).reveal() == expected


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param("", "empty", id="empty"),
        pytest.param("\n", "empty", id="only-newline"),
    ],
)
def test_read_password_file_errors(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_text(content, encoding="utf-8")
        path.chmod(0o600)
    with pytest.raises(UsageError) as info:
        read_password_file(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE


def test_read_password_file_directory_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        read_password_file(tmp_path)


def test_read_password_file_not_utf8_is_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_bytes("pässwörd\n".encode("latin-1"))
    path.chmod(0o600)
    with pytest.raises(UsageError):
        read_password_file(path)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({PASSWORD_ENV: "x"}, "x", id="set"),
        pytest.param({PASSWORD_ENV: " a b "}, " a b ", id="spaces-kept"),
        pytest.param({PASSWORD_ENV: ""}, None, id="empty"),
        pytest.param({}, None, id="unset"),
        pytest.param({"OTHER": "x"}, None, id="other-variable"),
    ],
)
def test_password_from_env(environ: dict[str, str], expected: str | None) -> None:
    secret = password_from_env(environ)
    assert (secret.reveal() if secret else None) == expected


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_password_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "pw"
    path.write_text("hunter2-secret\n", encoding="utf-8")
    path.chmod(mode)
    with pytest.raises(UsageError) as info:
        read_password_file(path)
    assert f"mode {mode:03o}" in str(info.value)
    assert f"chmod 600 {path}" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_password_file_mode_400_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text("pw400\n", encoding="utf-8")
    path.chmod(0o400)
    assert read_password_file(path).reveal() == "pw400"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({SSHPASS_ENV: "from-sshpass"}, "from-sshpass", id="sshpass"),
        pytest.param({SSHPASS_ENV: "s", PASSWORD_ENV: "ours"}, "ours", id="ours-first"),
        pytest.param({SSHPASS_ENV: "", PASSWORD_ENV: ""}, None, id="both-empty"),
    ],
)
def test_sshpass_is_honoured(environ: dict[str, str], expected: str | None) -> None:
    secret = password_from_env(environ)
    assert (secret.reveal() if secret else None) == expected


def test_named_password_variable() -> None:
    environ = {"PROD_PW": "prod-secret", PASSWORD_ENV: "other"}
    secret = password_from_env(environ, name="PROD_PW")
    assert secret is not None
    assert secret.reveal() == "prod-secret"
    with pytest.raises(UsageError, match=r"MISSING_PW .* is not set"):
        password_from_env(environ, name="MISSING_PW")


def test_password_command_output_is_the_password() -> None:
    assert password_from_command("printf 'cmd secret\\n'").reveal() == "cmd secret"


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        pytest.param("echo $((6*7))-secret; exit 3", "exited with status 3", id="fails"),
        pytest.param("true", "empty password", id="empty"),
    ],
)
def test_password_command_errors_hide_output(command: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        password_from_command(command)
    assert needle in str(info.value)
    assert "42-secret" not in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE


def test_password_env_name() -> None:
    assert PASSWORD_ENV == "SFTPMIRROR_PASSWORD"


def test_password_from_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "from-os")
    secret = password_from_env()
    assert secret is not None
    assert secret.reveal() == "from-os"
    monkeypatch.delenv(PASSWORD_ENV)
    assert password_from_env() is None


@pytest.mark.parametrize(
    ("options", "config", "expected"),
    [
        pytest.param(
            ConnectOptions(password=Secret(VALUE)),
            (),
            ("password", "keyboard-interactive"),
            id="password-no-keys",
        ),
        pytest.param(
            ConnectOptions(identities=(Path("k"),)), (), ("publickey",), id="identity-only"
        ),
        pytest.param(
            ConnectOptions(identities=(Path("k"),), password=Secret(VALUE)),
            (),
            ("publickey", "password", "keyboard-interactive"),
            id="identity-then-password",
        ),
        pytest.param(
            ConnectOptions(), (), ("publickey", "keyboard-interactive", "password"), id="neither"
        ),
        pytest.param(
            ConnectOptions(),
            ("password", "gssapi-with-mic", "publickey"),
            ("password", "publickey"),
            id="ssh-config-preferred",
        ),
        pytest.param(
            ConnectOptions(password=Secret(VALUE), auth=("publickey", "password")),
            ("password",),
            ("publickey", "password"),
            id="explicit-auth-wins",
        ),
    ],
)
def test_method_order(
    options: ConnectOptions, config: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert method_order(options, config) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password", ("password",)),
        ("publickey,password", ("publickey", "password")),
        (" kbdint , Password,password", ("keyboard-interactive", "password")),
        ("key", ("publickey",)),
    ],
)
def test_parse_auth_methods(text: str, expected: tuple[str, ...]) -> None:
    assert parse_auth_methods(text) == expected


@pytest.mark.parametrize("text", ["", "hostbased", "password,telepathy"])
def test_parse_auth_methods_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_auth_methods(text)


def test_password_source_gives_the_password_once() -> None:
    source = PasswordSource(Secret(VALUE), prompt=None)
    assert source.available
    assert asyncio.run(source.take()) == VALUE
    assert not source.available
    assert asyncio.run(source.take()) is None


def test_password_source_no_prompt_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO())
    source = PasswordSource(None, prompt="Password: ")
    assert not source.available
    assert asyncio.run(source.take()) is None


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_password_source_prompts_up_to_three_times_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OpenSSH's NumberOfPasswordPrompts: a mistyped password is asked again, three in all."""
    prompts: list[str] = []

    def fake_getpass(prompt: str = "Password: ", stream: object = None) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("sys.stdin", _Tty())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    source = PasswordSource(None, prompt="u@h's password: ")
    for _ in range(3):
        assert asyncio.run(source.take()) == "typed"
    assert asyncio.run(source.take()) is None
    assert prompts == ["u@h's password: "] * 3
    given = PasswordSource(Secret("pw"), prompt="u@h's password: ")
    assert asyncio.run(given.take()) == "pw"
    assert asyncio.run(given.take()) is None  # a given password is sent once
