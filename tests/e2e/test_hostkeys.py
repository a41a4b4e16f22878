"""known_hosts markers (F12): a key marked ``@revoked`` is refused even with
``--accept-new-host-key`` and never recorded; a known_hosts that trusts only a certificate
authority says so instead of "connection lost"."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import asyncssh
import pytest

from sftpmirror.transport.hostkeys import matches_host, revoked_keys
from tests.conftest import Target
from tests.e2e.helpers import make_site, run_cli
from tests.openssh import SshdInfo


def _server_key_lines(target: Target) -> list[str]:
    """``[127.0.0.1]:PORT ALGORITHM DATA`` of each of the server's host keys."""
    return [x.strip() for x in target.known_hosts.read_text().splitlines() if x.strip()]


def test_a_revoked_key_is_refused_even_when_new_keys_are_accepted(
    target: Target, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"@revoked {line}\n" for line in _server_key_lines(target)))
    before = known_hosts.read_text()
    site = make_site(tmp_path / "site")
    result = run_cli(
        "push", "--accept-new-host-key", str(site), target.url(),
        "--known-hosts", str(known_hosts), password=target.password,
    )  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "REVOKED HOST KEY DETECTED" in result.output
    assert known_hosts.read_text() == before  # not recorded
    assert not (target.disk / "index.html").exists()


def test_a_revoked_key_among_trusted_ones_is_refused(target: Target, tmp_path: Path) -> None:
    lines = _server_key_lines(target)
    known_hosts = tmp_path / "known_hosts"
    revoked = [f"@revoked * {line.split(None, 1)[1]}" for line in lines]
    known_hosts.write_text("\n".join([*lines, *revoked]) + "\n")
    site = make_site(tmp_path / "site")
    args = ("push", str(site), target.url(), "--known-hosts", str(known_hosts))
    result = run_cli(*args, password=target.password)
    assert result.exit_code == 3, result.output
    assert "REVOKED HOST KEY DETECTED" in result.output


def test_only_a_certificate_authority_is_said_plainly(target: Target, tmp_path: Path) -> None:
    ca = asyncssh.generate_private_key("ssh-ed25519")
    host = _server_key_lines(target)[0].split()[0]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"@cert-authority {host} {ca.export_public_key().decode().strip()}\n")
    site = make_site(tmp_path / "site")
    args = ("push", str(site), target.url(), "--known-hosts", str(known_hosts))
    result = run_cli(*args, password=target.password)
    assert result.exit_code == 3, result.output
    assert "trusts only a certificate authority (@cert-authority)" in result.output
    assert "Connection lost" not in result.output


def _hashed(name: str) -> str:
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


@pytest.mark.parametrize(
    ("patterns", "port", "matched"),
    [
        ("[127.0.0.1]:3406", 3406, True),
        ("[127.0.0.1]:3406", 22, False),
        ("127.0.0.1", 22, True),
        ("127.0.0.1", 3406, False),
        ("*", 3406, True),
        ("[127.0.0.?]:*", 3406, True),
        ("*,!127.0.0.1", 22, False),
        ("web.example.org,127.0.0.1", 22, True),
        (_hashed("[127.0.0.1]:3406"), 3406, True),
        (_hashed("[127.0.0.1]:3406"), 3407, False),
    ],
)
def test_known_hosts_patterns(patterns: str, port: int, matched: bool) -> None:
    assert matches_host(patterns, "127.0.0.1", "127.0.0.1", port) is matched


def test_revoked_keys_are_read_for_a_host_and_port() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    text = f"# comment\n@revoked [127.0.0.1]:3406 {key}\n@revoked [127.0.0.1]:9 {key}\n"
    assert len(revoked_keys(text, "127.0.0.1", "127.0.0.1", 3406)) == 1
    assert revoked_keys(text, "127.0.0.1", "127.0.0.1", 3407) == []


def test_first_contact_shows_the_ed25519_key_with_its_type(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    """The server has an RSA and an ED25519 key; asyncssh asked for RSA first, while ssh and
    the hosts' control panels show the ED25519 one, and the message named no type."""
    site = make_site(tmp_path / "site")
    empty = tmp_path / "known_hosts"
    result = run_cli("push", str(site), openssh.url(), "--known-hosts", str(empty),
                     password=openssh.password)  # fmt: skip
    assert result.exit_code == 3, result.output
    assert "its ED25519 key SHA256:" in result.output
    assert "the server also has RSA SHA256:" in result.output  # whichever a panel lists
    assert all(fp in result.output for fp in sshd.host_key_fingerprints)
    ed25519 = result.output.split("its ED25519 key ")[1].split()[0]
    accepted = run_cli("push", "--accept-new-host-key", str(site), openssh.url(),
                       "--known-hosts", str(empty), password=openssh.password)  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    assert f"Permanently added '[127.0.0.1]:{sshd.port}' (ED25519) to the list of known hosts" in (
        accepted.output
    )
    assert ed25519 in accepted.output
    assert empty.read_text().split()[1] == "ssh-ed25519"


def _ssh_config(tmp_path: Path, target: Target, *lines: str) -> Path:
    config = tmp_path / "ssh_config"
    known = tmp_path / "known_hosts"
    body = [f"Host {target.host}", f"  UserKnownHostsFile {known}", *(f"  {x}" for x in lines)]
    config.write_text("\n".join(body) + "\n")
    return config


def test_ssh_config_accept_new_is_honoured(target: Target, tmp_path: Path) -> None:
    config = _ssh_config(tmp_path, target, "StrictHostKeyChecking accept-new")
    site = make_site(tmp_path / "site")
    result = run_cli("push", "-F", str(config), str(site), target.url(), password=target.password)
    assert result.exit_code == 0, result.output
    assert "Permanently added" in result.output
    line = (tmp_path / "known_hosts").read_text()
    assert line.startswith(f"[{target.host}]:{target.port} ")
    # A changed key is still refused.
    other = asyncssh.generate_private_key("ssh-ed25519")
    algorithm, data = other.export_public_key("openssh").decode().split()[:2]
    (tmp_path / "known_hosts").write_text(f"[{target.host}]:{target.port} {algorithm} {data}\n")
    changed = run_cli("push", "-F", str(config), str(site), target.url(), password=target.password)
    assert changed.exit_code == 3, changed.output
    assert "has CHANGED" in changed.output


def test_ssh_config_hash_known_hosts_is_honoured(target: Target, tmp_path: Path) -> None:
    config = _ssh_config(tmp_path, target, "StrictHostKeyChecking accept-new", "HashKnownHosts yes")
    site = make_site(tmp_path / "site")
    result = run_cli("push", "-F", str(config), str(site), target.url(), password=target.password)
    assert result.exit_code == 0, result.output
    name, _, _ = (tmp_path / "known_hosts").read_text().split()
    assert name.startswith("|1|")
    assert matches_host(name, target.host, target.host, target.port)
    again = run_cli("push", "-F", str(config), str(site), target.url(), password=target.password)
    assert again.exit_code == 0, again.output
    assert "Permanently added" not in again.output
