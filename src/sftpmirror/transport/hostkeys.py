"""Strict host key checking against a known_hosts file, with the evidence kept for the message.

asyncssh asks ``match`` for the keys trusted for a host, and ``validate`` about a key that is
not among them. An unknown host is refused unless ``accept_new`` (then the key is appended to the
file, like OpenSSH's ``StrictHostKeyChecking accept-new``); a host whose key differs from the
one on record is always refused, and the message shows both fingerprints.

``@revoked`` lines are read here too: asyncssh's ``match()`` finds none for a ``[host]:port``
pattern, so a revoked key could be accepted and recorded. ``@cert-authority`` is asyncssh's;
when it is all known_hosts holds for a host and the server shows no certificate, the error says
so (it read "connection lost").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from sftpmirror.errors import HostKeyError

# OpenSSH's HostKeyAlgorithms order (ssh_config(5)) for a host known_hosts has no key for: it
# shows the key a host's control panel lists (ED25519), where asyncssh would ask for RSA first
# (and Dropbear without an RSA key fails on that).
FIRST_CONTACT_ALGS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
KEY_TYPES = {
    "ssh-ed25519": "ED25519",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "ssh-rsa": "RSA",
    "rsa-sha2-256": "RSA",
    "rsa-sha2-512": "RSA",
}


@dataclass(frozen=True, slots=True)
class Policy:
    """What ssh_config says of host keys for this host (``ssh -G``, OpenSSH's own reading):
    StrictHostKeyChecking (yes, ask, accept-new, no) and HashKnownHosts."""

    strict: str = "ask"
    hash_names: bool = False


def read_policy(host: str, port: int | None, user: str | None, configs: list[str]) -> Policy:
    """ssh_config's host key settings for this host, as ``ssh -G`` resolves them (Host and
    Match blocks, Include) from the files sftpmirror reads (``configs``, as asyncssh does; the
    system-wide one is not among them); the defaults when OpenSSH's client is not installed.
    asyncssh reads neither setting."""
    ssh = shutil.which("ssh")
    if ssh is None:
        return Policy()
    cmd = [ssh, "-G", "-F", configs[0] if configs else os.devnull]
    if port:
        cmd += ["-p", str(port)]
    if user:
        cmd += ["-l", user]
    try:
        done = subprocess.run(
            [*cmd, "--", host], capture_output=True, text=True, timeout=10, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return Policy()
    values = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    strict = values.get("stricthostkeychecking", "ask").strip().lower()
    strict = {"true": "yes", "false": "no", "off": "no"}.get(strict, strict)
    return Policy(strict, values.get("hashknownhosts", "no").strip().lower() == "yes")


def key_type(key: asyncssh.SSHKey) -> str:
    algorithm = key.get_algorithm()
    return KEY_TYPES.get(algorithm, algorithm)


def hashed(name: str) -> str:
    """A known_hosts name as HashKnownHosts writes it: |1|salt|HMAC-SHA1(salt, name)."""
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def host_pattern(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if port and port != 22 else host


def _pattern_matches(pattern: str, names: Sequence[str]) -> bool:
    if pattern.startswith("|1|"):  # hashed: HMAC-SHA1 of the name, keyed by the salt
        try:
            _, _, salt, digest = pattern.split("|")
            key, want = base64.b64decode(salt), base64.b64decode(digest)
        except ValueError:
            return False
        return any(
            hmac.compare_digest(hmac.new(key, n.encode(), hashlib.sha1).digest(), want)
            for n in names
        )
    # OpenSSH's match_pattern(): only "*" and "?" are special ("[" is literal: [host]:port)
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return any(re.fullmatch(regex, n, re.IGNORECASE) for n in names)


def matches_host(patterns: str, host: str, addr: str, port: int | None) -> bool:
    """Does a known_hosts pattern list match this host (sshd(8) "SSH_KNOWN_HOSTS FILE
    FORMAT": comma-separated, ``*``/``?`` wildcards, ``!`` negation, hashed names)?"""
    names = (
        [host_pattern(host, port), host_pattern(addr, port)] if addr else [host_pattern(host, port)]
    )
    found = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        if _pattern_matches(pattern[1:] if negated else pattern, names):
            if negated:
                return False
            found = True
    return found


def revoked_keys(text: str, host: str, addr: str, port: int | None) -> list[asyncssh.SSHKey]:
    """The keys ``@revoked`` for this host in known_hosts text."""
    keys: list[asyncssh.SSHKey] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "@revoked":
            continue
        if matches_host(fields[1], host, addr, port):
            try:
                keys.append(asyncssh.import_public_key(f"{fields[2]} {fields[3]}"))
            except (asyncssh.KeyImportError, ValueError):
                continue
    return keys


class HostKeyCheck:
    """Checks against ``paths`` (ssh_config's UserKnownHostsFile may name several); a newly
    accepted key is appended to the first."""

    def __init__(
        self, paths: Sequence[Path], *, accept_new: bool, hash_names: bool = False
    ) -> None:
        self.paths = list(paths)
        self.path = self.paths[0]
        self.accept_new = accept_new
        self.hash_names = hash_names
        self.added: str | None = None  # "Permanently added …", once a key was recorded
        self.host = ""
        self.port: int | None = None
        self.known: list[asyncssh.SSHKey] = []
        self.authorities: list[asyncssh.SSHKey] = []
        self.revoked: list[asyncssh.SSHKey] = []
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
        result: list[Any] = list(known_hosts.match(host, addr, port))
        self.revoked = [*result[2], *revoked_keys(text, host, addr, port)]
        result[2] = self.revoked
        self.known = [k for k in result[0] if k not in self.revoked]
        result[0] = self.known
        self.authorities = list(result[1])
        return tuple(result)

    def keys_for(self, host: str, port: int | None) -> list[asyncssh.SSHKey]:
        """The keys known_hosts trusts for this host (by name), before connecting."""
        try:
            self.match(host, "", port)
        except HostKeyError:
            return []
        return list(self.known)

    @property
    def authorities_only(self) -> bool:
        """known_hosts trusts a certificate authority for this host and no key of its own."""
        return bool(self.authorities) and not self.known

    def validate(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        if self.known or not self.accept_new:
            return False
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        algorithm, data = key.export_public_key("openssh").decode().split()[:2]
        name = host_pattern(host, port)
        line = f"{hashed(name) if self.hash_names else name} {algorithm} {data}\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as f:
            f.write(line)
        self.added = (
            f"Permanently added '{name}' ({key_type(key)}) to the list of known hosts "
            f"({self.path}): {key.get_fingerprint('sha256')}"
        )
        return True

    def error(self, reason: str = "") -> HostKeyError:
        where = host_pattern(self.host, self.port)
        if "revoked" in reason.lower() and self.revoked:
            marked = ", ".join(k.get_fingerprint("sha256") for k in self.revoked)
            return HostKeyError(
                f"REVOKED HOST KEY DETECTED for {where}: {self.path} marks it @revoked "
                f"({marked}); refusing to connect",
                hint="the server still uses a key that was withdrawn: ask its administrator",
            )
        if self.authorities_only and self.offered is None:
            return self.no_certificate()
        offered = self.offered.get_fingerprint("sha256") if self.offered else "(none)"
        if self.known:
            was = ", ".join(k.get_fingerprint("sha256") for k in self.known)
            return HostKeyError(
                f"host key for {where} has CHANGED: the server offers {offered}, "
                f"{self.path} has {was}",
                hint="if the server was reinstalled, verify the new key with its administrator, "
                f"then remove the old one: ssh-keygen -R '{where}' -f {self.path}",
            )
        if self.offered is None and self.revoked:
            return self.error("revoked")
        kind = f"{key_type(self.offered)} key " if self.offered else "key "
        return HostKeyError(
            f"unknown host {where}: its {kind}{offered} is not in {self.path}",
            hint="compare that fingerprint with the one your host's control panel shows (or "
            "ask its administrator); if they match, run again with --accept-new-host-key",
        )

    def no_certificate(self) -> HostKeyError:
        where = host_pattern(self.host, self.port)
        return HostKeyError(
            f"{self.path} trusts only a certificate authority (@cert-authority) for {where}, "
            "and the server showed no host certificate signed by it",
            hint="add the server's own host key to known_hosts, or have the server present a "
            "certificate (HostCertificate in sshd_config)",
        )
