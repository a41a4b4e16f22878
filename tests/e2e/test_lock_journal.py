"""One deploy at a time, and what a stopped deploy left is known (issue 15: F5, F9, F14, F21;
issue 18: the lock). Against real servers: the embedded one slowed down, and OpenSSH."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sftpmirror.engine import journal, lock
from sftpmirror.engine.manifest import DEFAULT_NAME as MANIFEST
from sftpmirror.engine.tree import backup_name, temp_name
from tests.conftest import Target, embedded_server
from tests.e2e.helpers import assert_same_tree, make_site, run_cli
from tests.faults import CuttingProxy, SlowWriteServer
from tests.openssh import SshdInfo


def _background_push(target: Target, site: Path, *extra: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "sftpmirror", "push", "--json", *extra, str(site), target.url()]
    cmd += ["--known-hosts", str(target.known_hosts)]
    env = {"SFTPMIRROR_PASSWORD": target.password, "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.02)
    assert condition(), "timed out"  # type: ignore[operator]


def _big_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(8):
        (site / f"f{i}.bin").write_bytes(os.urandom(1 << 20))
    (site / "index.html").write_text("<h1>hello</h1>\n")
    return site


def test_a_second_deploy_stops_at_once_naming_the_holder(tmp_path: Path, state_dir: Path) -> None:
    site = _big_site(tmp_path)
    with embedded_server(tmp_path, state_dir, SlowWriteServer) as target:
        first = _background_push(target, site)
        _wait_for(lambda: (target.disk / lock.NAME / lock.HOLDER).exists())
        began = time.monotonic()
        second = run_cli("push", "--json", str(site), target.url(), target=target)
        took = time.monotonic() - began
        _, err = first.communicate(timeout=120)
    assert second.exit_code == 7, second.output
    assert took < 2, took
    assert "another deploy holds the lock: " in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert json.loads(second.stdout)["error"]["kind"] == "LockError"
    assert first.returncode == 0, err
    assert_same_tree(site, target.disk)
    assert not (target.disk / lock.NAME).exists()  # released
    assert not (target.disk / journal.NAME).exists()  # a run that ended well leaves none


def test_a_killed_holders_lock_is_recovered_and_its_leftovers_swept(
    tmp_path: Path, state_dir: Path
) -> None:
    """kill -9 mid-deploy: its process is gone, so the next push on this machine takes the
    lock at once, and sweeps exactly the temporaries the journal names (F5, F21)."""
    site = _big_site(tmp_path)
    with embedded_server(tmp_path, state_dir, SlowWriteServer) as target:
        looks_like_ours = target.disk / ".sftpmirror.0badc0de.notes.txt.part"
        looks_like_ours.write_text("a site file that only looks like a temporary")
        first = _background_push(target, site)
        _wait_for(lambda: any(target.disk.glob(".sftpmirror.*.f*.bin.part")))
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=20)
        assert (target.disk / lock.NAME).exists()
        assert (target.disk / journal.NAME).exists()
        result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "taking over the deploy lock" in result.output
    assert "sweep " in result.output
    assert looks_like_ours.exists()  # F21: not named with a tag of ours
    looks_like_ours.unlink()
    assert_same_tree(site, target.disk)
    assert not list(target.disk.glob(".sftpmirror.*"))


def _holder(target: Target, **fields: object) -> None:
    (target.disk / lock.NAME).mkdir()
    holder = {"token": "0" * 16, "host": "another-machine", "user": "ci", "pid": 4242}
    (target.disk / lock.NAME / lock.HOLDER).write_text(json.dumps(holder | fields))
    for path in (target.disk / lock.NAME, target.disk / lock.NAME / lock.HOLDER):
        os.chown(path, *_owner(target))  # as the account's own run would have left it


def test_a_lock_with_a_fresh_heartbeat_from_elsewhere_is_respected(
    target: Target, tmp_path: Path
) -> None:
    _holder(target, heartbeat=int(time.time()), ci="GITHUB_RUN_ID=77")
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--lock-wait", "1.5", str(site), target.url(), target=target)
    assert result.exit_code == 7, result.output
    assert "ci@another-machine pid 4242, GITHUB_RUN_ID=77" in result.output
    assert not (target.disk / "index.html").exists()
    broken = run_cli("push", "--break-lock", str(site), target.url(), target=target)
    assert broken.exit_code == 0, broken.output
    assert_same_tree(site, target.disk)


def test_a_lock_whose_heartbeat_stopped_is_recovered(target: Target, tmp_path: Path) -> None:
    """A holder on another machine that stopped beating more than STALE seconds ago."""
    _holder(target, heartbeat=int(time.time() - lock.STALE - 5))
    site = make_site(tmp_path / "site")
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "taking over the deploy lock of ci@another-machine" in result.output
    assert_same_tree(site, target.disk)
    assert not (target.disk / lock.NAME).exists()


def test_a_rerun_resends_only_what_did_not_land(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    """F9: a rebuild cut half-way; every file already renamed into place was replaced again by
    the next pass (its record was stripped from the manifest), so a link that drops every N MB
    could never finish. The journal records each file as it lands."""
    site = tmp_path / "site"
    site.mkdir()
    for i in range(40):
        (site / f"asset{i:02}.bin").write_bytes(os.urandom(20_000))
    assert run_cli("push", str(site), openssh.url(), target=openssh).exit_code == 0
    for path in site.iterdir():
        path.write_bytes(os.urandom(20_000))  # a rebuild: every file changed, same size
    with CuttingProxy(sshd.port, limit=450_000, only_first=True) as proxy:
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        result = run_cli(
            "push", "--json", "--jobs", "2", str(site), url, "--known-hosts", str(kh),
            password=sshd.password,
        )  # fmt: skip
    assert proxy.cut.is_set()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["reconnects"] == 1
    # Each changed file replaced once in all, but for those that landed within the last round
    # trip before the cut (at most one per job): their journal line was still on its way.
    replaced = summary["done"].get("replace", 0)
    assert 40 <= replaced <= 42, (summary["done"], result.stderr)
    assert_same_tree(site, openssh.disk)
    again = run_cli("push", str(site), openssh.url(), target=openssh)
    assert "nothing to do" in again.output


def test_a_swap_cut_in_the_middle_is_repaired(tmp_path: Path) -> None:
    """F14: without posix-rename a replace is two renames; a cut between them left the page
    missing. The journal's swap line lets the next run put the new page in place."""
    from tests.openssh import running_sshd

    with running_sshd(tmp_path / "sshd", sftp_flags="-P posix-rename") as info:
        target = Target.of(info)
        site = make_site(tmp_path / "site")
        assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
        page = site / "index.html"
        page.write_text("<html>the new home</html>\n")
        # What a cut between the two renames leaves: no index.html, the new page complete in
        # its temporary, the old one aside, and the journal saying so.
        tag = "5ca1ab1e"
        temp = temp_name("index.html", tag)
        final = target.disk / "index.html"
        (target.disk / temp).write_bytes(page.read_bytes())
        os.rename(final, target.disk / backup_name(temp))
        head = {"journal": "sftpmirror", "version": 1, "tags": [tag]}
        lines = [head, {"swap": "index.html", "temp": temp}]
        (target.disk / journal.NAME).write_text("".join(json.dumps(x) + "\n" for x in lines))
        for path in (
            target.disk / temp,
            target.disk / backup_name(temp),
            target.disk / journal.NAME,
        ):
            os.chown(path, *_owner(target))
        result = run_cli("push", "-v", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
        assert "put back 1 file(s) an interrupted replace left missing" in result.output
        assert final.read_text() == "<html>the new home</html>\n"
        assert_same_tree(site, target.disk)
        assert not list(target.disk.glob(".sftpmirror.*"))


def _owner(target: Target) -> tuple[int, int]:
    st = target.disk.stat()
    return st.st_uid, st.st_gid


def test_names_like_ours_are_site_files_like_any_other(target: Target, tmp_path: Path) -> None:
    """F21: a source file named like a temporary was never uploaded; a remote directory of
    that name failed every run."""
    site = make_site(tmp_path / "site")
    (site / ".sftpmirror.0badc0de.logo.png.part").write_bytes(b"a real file")
    (target.disk / ".sftpmirror.deadbeef.dir.part").mkdir()
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert (target.disk / ".sftpmirror.0badc0de.logo.png.part").read_bytes() == b"a real file"
    assert (target.disk / ".sftpmirror.deadbeef.dir.part").is_dir()
    again = run_cli("push", str(site), target.url(), target=target)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output


def test_dry_run_takes_no_lock(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (target.disk / lock.NAME).mkdir()
    (target.disk / lock.NAME / lock.HOLDER).write_text(
        json.dumps({"token": "someone-else", "heartbeat": int(time.time()), "pid": 1})
    )
    result = run_cli("push", "--dry-run", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert MANIFEST not in {p.name for p in target.disk.iterdir()}


@pytest.mark.parametrize("cut", ["before-the-holder", "while-writing-it"])
def test_a_lock_left_without_its_holder_is_recovered(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    """A cut right after the lock was made, before its holder was written: it waited for
    --break-lock forever. Seen without a holder for HOLDERLESS seconds (shortened here), it
    is a dead run's. A cut while the holder was being written (its temporary made, not yet
    renamed) left a lock the next run took over but could not remove ("remove it by hand"),
    kept beside the site from then on: the temporary's name is now known."""
    monkeypatch.setattr(lock, "HOLDERLESS", 0.5)
    monkeypatch.setattr(lock, "POLL", 0.1)
    (target.disk / lock.NAME).mkdir()
    os.chown(target.disk / lock.NAME, *_owner(target))
    if cut == "while-writing-it":
        partial = target.disk / lock.NAME / temp_name(lock.HOLDER, lock.HOLDER_TAG)
        partial.write_bytes(b'{"token": "cut')
        os.chown(partial, *_owner(target))
    site = make_site(tmp_path / "site")
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "taking over the deploy lock of a run that never said who it is" in result.output
    assert "remove it by hand" not in result.output
    assert not [p.name for p in target.disk.iterdir() if p.name.startswith(lock.NAME)]
    assert_same_tree(site, target.disk)
