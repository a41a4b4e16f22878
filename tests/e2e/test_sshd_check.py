"""``sftpmirror sshd check`` on real sshd configs and real chroots, read through ``sshd -T`` and
through the built-in parser alike; and ``sshd snippet`` applied to a running sshd."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.sshd.config import DEFAULTS, Connection, effective, find_sshd, from_sshd, parse
from sftpmirror.sshd.snippet import COMMANDS_HEADER, CONFIG_HEADER, KEYS, snippet
from tests.conftest import Target
from tests.e2e.helpers import make_site, run_cli, snapshot
from tests.openssh import (
    DEFAULT_PASSWORD,
    DEFAULT_USER,
    ensure_sshd,
    ensure_user,
    running_sshd,
    scratch_dir,
)

USER = DEFAULT_USER
PARSERS = ("sshd", "builtin")
KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmHq0Jv0F0q3ZpG2mTQ4yWvq9qv7c8i6Jc0a3ZC3Qm6 t@x"


@dataclass(frozen=True)
class Layout:
    """A chroot for USER on disk and where its sshd_config goes (sshd is not started)."""

    base: Path
    chroot: Path
    upload: Path
    config: Path
    host_key: Path

    def write(self, match: str, extra_global: str = "") -> Path:
        self.config.write_text(
            f"HostKey {self.host_key}\n"
            "UsePAM yes\n"
            "KbdInteractiveAuthentication no\n"
            "Subsystem sftp internal-sftp\n"
            f"{extra_global}\n{match}"
        )
        return self.config

    def keys_file(self) -> Path:
        """A root-owned keys file for USER outside the chroot (like /etc/ssh/authorized_keys)."""
        keys = self.base / "keys"
        keys.mkdir(mode=0o755, exist_ok=True)
        (keys / USER).write_text(KEY_LINE + "\n")
        (keys / USER).chmod(0o644)
        return keys / USER


@pytest.fixture(scope="session")
def host_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_sshd()
    key = tmp_path_factory.mktemp("sshd-check") / "host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    return key


@pytest.fixture
def layout(tmp_path: Path, host_key: Path) -> Iterator[Layout]:
    ensure_user(USER, DEFAULT_PASSWORD)
    with scratch_dir() as base:
        chroot = base / "chroot"
        chroot.mkdir(mode=0o755)
        upload = chroot / "public_html"
        upload.mkdir(mode=0o755)
        shutil.chown(upload, USER, USER)
        yield Layout(base, chroot, upload, tmp_path / "sshd_config", host_key)


def good(layout: Layout) -> str:
    return snippet(USER, str(layout.chroot)).config


def check(config: Path, parser: str, *args: str) -> tuple[int, dict[str, set[str]], Any]:
    result = run_cli(
        "sshd", "check", "--config", str(config), "--user", USER, "--parser", parser, "--json",
        *args,
    )  # fmt: skip
    body = json.loads(result.output)
    statuses: dict[str, set[str]] = {}
    for finding in body["accounts"][0]["findings"]:
        statuses.setdefault(finding["name"], set()).add(finding["status"])
    return result.exit_code, statuses, body


def _without(text: str, *drop: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if line.strip() not in drop)


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


# each case: what it does to the good layout, then the findings it must produce
Mistake = Callable[[Layout], tuple[str, str]]


def group_writable_chroot(layout: Layout) -> tuple[str, str]:
    layout.chroot.chmod(0o775)
    return good(layout), ""


def chroot_owned_by_user(layout: Layout) -> tuple[str, str]:
    shutil.chown(layout.chroot, USER, USER)
    return good(layout), ""


def no_upload_directory(layout: Layout) -> tuple[str, str]:
    shutil.chown(layout.upload, "root", "root")
    return good(layout), ""


def no_force_command(layout: Layout) -> tuple[str, str]:
    return _without(good(layout), "ForceCommand internal-sftp"), ""


def posix_rename_denied(layout: Layout) -> tuple[str, str]:
    forced = "ForceCommand internal-sftp -P posix-rename"
    return _replace(good(layout), "ForceCommand internal-sftp", forced), ""


def posix_rename_extension_name_denied(layout: Layout) -> tuple[str, str]:
    """F15: not a request name, so internal-sftp denies nothing: not a problem, but said."""
    forced = "ForceCommand internal-sftp -P posix-rename@openssh.com"
    return _replace(good(layout), "ForceCommand internal-sftp", forced), ""


def posix_rename_not_allowed(layout: Layout) -> tuple[str, str]:
    forced = "ForceCommand internal-sftp -p open,close,read,write,rename"
    return _replace(good(layout), "ForceCommand internal-sftp", forced), ""


def posix_rename_allowed(layout: Layout) -> tuple[str, str]:
    """F15: a -p list that includes posix-rename was flagged."""
    forced = "ForceCommand internal-sftp -p open,close,read,write,rename,posix-rename,setstat"
    return _replace(good(layout), "ForceCommand internal-sftp", forced), ""


def tcp_forwarding_on(layout: Layout) -> tuple[str, str]:
    return _without(good(layout), "AllowTcpForwarding no"), ""


def keys_offered_none_reachable(layout: Layout) -> tuple[str, str]:
    """The seed's root cause: a password account that still offers publickey."""
    return _without(good(layout), "AuthenticationMethods password"), ""


