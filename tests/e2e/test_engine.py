"""How the engine uses the server: one connection, many files in flight, atomic replace,
no deletes after a failure. Watched from inside the server (embedded, instrumented) and from
OpenSSH's log."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import asyncssh
import pytest

from tests.conftest import Target, embedded_server
from tests.e2e.helpers import assert_same_tree, make_site, ours, run_cli
from tests.faults import CuttingProxy
from tests.openssh import SshdInfo


class Recorder(asyncssh.SFTPServer):
    """Records write opens, renames and the most files open for writing at once."""

    guard = threading.Lock()
    opened: ClassVar[list[str]] = []
    renamed: ClassVar[list[tuple[str, str]]] = []
    open_now = 0
    open_max = 0
    fail_names: tuple[str, ...] = ()

    @classmethod
    def reset(cls, fail_names: tuple[str, ...] = ()) -> None:
        cls.opened, cls.renamed, cls.open_now, cls.open_max = [], [], 0, 0
        cls.fail_names = fail_names

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        file = super().open(path, pflags, attrs)
        if pflags & asyncssh.FXF_WRITE and not ours(path):
            cls = type(self)
            with cls.guard:
                cls.opened.append(path.decode())
                cls.open_now += 1
                cls.open_max = max(cls.open_max, cls.open_now)
            file = _Tracked(file, path.decode())
        return file

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        if isinstance(file_obj, _Tracked):
            await asyncio.sleep(0.01)  # a slow disk: makes overlap observable
            if any(name in file_obj.path for name in self.fail_names):
                raise asyncssh.SFTPFailure("injected write failure")
            file_obj = file_obj.inner
        result = super().write(file_obj, offset, data)
        return result if isinstance(result, int) else await result

    def close(self, file_obj: object) -> None:
        if isinstance(file_obj, _Tracked):
            with Recorder.guard:
                Recorder.open_now -= 1
            file_obj = file_obj.inner
        super().close(file_obj)

    def fstat(self, file_obj: object) -> Any:
        return super().fstat(file_obj.inner if isinstance(file_obj, _Tracked) else file_obj)

    def fsetstat(self, file_obj: object, attrs: asyncssh.SFTPAttrs) -> None:
        inner = file_obj.inner if isinstance(file_obj, _Tracked) else file_obj
        super().fsetstat(inner, attrs)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not ours(newpath):
            type(self).renamed.append((oldpath.decode(), newpath.decode()))
        super().posix_rename(oldpath, newpath)


class _Tracked:
    def __init__(self, inner: object, path: str) -> None:
        self.inner = inner
        self.path = path


def test_uploads_are_concurrent_and_atomic(tmp_path: Path, state_dir: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(40):
        (site / f"page{i:02}.html").write_text(f"page {i}\n" * 50)
    Recorder.reset()
    with embedded_server(tmp_path, state_dir, Recorder) as target:
        result = run_cli("push", "--jobs", "8", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
        assert_same_tree(site, target.disk)
    assert Recorder.open_max > 1, "files were uploaded one at a time"
    assert Recorder.open_max <= 8, "more files in flight than --jobs"
    # Every write went to a hidden temporary name, then was renamed over the final name;
    # the manifest last of all.
    assert Recorder.renamed[-1][1] == "public_html/.sftpmirror-manifest.json.gz"
    del Recorder.renamed[-1], Recorder.opened[-1]
    assert len(Recorder.opened) == 40
    for path in Recorder.opened:
        assert re.fullmatch(r"public_html/\.sftpmirror\.[0-9a-f]{8}\.page\d\d\.html\.part", path)
    assert sorted(new for _, new in Recorder.renamed) == sorted(
        f"public_html/page{i:02}.html" for i in range(40)
    )
    assert sorted(old for old, _ in Recorder.renamed) == sorted(Recorder.opened)


def test_failed_upload_keeps_old_file_and_blocks_deletes(tmp_path: Path, state_dir: Path) -> None:
    site = make_site(tmp_path / "site")
    with embedded_server(tmp_path, state_dir, Recorder) as target:
        Recorder.reset()
        assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
        (target.disk / "old-page.html").write_text("still linked from somewhere")
        (site / "index.html").write_bytes(b"<html>new home page, longer</html>\n")
        (site / "about.html").write_text("about")
        Recorder.reset(fail_names=("index.html",))
        args = ("push", "--delete", "--delete-foreign", str(site), target.url())
        result = run_cli(*args, target=target)
        assert result.exit_code == 1, result.output
        assert "index.html: injected write failure" in result.output
        assert "not running 1 delete action(s): there were errors" in result.output
        # The old page is whole, the other upload landed, nothing was deleted, no temp files.
        assert (target.disk / "index.html").read_bytes() == b"<html>home</html>\n"
        assert (target.disk / "about.html").read_text() == "about"
        assert (target.disk / "old-page.html").exists()
        assert not [p for p in target.disk.rglob(".sftpmirror.*")]


def _accepted_logins(info: SshdInfo) -> int:
    return len(re.findall(r"Accepted password for", info.log.read_text(errors="replace")))


def test_one_connection_per_run_on_openssh(openssh: Target, sshd: SshdInfo, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    before = _accepted_logins(sshd)
    result = run_cli("push", "--jobs", "32", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, openssh.disk)
    deadline = 50
    while _accepted_logins(sshd) == before and deadline:  # sshd logs asynchronously
        deadline -= 1
        threading.Event().wait(0.1)
    assert _accepted_logins(sshd) - before == 1


def test_console_script_as_a_subprocess(embedded: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    env = {"SFTPMIRROR_PASSWORD": embedded.password, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    cmd = [sys.executable, "-m", "sftpmirror", "push", "--delete", str(site), embedded.url()]
    cmd += ["--known-hosts", str(embedded.known_hosts)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("done: ")
    assert_same_tree(site, embedded.disk)
    assert embedded.password not in proc.stdout + proc.stderr


@pytest.mark.parametrize("flag", ["--version", "--help"])
def test_version_and_help(flag: str) -> None:
    result = run_cli(flag)
    assert result.exit_code == 0
    assert "sftpmirror" in result.output


class SlowWrites(asyncssh.SFTPServer):
    """Every write takes a while, so a test can interrupt an upload in the middle."""

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        await asyncio.sleep(0.05)
        result = super().write(file_obj, offset, data)
        return result if isinstance(result, int) else await result


def _ignore_signals() -> None:
    """As a shell's background job (``cmd &`` in a script) starts: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGQUIT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "inherited_ignored"),
    [
        (signal.SIGINT, False),
        (signal.SIGTERM, False),
        (signal.SIGTERM, True),
        (signal.SIGINT, True),
    ],
    ids=["SIGINT", "SIGTERM", "SIGTERM-background-job", "SIGINT-background-job"],
)
def test_interrupt_exits_130_and_leaves_no_partial_file(
    tmp_path: Path, state_dir: Path, sig: signal.Signals, inherited_ignored: bool
) -> None:
    """F1: a background job inherits SIGINT ignored; SIGTERM used to do nothing there."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "big.bin").write_bytes(os.urandom(8 << 20))
    with embedded_server(tmp_path, state_dir, SlowWrites) as target:
        (target.disk / "big.bin").write_bytes(b"the old version")
        env = {"SFTPMIRROR_PASSWORD": target.password, "PATH": "/usr/bin:/bin"}
        cmd = [sys.executable, "-m", "sftpmirror", "push", "--json", str(site), target.url()]
        cmd += ["--known-hosts", str(target.known_hosts)]
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_ignore_signals if inherited_ignored else None,
        )
        deadline = time.monotonic() + 20
        while not list(target.disk.glob(".sftpmirror.*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(target.disk.glob(".sftpmirror.*")), "the upload never started"
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert b"\nsftpmirror: error: interrupted\n" in stderr, stderr
        obj = json.loads(stdout)  # a CI job cancelled mid-deploy still gets its summary object
        assert (obj["exit_code"], obj["error"]["kind"]) == (130, "Interrupted")
        assert (target.disk / "big.bin").read_bytes() == b"the old version"
        # Removed when the requests in flight finished within the grace; else left for the
        # next run, which sweeps them.
        again = run_cli("push", str(site), target.url(), target=target)
        assert again.exit_code == 0, again.output
        assert list(target.disk.glob(".sftpmirror.*")) == []
        assert (target.disk / "big.bin").read_bytes() == (site / "big.bin").read_bytes()


@pytest.mark.parametrize("signals", [1, 2], ids=["stop", "stop-twice"])
def test_a_stop_on_a_slow_link_ends_within_seconds(
    openssh: Target, sshd: SshdInfo, tmp_path: Path, signals: int
) -> None:
    """F10, F11: at 1 Mbit/s SIGTERM took 183.7 s (the 8 MiB chunks in flight were let finish).
    Now the run ends within 5 s; no live file is touched; the next run sweeps what is left."""
    site = tmp_path / "site"
    site.mkdir()
    for i in range(3):
        (site / f"big{i}.bin").write_bytes(os.urandom(12 << 20))
    (openssh.disk / "big0.bin").write_bytes(b"the old version")
    with CuttingProxy(sshd.port, limit=1 << 40, rate=125_000) as proxy:
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
        env = {"SFTPMIRROR_PASSWORD": sshd.password, "PATH": "/usr/bin:/bin"}
        cmd = [sys.executable, "-m", "sftpmirror", "push", str(site), url, "--known-hosts", str(kh)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while proxy.sent < 400_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.sent >= 400_000, "the upload never got going"
        began = time.monotonic()
        for _ in range(signals):
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - began
    assert proc.returncode == 130, stderr
    assert took < 5, took
    assert (openssh.disk / "big0.bin").read_bytes() == b"the old version"
    time.sleep(0.5)  # sshd's session notices the dropped connection
    result = run_cli("push", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, openssh.disk)
    assert not list(openssh.disk.glob(".sftpmirror.*"))


def test_debug_trace_never_shows_the_password(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--debug", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "Trying password auth" in result.output
    assert target.password not in result.output
    wrong = "Wrong-Password-123"
    result = run_cli("push", "--debug", str(site), target.url(), target=target, password=wrong)
    assert result.exit_code == 4
    assert "Traceback" in result.output
    assert wrong not in result.output


def test_a_directory_of_many_names_is_listed_whole(target: Target, tmp_path: Path) -> None:
    # sftp-server answers a READDIR with at most 100 names; the listing asks two at a time
    site = tmp_path / "site"
    (site / "big").mkdir(parents=True)
    for i in range(1234):
        (site / "big" / f"page-{i:04}.html").write_text(f"page {i}\n")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    for i in range(7):
        (target.disk / "big" / f"extra-{i}.html").write_text("extra\n")

    args = ("push", "--delete", "--delete-foreign", "-n", str(site), target.url())
    result = run_cli(*args, target=target)
    assert result.exit_code == 0, result.output
    deleted = re.findall(r"^delete\s+big/(\S+)", result.output, re.MULTILINE)
    assert sorted(deleted) == [f"extra-{i}.html" for i in range(7)]
    assert "copy" not in result.output

    back = tmp_path / "back"
    assert run_cli("pull", target.url(), str(back), target=target).exit_code == 0
    assert len(list((back / "big").iterdir())) == 1234 + 7
