"""Hostile input is bounded (issue 15, F6-F8): a FIFO or a gzip bomb where the manifest should
be, a server that lies about sizes. Each ends in a warning or one error line, never a hang."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from sftpmirror.engine import mirror as mirror_module
from sftpmirror.engine import plan as plan_module
from sftpmirror.engine.manifest import DEFAULT_NAME as MANIFEST
from sftpmirror.engine.tree import MAX_DEPTH, Excludes
from sftpmirror.transport.auth import ConnectOptions, Secret
from sftpmirror.transport.connect import open_session
from sftpmirror.trees.remote import RemoteTree
from sftpmirror.url import RemoteSpec
from tests.conftest import Target, embedded_server
from tests.e2e.helpers import assert_same_tree, make_site, run_cli
from tests.faults import EndlessFileServer, EndlessNestingServer, StallingServer


def _push(target: Target, site: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "sftpmirror", "push", *extra, str(site), target.url()]
    cmd += ["--known-hosts", str(target.known_hosts)]
    env = {"SFTPMIRROR_PASSWORD": target.password, "PATH": "/usr/bin:/bin"}
    for name in ("SFTPMIRROR_CACHE_DIR", "PYTHONPATH"):  # the test's cache; the code tested
        if name in os.environ:
            env[name] = os.environ[name]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_a_fifo_at_the_manifest_path_is_not_opened(openssh: Target, tmp_path: Path) -> None:
    """sftp-server opening a FIFO for reading blocks until a writer comes: the whole session
    hung (100 s until killed). Now it is seen by lstat first, and ignored."""
    os.mkfifo(openssh.disk / MANIFEST)
    site = make_site(tmp_path / "site")
    result = _push(openssh, site)
    assert result.returncode == 0, result.stderr
    assert "manifest ignored: it is a FIFO or device" in result.stderr
    assert_same_tree(site, openssh.disk)


def test_a_gzip_bomb_manifest_is_ignored(openssh: Target, tmp_path: Path) -> None:
    """A 1 MiB file that inflates to 1 GiB took 4 GB of memory; now it stops at the bound."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(openssh.disk / MANIFEST, "wb") as f:
        for _ in range(1024):
            f.write(deflate.compress(bytes(1 << 20)))
        f.write(deflate.flush())
    site = make_site(tmp_path / "site")
    result = _push(openssh, site)
    assert result.returncode == 0, result.stderr
    assert "MiB inflated" in result.stderr
    assert_same_tree(site, openssh.disk)


def test_a_file_that_never_ends_is_not_read_past_its_size(tmp_path: Path, state_dir: Path) -> None:
    """F8: listed as 8 bytes, never EOF; it grew to 2.75 GB in 36 s."""
    with embedded_server(tmp_path, state_dir, EndlessFileServer) as target:
        (target.disk / "endless.bin").write_bytes(b"8 bytes!")
        (target.disk / "index.html").write_text("hello")
        dest = tmp_path / "pulled"
        result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 1, result.output
    assert "endless.bin: grew past its listed size (8 bytes) by more than 1 MiB" in result.output
    assert sorted(p.name for p in dest.iterdir()) == ["index.html"]


def test_a_read_answered_with_more_than_asked_stops_the_run(
    tmp_path: Path, state_dir: Path
) -> None:
    with embedded_server(tmp_path, state_dir, EndlessFileServer) as target:
        (target.disk / "oversized.bin").write_bytes(b"0123456789")
        dest = tmp_path / "pulled"
        result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 5, result.output
    assert "breaks the SFTP protocol" in result.output
    assert not (dest / "oversized.bin").exists()