def keys_inside_the_chroot(layout: Layout) -> tuple[str, str]:
    ssh = layout.chroot / ".ssh"
    ssh.mkdir()
    (ssh / "authorized_keys").write_text(KEY_LINE + "\n")
    match = _replace(
        good(layout), "AuthenticationMethods password", "AuthenticationMethods publickey"
    )
    return match, ""


def passwords_through_kbd_interactive(layout: Layout) -> tuple[str, str]:
    match = _replace(good(layout), "PasswordAuthentication yes", "PasswordAuthentication no")
    match = _without(match, "AuthenticationMethods password")
    match += f"    AuthorizedKeysFile {layout.keys_file()}\n    KbdInteractiveAuthentication yes\n"
    return match, ""


def password_method_disabled(layout: Layout) -> tuple[str, str]:
    return _replace(good(layout), "PasswordAuthentication yes", "PasswordAuthentication no"), ""


CASES: list[tuple[Mistake, dict[str, str]]] = [
    (group_writable_chroot, {"chroot": "problem"}),
    (chroot_owned_by_user, {"chroot": "problem"}),
    (no_upload_directory, {"upload-directory": "problem", "chroot": "ok"}),
    (no_force_command, {"force-command": "problem"}),
    (posix_rename_denied, {"sftp-flags": "problem", "force-command": "ok"}),
    (posix_rename_not_allowed, {"sftp-flags": "problem"}),
    (tcp_forwarding_on, {"forwarding": "problem"}),
    (keys_offered_none_reachable, {"wasted-tries": "problem", "auth-methods": "ok"}),
    (keys_inside_the_chroot, {"authorized-keys": "problem", "auth-methods": "problem"}),
    (passwords_through_kbd_interactive, {"password": "problem", "authorized-keys": "ok"}),
    (password_method_disabled, {"password": "problem", "auth-methods": "problem"}),
]


@pytest.mark.parametrize("parser", PARSERS)
def test_the_snippet_passes(layout: Layout, parser: str) -> None:
    code, statuses, body = check(layout.write(good(layout)), parser)
    assert code == 0, body
    assert body["ok"] is True
    assert body["accounts"][0]["source"] == (
        "sshd -T" if parser == "sshd" else "the built-in parser"
    )
    for name in ("chroot", "upload-directory", "force-command", "sftp-flags", "forwarding"):
        assert statuses[name] == {"ok"}, (name, body)
    assert statuses["auth-methods"] == {"ok"}
    assert "wasted-tries" not in statuses


