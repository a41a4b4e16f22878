"""``sftpmirror doctor`` against both servers, and the diagnosis of a session that dies at login."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from sftpmirror.doctor import CHECKS
from tests.conftest import Target
from tests.e2e.helpers import make_site, run_cli
from tests.openssh import running_sshd


def doctor_json(
    *args: str, target: Target, password: str | None = None, known_hosts: bool = True
) -> tuple[int, Any]:
    result = run_cli(
        "doctor", "--json", *args, target=target, password=password, known_hosts=known_hosts
    )
    return result.exit_code, json.loads(result.output)


def by_name(report: Any) -> dict[str, dict[str, str]]:
    return {check["name"]: check for check in report["checks"]}


def test_doctor_runs_every_check(target: Target) -> None:
    code, report = doctor_json(target.url(), target=target)
    checks = by_name(report)
    assert code == 0, report
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == list(CHECKS)
    for name in ("tcp", "ssh", "host-key", "login", "sftp", "extensions", "dest-exists"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["dest-writable"]["status"] == "ok"
    assert "posix-rename" in checks["extensions"]["detail"]
    assert "(no)" not in checks["extensions"]["detail"].split("posix-rename")[1][:5]
    assert "looks chrooted" in checks["login-directory"]["detail"]
    assert "GiB free" in checks["free-space"]["detail"]
    assert checks["clock-skew"]["status"] == "ok"
    # Both servers offer publickey beside the password: the seed's trap, flagged with its fix.
    assert checks["auth-methods"]["status"] == "warning"
    assert "AuthenticationMethods password" in (checks["auth-methods"]["fix"] or "")
    assert list(target.disk.iterdir()) == [], "the probe file was left behind"


def test_doctor_text_report(target: Target) -> None:
    result = run_cli("doctor", target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == f"sftpmirror doctor {target.url()}"
    assert "fix: for a password-only account" in result.output
    assert result.output.rstrip().endswith("no problems found")


def test_doctor_read_only_destination(openssh: Target) -> None:
    code, report = doctor_json(openssh.url(""), target=openssh)  # the root-owned chroot root
    checks = by_name(report)
    assert code == 1
    assert checks["dest-exists"]["status"] == "ok"
    assert checks["dest-writable"]["status"] == "problem"
    assert "not writable: permission denied" in checks["dest-writable"]["detail"]
    assert "public_html" in (checks["dest-writable"]["fix"] or "")


def test_doctor_wrong_password(target: Target) -> None:
    code, report = doctor_json(target.url(), target=target, password="Wrong-1")
    checks = by_name(report)
    assert code == 1
    assert checks["tcp"]["status"] == "ok"
    assert checks["login"]["status"] == "problem"
    assert "password" in checks["login"]["fix"]
    assert checks["sftp"]["status"] == "skipped"
    assert "Wrong-1" not in json.dumps(report)


def test_doctor_text_labels_fixes_once_and_evidence_not_as_fixes(target: Target) -> None:
    """It printed "fix: fix here: …", and "fix: server allows: …" for the evidence."""
    result = run_cli("doctor", target.url(), target=target, password="Wrong-1")
    assert result.exit_code == 1
    assert "fix: fix" not in result.output
    assert "fix: server allows" not in result.output
    assert "fix: we offered" not in result.output
    assert "   server allows: " in result.output
    assert "   fix here: " in result.output


def test_doctor_unknown_host(target: Target, tmp_path: Path) -> None:
    code, report = doctor_json(
        target.url(), "--known-hosts", str(tmp_path / "empty"), target=target, known_hosts=False
    )
    checks = by_name(report)
    assert code == 1
    assert checks["host-key"]["status"] == "problem"
    assert "unknown host" in checks["host-key"]["detail"]
    assert checks["login"]["status"] == "skipped"


def test_doctor_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_cli("doctor", "--json", f"sftp://u@127.0.0.1:{port}/x", password="x")
    report = json.loads(result.output)
    checks = by_name(report)
    assert result.exit_code == 1
    assert checks["tcp"]["status"] == "problem"
    assert "connection refused" in checks["tcp"]["detail"]
    assert {checks[name]["status"] for name in CHECKS[2:]} == {"skipped"}


def test_session_closed_after_login_is_explained(tmp_path: Path) -> None:
    with running_sshd(tmp_path / "sshd") as info:
        info.chroot.chmod(0o775)  # OpenSSH refuses a group-writable ChrootDirectory
        target = Target.of(info)
        site = make_site(tmp_path / "site")
        result = run_cli("push", str(site), target.url(), target=target)
        info.chroot.chmod(0o755)
    assert result.exit_code == 5, result.output
    assert "accepted the login but gave no SFTP session" in result.output
    assert "bad ownership or modes for chroot directory" in result.output


def test_doctor_reports_the_history_and_what_backups_hold(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    for n in range(2):
        (site / "index.html").write_text(f"<p>{n}</p>\n" * (n + 1))
        assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    code, report = doctor_json(target.url(), target=target)
    assert code == 0
    history = by_name(report)["history"]
    assert history["status"] == "info"
    assert history["detail"].startswith("2 deploy(s) recorded, the live one ")
    assert "backups of 2 hold" in history["detail"]
