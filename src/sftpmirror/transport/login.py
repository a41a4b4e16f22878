"""The login conversation: which keys we hold, the asyncssh client that offers them one at a
time, and a trace of every attempt (to explain a failure, and for ``--debug``, like ``ssh -v``).

asyncssh's own key and password handling is switched off (``client_keys=None``,
``agent_path=None``, no ``password=``): it would offer every agent key it finds. Instead
``LoginClient`` answers asyncssh's callbacks from a list we chose and capped.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import asyncssh
from asyncssh.public_key import decode_ssh_public_key

from sftpmirror.errors import UsageError
from sftpmirror.transport.auth import KBDINT, PASSWORD, PUBLICKEY, ConnectOptions, Secret
from sftpmirror.transport.hostkeys import HostKeyCheck

log = logging.getLogger("sftpmirror.login")


@dataclass(frozen=True, slots=True)
class OfferedKey:
    pair: asyncssh.SSHKeyPair
    source: str  # "agent", or the key file

    def describe(self) -> str:
        comment = self.pair.get_comment() or ""
        algorithm = self.pair.algorithm.decode("ascii", "replace")
        where = "agent key" if self.source == "agent" else f"key file {self.source}"
        label = f' "{comment}"' if comment and comment != self.source else ""
        return f"{where}{label} {algorithm} {fingerprint(self.pair)}"


def fingerprint(pair: asyncssh.SSHKeyPair) -> str:
    try:
        return decode_ssh_public_key(pair.key_public_data).get_fingerprint("sha256")
    except (asyncssh.KeyImportError, ValueError):
        return "(fingerprint unknown)"


@dataclass(slots=True)
class Attempt:
    method: str
    detail: str = ""


@dataclass(slots=True)
class LoginTrace:
    """What happened during the login, in order; no secrets in it."""

    methods: tuple[str, ...] = ()
    keys_held: int = 0
    keys_left_out: int = 0
    attempts: list[Attempt] = field(default_factory=list)
    succeeded: bool = False
    identities_named: bool = False
    notices: list[str] = field(default_factory=list)  # said once the login is done
    asked_first: bool = False  # the password was asked for before any key (a terminal)

    def add(self, method: str, detail: str = "") -> None:
        self.attempts.append(Attempt(method, detail))
        log.debug("offering %s%s", method, f": {detail}" if detail else "")

    def offered(self, method: str) -> bool:
        return any(a.method == method for a in self.attempts)


class PasswordSource:
    """The password: a Secret, handed out once (a wrong one will not become right), or asked on
    the terminal, up to ``PROMPTS`` times (OpenSSH's NumberOfPasswordPrompts) while the server
    lets us try again."""

    PROMPTS = 3

    def __init__(self, secret: Secret | None, prompt: str | None) -> None:
        self._secret = secret
        self._prompt = prompt if secret is None and sys.stdin.isatty() else None
        self.taken = 0

    @property
    def used(self) -> bool:
        return self.taken > 0

    @property
    def available(self) -> bool:
        if self._secret is not None:
            return self.taken == 0
        return self._prompt is not None and self.taken < self.PROMPTS

    async def take(self) -> str | None:
        if not self.available:
            return None
        if self._secret is not None:
            self.taken += 1
            return self._secret.reveal()
        assert self._prompt is not None
        if self.taken:
            print("Permission denied, please try again.", file=sys.stderr)
        self.taken += 1
        return await asyncio.to_thread(getpass.getpass, self._prompt)


class LoginClient(asyncssh.SSHClient):
    def __init__(
        self,
        host_keys: HostKeyCheck,
        keys: Sequence[OfferedKey],
        password: PasswordSource,
        trace: LoginTrace,
    ) -> None:
        self._host_keys = host_keys
        self._keys = list(keys)
        self._password = password
        self._trace = trace

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        return self._host_keys.validate(host, addr, port, key)

    def public_key_auth_requested(self) -> asyncssh.SSHKeyPair | None:
        if not self._keys:
            return None
        key = self._keys.pop(0)
        self._trace.add(PUBLICKEY, key.describe())
        return key.pair

    async def password_auth_requested(self) -> str | None:
        if not self._password.available:
            return None
        self._trace.add(PASSWORD)
        return await self._password.take()

    def kbdint_auth_requested(self) -> str | None:
        return "" if self._password.available else None

    async def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        if not prompts:
            return []  # an informational round (PAM messages)
        if len(prompts) == 1 and not prompts[0][1] and self._password.available:
            self._trace.add(KBDINT, f"answering the prompt {prompts[0][0].strip()!r}")
            password = await self._password.take()
            return [password] if password is not None else None
        log.debug("keyboard-interactive: cannot answer %d prompt(s)", len(prompts))
        return None

    def auth_completed(self) -> None:
        self._trace.succeeded = True
        log.debug("logged in")


async def gather_keys(
    options: ConnectOptions, resolved: asyncssh.SSHClientConnectionOptions
) -> tuple[list[OfferedKey], asyncssh.SSHAgentClient | None]:
    """Keys to offer: ``--identity`` files, else the agent's then ssh_config's, deduplicated.

    The agent connection is returned so the caller can close it after the login.
    """
    if options.identities:
        return [_load_identity(path) for path in options.identities], None
    keys: list[OfferedKey] = []
    agent: asyncssh.SSHAgentClient | None = None
    if resolved.agent_path:
        agent = asyncssh.SSHAgentClient(resolved.agent_path)
        try:
            identities = resolved.agent_identities or None
            agent_keys = await agent.get_keys(identities)
        except (OSError, asyncssh.Error, ValueError) as e:
            log.debug("ssh-agent at %s not usable: %s", resolved.agent_path, e)
            agent_keys = []
        keys += [OfferedKey(pair, "agent") for pair in agent_keys]
    keys += _key_files(resolved)
    seen: set[bytes] = set()
    unique = []
    for key in keys:
        if key.pair.public_data not in seen:
            seen.add(key.pair.public_data)
            unique.append(key)
    return unique, agent


DEFAULT_KEY_FILES = ("id_ed25519_sk", "id_ecdsa_sk", "id_ed448", "id_ed25519", "id_ecdsa", "id_rsa")


def _key_files(resolved: asyncssh.SSHClientConnectionOptions) -> list[OfferedKey]:
    """ssh_config's IdentityFile keys (else the default ~/.ssh/id_* ones), named by file.

    Encrypted keys are skipped, as ssh does without a terminal; load them into the agent.
    """
    if resolved.client_keys is None:
        return []
    configured = cast(Sequence[object], resolved.config.get("IdentityFile", ()))
    paths = (
        [Path(str(p)).expanduser() for p in configured]
        if configured
        else [Path("~/.ssh", name).expanduser() for name in DEFAULT_KEY_FILES]
    )
    keys = []
    for path in paths:
        try:
            pairs = asyncssh.load_keypairs([str(path)], ignore_encrypted=True)
        except (OSError, asyncssh.KeyImportError, ValueError) as e:
            log.debug("key file %s not used: %s", path, e)
            continue
        keys += [OfferedKey(pair, str(path)) for pair in pairs]
    return keys


def _load_identity(path: Path) -> OfferedKey:
    try:
        pairs = asyncssh.load_keypairs([str(path)])
    except asyncssh.KeyEncryptionError:
        raise UsageError(
            f"{path} is encrypted; add it to ssh-agent (ssh-add {path}) and name it with "
            "IdentityFile in ~/.ssh/config, or use a key without a passphrase for deploys"
        ) from None
    except (OSError, asyncssh.KeyImportError, ValueError) as e:
        raise UsageError(f"cannot load key {path}: {e}") from None
    return OfferedKey(pairs[0], str(path))
