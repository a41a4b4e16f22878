"""Credentials and which authentication methods to offer, in what order.

The rule against the key spray ("Too many authentication failures"): a password given → offer
only ``password`` and ``keyboard-interactive`` and no key at all, so an agent full of keys
cannot use up the server's ``MaxAuthTries`` before the password is tried. A key named → that
key only (IdentitiesOnly). Neither → on a terminal, the password is asked first when the server
allows one (keys named by ssh_config's IdentityFile before it); elsewhere keys from ssh_config
and the agent, at most ``max_keys`` of them (one less than OpenSSH's default ``MaxAuthTries`` of
6). ``--auth`` overrides the order. A given password is sent once; a typed one is asked up to
three times (OpenSSH's NumberOfPasswordPrompts).
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sftpmirror.defaults import DEFAULT_TIMEOUT
from sftpmirror.errors import UsageError
from sftpmirror.methods import (
    DEFAULT_MAX_KEYS,
    KBDINT,
    METHODS,
    PASSWORD,
    PASSWORD_METHODS,
    PUBLICKEY,
)

__all__ = [
    "DEFAULT_MAX_KEYS",
    "KBDINT",
    "METHODS",
    "PASSWORD",
    "PASSWORD_METHODS",
    "PUBLICKEY",
]

PASSWORD_ENV = "SFTPMIRROR_PASSWORD"
SSHPASS_ENV = "SSHPASS"  # what sshpass -e reads: honoured when PASSWORD_ENV is not set
_ALIASES = {"kbdint": KBDINT, "keyboard": KBDINT, "pubkey": PUBLICKEY, "key": PUBLICKEY}


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
    """The file's text without its final newline; refused when others may read it (as ssh
    refuses a private key that is group or world readable)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read password file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"password file {path} is not UTF-8 text") from None
    if mode & 0o077:
        raise UsageError(
            f"password file {path} is open to group or others (mode {mode:03o}); "
            f"run: chmod 600 {path}"
        )
    return _one_password(text, f"password file {path}")


def password_from_command(command: str) -> Secret:
    """Run ``command`` with the shell; its output is the password (like git's askpass).

    Its stderr and stdin stay the terminal's, so a command that asks (gpg, pass) can. Its
    output never appears in a message, and neither does the command's on failure.
    """
    try:
        done = subprocess.run(
            command, shell=True, stdout=subprocess.PIPE, check=False, encoding="utf-8"
        )
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"password command {command!r} failed: {e}") from None
    if done.returncode != 0:
        raise UsageError(f"password command {command!r} exited with status {done.returncode}")
    return _one_password(done.stdout, f"password command {command!r}")


def _one_password(text: str, origin: str) -> Secret:
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise UsageError(f"{origin} gave an empty password")
    return Secret(value)


def password_from_env(
    environ: dict[str, str] | None = None, name: str | None = None
) -> Secret | None:
    """``$name`` when named (it must then be set), else $SFTPMIRROR_PASSWORD, else $SSHPASS."""
    env = os.environ if environ is None else environ
    if name is not None:
        if not env.get(name):
            raise UsageError(f"environment variable {name} (the password) is not set")
        return Secret(env[name])
    value = env.get(PASSWORD_ENV) or env.get(SSHPASS_ENV)
    return Secret(value) if value else None


def parse_auth_methods(text: str) -> tuple[str, ...]:
    """``--auth password,publickey`` → ("password", "publickey"); unknown names are refused."""
    methods: list[str] = []
    for raw in text.split(","):
        name = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name not in METHODS:
            raise UsageError(
                f"unknown authentication method {raw.strip()!r} (use {', '.join(METHODS)})"
            )
        if name not in methods:
            methods.append(name)
    if not methods:
        raise UsageError("--auth needs at least one method")
    return tuple(methods)


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    password: Secret | None = None
    prompt_password: bool = False
    identities: tuple[Path, ...] = ()
    auth: tuple[str, ...] | None = None
    max_keys: int = DEFAULT_MAX_KEYS
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    ssh_config: Path | None = None
    timeout: float = DEFAULT_TIMEOUT


def method_order(
    options: ConnectOptions, config_preferred: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """The methods to try, in order (``config_preferred``: ssh_config PreferredAuthentications)."""
    if options.auth is not None:
        return options.auth
    if options.identities:
        return (PUBLICKEY, *PASSWORD_METHODS) if options.password else (PUBLICKEY,)
    if options.password is not None:
        return PASSWORD_METHODS
    preferred = tuple(m for m in config_preferred if m in METHODS)
    return preferred or METHODS