@pytest.mark.parametrize("parser", PARSERS)
def test_the_keys_snippet_passes(layout: Layout, parser: str) -> None:
    keys = layout.keys_file()  # the snippet's /etc/ssh/authorized_keys/%u, in the scratch dir
    match = snippet(USER, str(layout.chroot), KEYS).config
    match = _replace(match, "/etc/ssh/authorized_keys/%u", str(keys.parent / "%u"))
    code, statuses, body = check(layout.write(match), parser)
    assert code == 0, body
    assert statuses["authorized-keys"] == {"ok"}
    assert statuses["password"] == {"ok"}
    details = {f["name"]: f["detail"] for f in body["accounts"][0]["findings"]}
    assert details["auth-methods"].endswith("can log in with: publickey")
    assert details["password"] == "password login off"


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(("mistake", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_each_classic_mistake(
    layout: Layout, parser: str, mistake: Mistake, expected: dict[str, str]
) -> None:
    match, extra = mistake(layout)
    code, statuses, body = check(layout.write(match, extra), parser)
    assert code == 1, body
    for name, status in expected.items():
        assert status in statuses.get(name, set()), (name, body)
    problems = {n for n, s in statuses.items() if "problem" in s}
    assert problems <= set(expected), body  # no collateral findings


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize(
    ("setup", "status"),
    [(posix_rename_extension_name_denied, "warning"), (posix_rename_allowed, "ok")],
    ids=["extension-name-filters-nothing", "allowed-in-p-list"],
)
def test_internal_sftp_flags_by_request_name(
    layout: Layout, parser: str, setup: Mistake, status: str
) -> None:
    """F15: internal-sftp filters by request name (posix-rename), as sftp-server -Q lists."""
    code, statuses, body = check(layout.write(*setup(layout)), parser)
    assert code == 0, body
    assert statuses.get("sftp-flags") == {status}, body


@pytest.mark.parametrize("mistake", [c[0] for c in CASES], ids=[c[0].__name__ for c in CASES])
def test_builtin_parser_agrees_with_sshd(layout: Layout, mistake: Mistake) -> None:
    config = layout.write(*mistake(layout))
    conn = Connection(USER, (USER,))
    sshd = find_sshd()
    assert sshd is not None
    real = from_sshd(sshd, config, conn)
    ours = effective(parse(config), conn, "builtin")
    for keyword in DEFAULTS:
        assert ours.get(keyword).lower() == real.get(keyword).lower(), keyword
    assert ours.subsystems == real.subsystems


def test_include_and_match_read_as_sshd_does(layout: Layout, tmp_path: Path) -> None:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-sftp.conf").write_text(
        f"Match Group {USER} User !root,sftpmirror-*\n"
        f"  ChrootDirectory {layout.chroot}\n"
        "  MaxAuthTries 3\n"
    )
    (conf_d / "20-more.conf").write_text("MaxAuthTries 9\nPermitTunnel yes\n")
    (tmp_path / "in-match.conf").write_text(
        "ForceCommand internal-sftp -u 022\nMatch User other\n  X11Forwarding yes\n"
    )
    config = layout.write(
        "Match Address 10.0.0.0/8,!10.9.0.0/16\n"
        f"  Include {tmp_path / 'in-match.conf'}\n"
        "  AllowTcpForwarding no\n"
        "Match all\n  PasswordAuthentication no\n",
        f"Include {conf_d}/*.conf\nPasswordAuthentication yes\n",
    )
    sshd = find_sshd()
    assert sshd is not None
    for who in (
        Connection(USER, (USER,), addr="10.1.1.1"),
        Connection(USER, (USER,), addr="10.9.1.1"),
        Connection("other", ("other",), addr="10.1.1.1"),
        Connection("other", ("other",), addr="10.9.1.1"),  # the outer Match is not satisfied
    ):
        real, ours = from_sshd(sshd, config, who), effective(parse(config), who, "builtin")
        for keyword in DEFAULTS:
            assert ours.get(keyword).lower() == real.get(keyword).lower(), (who, keyword)
    mine = effective(parse(config), Connection(USER, (USER,), addr="10.1.1.1"), "builtin")
    assert mine.get("chrootdirectory") == str(layout.chroot)
    assert mine.get("maxauthtries") == "3"
    assert mine.get("forcecommand") == "internal-sftp -u 022"
    assert mine.get("passwordauthentication") == "no"
    assert mine.get("x11forwarding") == "no"
    other = effective(parse(config), Connection("other", addr="10.1.1.1"), "builtin")
    assert other.get("x11forwarding") == "yes"


def test_sshd_rejecting_the_config_is_a_problem(layout: Layout) -> None:
    config = layout.write(good(layout), "NoSuchKeyword yes\n")
    code, statuses, body = check(config, "sshd")
    assert code == 1
    assert statuses["config"] >= {"problem"}
    assert "NoSuchKeyword" in json.dumps(body)


def test_warnings_alone_exit_zero(layout: Layout) -> None:
    match = _without(good(layout), "AuthenticationMethods password") + (
        f"    AuthorizedKeysFile {layout.keys_file()}\n    MaxAuthTries 3\n"
    )
    code, statuses, body = check(layout.write(match), "auto")
    assert code == 0, body
    assert statuses["max-auth-tries"] == {"warning"}
    assert statuses["authorized-keys"] == {"ok"}


def test_text_report_and_usage_errors(layout: Layout, tmp_path: Path) -> None:
    config = layout.write(_without(good(layout), "ForceCommand internal-sftp"))
    result = run_cli("sshd", "check", "--config", str(config))  # the account found on Match User
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"sftpmirror sshd check {config} --user {USER}"
    assert any(line.split()[:2] == ["PROBLEM", "force-command"] for line in lines)
    assert "fix: in its Match block: ForceCommand internal-sftp" in result.output
    assert lines[-1] == "problems found"
    missing = run_cli("sshd", "check", "--config", str(tmp_path / "nope"), "--user", USER)
    assert missing.exit_code == 2
    assert "cannot read sshd config" in missing.output
    nobody = run_cli(
        "sshd", "check", "--config", str(config), "--user", "no-such-user-7q", "--json"
    )
    assert nobody.exit_code == 1
    findings = json.loads(nobody.output)["accounts"][0]["findings"]
    assert {"name": "account", "status": "problem"}.items() <= findings[1].items()
    anonymous = tmp_path / "plain"
    anonymous.write_text("PasswordAuthentication no\n")
    assert run_cli("sshd", "check", "--config", str(anonymous)).exit_code == 2


def test_snippet_cli() -> None:
    result = run_cli("sshd", "snippet", "--user", "web", "--root", "/srv/sftp/web", "--keys")
    assert result.exit_code == 0
    assert result.output.startswith(CONFIG_HEADER + "\nMatch User web\n")
    assert "AuthorizedKeysFile /etc/ssh/authorized_keys/%u" in result.output
    bad = run_cli("sshd", "snippet", "--user", "web", "--root", "relative")
    assert bad.exit_code == 2
    assert "absolute path" in bad.output


def _applied(chroot: Path) -> str:
    """What an admin does with ``sshd snippet``: run its directory commands, paste its block."""
    result = run_cli("sshd", "snippet", "--user", USER, "--root", str(chroot))
    assert result.exit_code == 0, result.output
    config, commands = result.output.split(COMMANDS_HEADER)
    for line in commands.splitlines():
        if line.startswith("install -d"):
            subprocess.run(shlex.split(line.split("#")[0]), check=True)
    return config.replace(CONFIG_HEADER, "")


def test_snippet_applied_gives_a_healthy_account(tmp_path: Path) -> None:
    with running_sshd(tmp_path / "sshd", match_block=_applied) as info:
        target = Target.of(info)
        for parser in PARSERS:
            code, _, body = check(info.config, parser)
            assert code == 0, body
        doctor = run_cli("doctor", "--json", target.url(), target=target)
        report = json.loads(doctor.output)
        assert doctor.exit_code == 0, report
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["auth-methods"]["status"] == "ok"
        assert checks["auth-methods"]["detail"] == "server allows: password"
        site = make_site(tmp_path / "site")
        push = run_cli("push", str(site), target.url(), target=target)
        assert push.exit_code == 0, push.output
        assert snapshot(info.web_root).keys() >= snapshot(site).keys()
        assert os.stat(info.web_root).st_uid != 0


def test_keys_the_account_can_replace_over_sftp(layout: Layout) -> None:
    ssh = layout.upload / ".ssh"  # root-owned, but inside the account's own directory
    ssh.mkdir()
    (ssh / "authorized_keys").write_text(KEY_LINE + "\n")
    match = _replace(
        good(layout), "AuthenticationMethods password", "AuthenticationMethods publickey"
    )
    code, statuses, body = check(
        layout.write(match + f"    AuthorizedKeysFile {ssh}/%%/x\n"), "auto"
    )
    assert statuses["authorized-keys"] == {"info"}, body  # %% is a literal %: no such file
    code, statuses, body = check(
        layout.write(match + f"    AuthorizedKeysFile {ssh}/authorized_keys\n"), "auto"
    )
    assert code == 0, body
    assert statuses["authorized-keys"] == {"warning"}
    assert statuses["auth-methods"] == {"ok"}
