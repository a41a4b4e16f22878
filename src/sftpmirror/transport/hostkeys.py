"""Strict host key checking against a known_hosts file, with the evidence kept for the message.

asyncssh asks ``match`` for the keys trusted for a host, and ``validate`` about a key that is
not among them. An unknown host is refused unless ``accept_new`` (then the key is appended to the
file, like OpenSSH's ``StrictHostKeyChecking accept-new``); a host whose key differs from the
one on record is always refused, and the message shows both fingerprints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncssh

from sftpmirror.errors import HostKeyError


def host_pattern(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if port and port != 22 else host


class HostKeyCheck:
    """Checks against ``paths`` (ssh_config's UserKnownHostsFile may name several); a newly
    accepted key is appended to the first."""

    def __init__(self, paths: Sequence[Path], *, accept_new: bool) -> None:
        self.paths = list(paths)
        self.path = self.paths[0]
        self.accept_new = accept_new
        self.host = ""
        self.port: int | None = None
        self.known: list[asyncssh.SSHKey] = []
        self.offered: asyncssh.SSHKey | None = None

    def match(self, host: str, addr: str, port: int | None) -> Any:
        self.host, self.port = host, port
        text = ""
        for path in self.paths:
            try:
                text += path.read_text(encoding="utf-8", errors="replace") + "\n"
            except FileNotFoundError:
                continue
            except OSError as e:
                raise HostKeyError(f"cannot read known_hosts file {path}: {e.strerror}") from None
        try:
            known_hosts = asyncssh.import_known_hosts(text)
        except ValueError as e:
            raise HostKeyError(f"bad known_hosts file {self.path}: {e}") from None
        result = known_hosts.match(host, addr, port)
        self.known = list(result[0])
        return result

    def validate(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        if self.known or not self.accept_new:
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        algorithm, data = key.export_public_key("openssh").decode().split()[:2]
        line = f"{host_pattern(host, port)} {algorithm} {data}\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(line)
        return True

    def error(self) -> HostKeyError:
        where = host_pattern(self.host, self.port)
        offered = self.offered.get_fingerprint("sha256") if self.offered else "(none)"
        if self.known:
            was = ", ".join(k.get_fingerprint("sha256") for k in self.known)
            return HostKeyError(
                f"host key for {where} has CHANGED: the server offers {offered}, "
                f"{self.path} has {was}",
                hint="if the server was reinstalled, verify the new key with its administrator, "
                f"then remove the old one: ssh-keygen -R '{where}' -f {self.path}",
            )
        return HostKeyError(
            f"unknown host {where}: its key {offered} is not in {self.path}",
            hint="check the fingerprint with the server's administrator, then run again with "
            "--accept-new-host-key (or add it with ssh-keyscan)",
        )
