"""Credentials and which authentication methods to offer (DESIGN §5).

The rule that fixes the seed's story: a password given → offer only ``password`` and
``keyboard-interactive`` and no key at all, so an agent full of keys cannot use up the server's
``MaxAuthTries`` before the password is tried. A key named → that key only (IdentitiesOnly).
Neither → what ssh_config and the agent provide, with a prompt for the password on a terminal.
A password is asked for, and sent, at most once per connection.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

PASSWORD_ENV = "SFTPMIRROR_PASSWORD"


class Secret:
    """A password that does not show itself in reprs, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def read_password_file(path: Path) -> Secret:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read password file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"password file {path} is not UTF-8 text") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"password file {path} is empty")
    return Secret(value)


def password_from_env(environ: dict[str, str] | None = None) -> Secret | None:
    value = (os.environ if environ is None else environ).get(PASSWORD_ENV)
    return Secret(value) if value else None


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    password: Secret | None = None
    prompt_password: bool = False
    identities: tuple[Path, ...] = ()
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    ssh_config: Path | None = None
    timeout: float = 30.0

    @property
    def known_hosts_path(self) -> Path:
        return self.known_hosts or Path("~/.ssh/known_hosts").expanduser()


def auth_kwargs(options: ConnectOptions, prompt: str) -> dict[str, Any]:
    """The asyncssh.connect() keyword arguments that choose what is offered, in what order."""
    kwargs: dict[str, Any] = {}
    password = _password_callback(options, prompt)
    if password is not None:
        kwargs["password"] = password
    if options.identities:
        kwargs["client_keys"] = [str(p) for p in options.identities]
        kwargs["agent_path"] = None
        kwargs["preferred_auth"] = "publickey" + (
            ",password,keyboard-interactive" if password is not None else ""
        )
    elif options.password is not None:
        kwargs["client_keys"] = None
        kwargs["agent_path"] = None
        kwargs["preferred_auth"] = "password,keyboard-interactive"
    return kwargs


def _password_callback(
    options: ConnectOptions, prompt: str
) -> Callable[[], str] | Callable[[], Awaitable[str]] | None:
    secret = options.password
    if secret is not None:
        return secret.reveal
    if options.prompt_password and sys.stdin.isatty():

        async def ask() -> str:
            return await asyncio.to_thread(getpass.getpass, prompt)

        return ask
    return None
