"""The built-in sshd_config reader: Include, Match, first value wins, tokens; internal-sftp flags;
the snippet's input checks. (tests/e2e/test_sshd_check.py compares it with ``sshd -T``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from sftpmirror.errors import UsageError
from sftpmirror.sshd.audit import sftp_accounts, sftp_flags
from sftpmirror.sshd.config import (
    Connection,
    effective,
    expand_tokens,
    match_address,
    match_list,
    matches,
    parse,
)
from sftpmirror.sshd.snippet import KEYS, snippet

ALICE = Connection("alice", ("users", "sftponly"), addr="10.1.2.3", host="Client.Example.org")


def values(tmp_path: Path, text: str, conn: Connection = ALICE) -> dict[str, str]:
    config = tmp_path / "sshd_config"
    config.write_text(text)
    return effective(parse(config, ssh_dir=tmp_path), conn, "test").values


def test_keywords_case_insensitive_equals_and_first_value_wins(tmp_path: Path) -> None:
    got = values(
        tmp_path,
        "# comment\n"
        "PASSWORDAUTHENTICATION=no\n"
        "passwordauthentication yes\n"
        "  MaxAuthTries = 3  # trailing comment\n"
        "ChallengeResponseAuthentication no\n"
        "KbdInteractiveAuthentication yes\n",
    )
    assert got["passwordauthentication"] == "no"
    assert got["maxauthtries"] == "3"
    assert got["kbdinteractiveauthentication"] == "no"  # the old name is an alias


def test_match_overrides_global_and_first_match_wins(tmp_path: Path) -> None:
    got = values(
        tmp_path,
        "ForceCommand /bin/false\n"
        "Match User bob\n  ChrootDirectory /bob\n"
        "Match User ali*,!mallory\n  ChrootDirectory /srv/%u\n  MaxAuthTries 2\n"
        "Match All\n  ChrootDirectory /everyone\n  ForceCommand internal-sftp\n"
        "ChrootDirectory /still-in-match-all\n",
    )
    assert got["chrootdirectory"] == "/srv/%u"
    assert got["forcecommand"] == "internal-sftp"  # a Match value beats the global one
    assert got["maxauthtries"] == "2"


def test_negation_wins_over_wildcard(tmp_path: Path) -> None:
    text = "Match User *,!alice\n  ChrootDirectory /x\n"
    assert "chrootdirectory" not in values(tmp_path, text)
    assert values(tmp_path, text, Connection("bob"))["chrootdirectory"] == "/x"


def test_every_criterion_on_a_match_line_must_hold() -> None:
    assert matches(("User", "alice", "Address", "10.0.0.0/8"), ALICE)
    assert not matches(("User", "alice", "Address", "192.168.0.0/16"), ALICE)
    assert matches(("Group", "sftp*"), ALICE)
    assert not matches(("Group", "sftponly,!users"), ALICE)  # a negated group match wins
    assert matches(("Host", "*.example.ORG"), ALICE)  # host names compare in lower case
    assert matches(("LocalPort", "22", "LocalAddress", "0.0.0.0"), ALICE)
    assert not matches(("LocalPort", "2222"), ALICE)
    assert matches(("all",), ALICE)
    with pytest.raises(UsageError, match="needs a pattern"):
        matches(("User",), ALICE)
    with pytest.raises(UsageError, match="unsupported criterion"):
        matches(("Colour", "blue"), ALICE)


def test_patterns() -> None:
    assert match_list("alice", "bob,al?ce") == 1
    assert match_list("alice", "a*,!alice") == -1
    assert match_list("alice", "bob") == 0
    assert match_address("10.1.2.3", "192.0.2.0/24,10.1.*") == 1
    assert match_address("10.1.2.3", "10.0.0.0/8,!10.1.2.0/24") == -1
    assert match_address("10.1.2.3", "not-a-net/99") == 0


def test_include_relative_to_ssh_dir_in_lexical_order(tmp_path: Path) -> None:
    (tmp_path / "sshd_config.d").mkdir()
    (tmp_path / "sshd_config.d" / "20-b.conf").write_text("MaxAuthTries 20\n")
    (tmp_path / "sshd_config.d" / "10-a.conf").write_text("MaxAuthTries 10\nMatch User bob\n")
    got = values(tmp_path, "Include sshd_config.d/*.conf\nPermitTunnel yes\n")
    assert got["maxauthtries"] == "10"
    assert got["permittunnel"] == "yes", "a Match in an included file ends with that file"


def test_include_inside_match_is_conditional(tmp_path: Path) -> None:
    (tmp_path / "sftp.conf").write_text("ForceCommand internal-sftp\n")
    text = f"Match User bob\n  Include {tmp_path / 'sftp.conf'}\n"
    assert "forcecommand" not in values(tmp_path, text)
    assert values(tmp_path, text, Connection("bob"))["forcecommand"] == "internal-sftp"


def test_unreadable_config_and_include_loops_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read sshd config"):
        parse(tmp_path / "missing")
    loop = tmp_path / "loop.conf"
    loop.write_text(f"Include {loop}\n")
    with pytest.raises(UsageError, match="nested more than"):
        parse(loop)


def test_subsystems_first_per_name(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text("Subsystem sftp internal-sftp -P posix-rename@openssh.com\nSubsystem x y\n")
    got = effective(parse(config), ALICE, "test")
    assert got.subsystems == {"sftp": "internal-sftp -P posix-rename@openssh.com", "x": "y"}
    assert got.get("authenticationmethods") == "any"  # OpenSSH's default when unset


def test_tokens() -> None:
    assert (
        expand_tokens("/srv/%u/%%/%U%h", user="al", home="/home/al", uid=7) == "/srv/al/%/7/home/al"
    )
    with pytest.raises(UsageError, match="unknown token"):
        expand_tokens("/srv/%x", user="al", home="/", uid=7)


def test_sftp_flags() -> None:
    assert sftp_flags("/usr/lib/openssh/sftp-server") is None
    assert sftp_flags("internal-sftp") == ({}, [])
    flags, rest = sftp_flags("internal-sftp -eR -u 022 -Pposix-rename@openssh.com x") or ({}, [])
    assert flags == {"e": "", "R": "", "u": "022", "P": "posix-rename@openssh.com"}
    assert rest == ["x"]


def test_accounts_named_on_match_lines_of_sftp_blocks(tmp_path: Path) -> None:
    config = tmp_path / "sshd_config"
    config.write_text(
        "Match User web1,web2,!bad,tmp*\n  ChrootDirectory /srv/%u\n"
        "Match User admin\n  PasswordAuthentication no\n"
        "Match Group no-such-group-here\n  ForceCommand internal-sftp\n"
    )
    assert sftp_accounts(parse(config)) == ["web1", "web2"]


def test_snippet_refuses_bad_input() -> None:
    with pytest.raises(UsageError, match="user name"):
        snippet("bad name", "/srv/x")
    with pytest.raises(UsageError, match="absolute path"):
        snippet("web", "srv/x")
    with pytest.raises(UsageError, match="absolute path"):
        snippet("web", "/srv/%u")
    keys = snippet("web", "/srv/web", KEYS)
    assert "AuthorizedKeysFile /etc/ssh/authorized_keys/%u" in keys.config
    assert "AuthenticationMethods publickey" in keys.config
    assert "passwd web" not in keys.commands