def test_a_local_tree_deeper_than_the_bound_is_one_failure(
    embedded: Target, tmp_path: Path
) -> None:
    """F17: a local tree 1,000 levels deep gave a RecursionError traceback."""
    site = make_site(tmp_path / "site")
    deep = str(site)
    for _ in range(1000):  # os.makedirs recurses: it cannot make this tree itself
        deep += "/d"
        os.mkdir(deep)
    with open(os.path.join(deep, "x.html"), "w") as f:
        f.write("deep")
    try:
        result = run_cli("push", str(site), embedded.url(), target=embedded)
    finally:  # rm(1) walks without recursion; shutil.rmtree (pytest's cleanup) cannot
        subprocess.run(["rm", "-rf", str(site / "d")], check=True)
    assert result.exit_code == 1, result.output[-2000:]
    assert "Traceback" not in result.output
    assert f"nested deeper than {MAX_DEPTH} levels: not read" in result.output
    assert (embedded.disk / "index.html").exists()


def test_endless_remote_nesting_stops_with_one_error(tmp_path: Path, state_dir: Path) -> None:
    with embedded_server(tmp_path, state_dir, EndlessNestingServer) as target:
        (target.disk / "index.html").write_text("hello")
        result = run_cli("pull", target.url(), str(tmp_path / "pulled"), target=target)
    assert result.exit_code == 5, result.output[-2000:]
    assert f"directories nested deeper than {MAX_DEPTH} levels" in result.output
    assert "Traceback" not in result.output


def test_an_unexpected_error_is_one_line_and_the_json_object(
    embedded: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """F17: MemoryError (or a bug) spilled a traceback and no JSON."""

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(plan_module, "plan", out_of_memory)
    monkeypatch.setattr(mirror_module, "plan", out_of_memory)
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--json", str(site), embedded.url(), target=embedded)
    assert result.exit_code == 70, result.output
    assert "sftpmirror: error: unexpected error: out of memory" in result.stderr
    assert "Traceback" not in result.output
    summary = json.loads(result.stdout)
    assert (summary["exit_code"], summary["error"]["kind"]) == (70, "InternalError")


@pytest.mark.parametrize("command", ["push", "pull"])
def test_a_server_that_stops_answering_ends_the_run(
    tmp_path: Path, state_dir: Path, command: str
) -> None:
    """F7: a READDIR or READ never answered (keepalives still are) hung for 100 s until
    killed. Now nothing answered for --timeout seconds while requests wait: exit 3."""
    site = make_site(tmp_path / "site")
    with embedded_server(tmp_path, state_dir, StallingServer) as target:
        if command == "push":
            (target.disk / "stuck").mkdir()
            args = ["push", str(site), target.url()]
        else:
            (target.disk / "stuck.bin").write_bytes(b"never read")
            args = ["pull", target.url(), str(tmp_path / "pulled")]
        began = time.monotonic()
        result = run_cli(*args, "--timeout", "2", "--reconnects", "0", target=target)
        took = time.monotonic() - began
    assert result.exit_code == 3, result.output
    assert "the server stopped answering: no reply in 2 s" in result.output
    assert took < 10, took


def test_a_huge_directory_is_listed_within_its_memory_bound(embedded: Target) -> None:
    """F20: 300,000 names in one directory took 573 MB: asyncssh's objects for every name
    were kept until the directory was read whole. Now each answer's names become tuples at
    once. Bound: a scan's peak is under 650 bytes a name (it was about 830)."""
    many = embedded.disk / "many"
    many.mkdir()
    for i in range(30_000):
        (many / f"page-{i:06d}.html").touch()

    async def scan() -> tuple[int, int]:
        spec = RemoteSpec(embedded.host, embedded.path, embedded.user, embedded.port)
        options = ConnectOptions(
            password=Secret(embedded.password), known_hosts=embedded.known_hosts
        )
        async with open_session(spec, options) as session:
            tree = RemoteTree(session, embedded.path, "embedded")
            tracemalloc.start()
            try:
                listing = await tree.scan(Excludes())
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        return len(listing.entries), peak

    entries, peak = asyncio.run(scan())
    assert entries == 30_001
    assert peak / entries < 650, peak / entries
