"""A connection lost mid-run (a proxy in front of the real OpenSSH drops the line) is made
again and the run carries on: the deploy ends whole, what the lost attempt finished is not
sent twice, and the counts cover both attempts. Reconnections that keep failing end in exit 3
without deleting anything; one that meets another host key stops at once."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import Result

from sftpmirror.engine import retry
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, run_cli
from tests.faults import CuttingProxy
from tests.openssh import SshdInfo

FILES = 40  # of 60 KB, and one of 4 MiB; 4 at a time, and the line drops at 5 MiB sent


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_WAIT", 0.05)


def make_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(FILES):
        (site / f"f{i:02}.bin").write_bytes(os.urandom(60_000))
    (site / "big.bin").write_bytes(os.urandom(4 << 20))
    return site


def push_through(
    proxy: CuttingProxy, sshd: SshdInfo, site: Path, tmp_path: Path, *args: str
) -> Result:
    url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
    return run_cli(
        "push", "--delete", "--delete-foreign", "--json", *args, str(site), url,
        "--known-hosts", str(kh),
        password=sshd.password,
    )  # fmt: skip


def test_a_lost_connection_is_made_again_and_the_run_carries_on(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    site = make_site(tmp_path)
    (openssh.disk / "extra.html").write_text("to delete")
    with CuttingProxy(sshd.port, limit=5 << 20, only_first=True) as proxy:
        result = push_through(proxy, sshd, site, tmp_path, "--jobs", "4")
    assert proxy.cut.is_set()
    assert proxy.connections == 2
    assert result.exit_code == 0, result.output
    assert "reconnecting in 0.05s (1 of 3)" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["reconnects"] == 1
    # What the first attempt put in place was not planned again (the second plan is the one
    # reported), yet the counts cover both attempts. A rename carried out as the line dropped
    # has its file in place, but its answer never came: counted by neither (one per job).
    assert 0 < summary["planned"]["copy"] < FILES + 1, summary
    assert FILES + 1 - 4 <= summary["done"]["copy"] <= FILES + 1, summary
    assert summary["done"]["delete"] == 1
    assert "reconnected 1 time(s)" in summary["summary"]
    assert_same_tree(site, openssh.disk)
    assert not list(openssh.disk.glob(".sftpmirror.*"))
    again = run_cli("push", "--delete", str(site), openssh.url(), target=openssh)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output


def test_a_pull_carries_on_too(openssh: Target, sshd: SshdInfo, tmp_path: Path) -> None:
    site = make_site(tmp_path)
    for path in site.iterdir():
        shutil.copy(path, openssh.disk / path.name)
    out = tmp_path / "out"
    # A pull sends about 15 KB to the server here (the login, then about 200 bytes of requests
    # per file): cut at 8 KB, with about half of the files copied.
    with CuttingProxy(sshd.port, limit=8_000, only_first=True) as proxy:
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        result = run_cli(
            "pull", "--json", "--jobs", "4", url, str(out), "--known-hosts", str(kh),
            password=sshd.password,
        )  # fmt: skip
    assert proxy.cut.is_set()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reconnects"] == 1
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in site.iterdir())
    for path in site.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes()


def test_reconnections_that_fail_end_the_run_and_delete_nothing(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    site = make_site(tmp_path)
    (openssh.disk / "extra.html").write_text("to delete")
    with CuttingProxy(sshd.port, limit=1 << 20) as proxy:  # every connection is cut at once
        result = push_through(proxy, sshd, site, tmp_path, "--reconnects", "2")
    assert result.exit_code == 3, result.output
    assert proxy.connections == 3
    summary = json.loads(result.stdout)
    assert summary["error"]["kind"] == "ConnectionLost"
    assert "after 2 reconnection(s)" in summary["error"]["message"]
    assert "reconnecting in 0.1s (2 of 2)" in result.stderr
    assert (openssh.disk / "extra.html").exists(), "nothing is deleted after a lost connection"
    for path in openssh.disk.glob("f*.bin"):
        assert path.read_bytes() == (site / path.name).read_bytes()  # whole, or not there


def test_the_summary_after_a_lost_connection_counts_what_was_done(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    """F16: after exit 3 the JSON and the summary said done: {} though files were in place."""
    site = tmp_path / "site"
    site.mkdir()
    for i in range(60):
        (site / f"f{i:02}.bin").write_bytes(os.urandom(20_000))
    with CuttingProxy(sshd.port, limit=600_000) as proxy:
        result = push_through(proxy, sshd, site, tmp_path, "--reconnects", "0", "--jobs", "2")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    landed = [p for p in openssh.disk.glob("f*.bin")]
    copied = summary["done"].get("copy", 0)
    assert 0 < copied <= len(landed) < 60, (copied, len(landed))
    assert summary["bytes"] == 20_000 * copied
    assert f"done: {copied} copy" in result.stderr


def test_a_reconnection_meeting_another_host_key_stops(
    openssh: Target, sshd: SshdInfo, embedded: Target, tmp_path: Path
) -> None:
    site = make_site(tmp_path)
    with CuttingProxy(sshd.port, limit=1 << 20, only_first=True, later_port=embedded.port) as proxy:
        result = push_through(proxy, sshd, site, tmp_path)
    assert result.exit_code == 3, result.output
    assert proxy.connections == 2  # no third try
    summary = json.loads(result.stdout)
    assert summary["error"]["kind"] == "HostKeyError"
    assert not list(embedded.disk.iterdir())
