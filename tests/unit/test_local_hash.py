"""LocalTree.hash_files: small files hashed in one thread, big ones in the pool (bounded), every
digest equal to hashlib's, and what cannot be read left out rather than failing the run; with
the hash cache, a run that changed nothing opens no file, and any edit is read again."""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.engine.model import Kind
from sftpmirror.engine.tree import Excludes
from sftpmirror.trees import hashcache
from sftpmirror.trees.local import HASH_THREADS, POOL_FROM, LocalTree


def test_small_and_big_files_hash_like_hashlib(tmp_path: Path) -> None:
    files: dict[str, bytes] = {}
    for i in range(2 * HASH_THREADS + 3):  # more big files than the pool may hold at once
        files[f"img/big{i}.bin"] = bytes([i]) * (POOL_FROM + i)
    for i in range(50):
        files[f"posts/p{i}/index.html"] = f"<p>{i}</p>".encode() * (i + 1)
    files["empty.txt"] = b""
    files["edge.bin"] = b"e" * (POOL_FROM - 1)
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    wanted = [*sorted(files), "gone.html", "posts"]  # vanished, and a directory

    got = asyncio.run(LocalTree(tmp_path, follow_symlinks=False).hash_files(wanted))

    assert got == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


# --- the hash cache (trees/hashcache.py) ----------------------------------------------------


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash as if the files had been written a while ago (past the racy margin)."""
    real = hashcache.now_ns
    monkeypatch.setattr(hashcache, "now_ns", lambda: real() + 3 * hashcache.RACY_MARGIN_NS)


class Opens:
    """Every file under ``root`` opened by ``open()`` (in any thread): the bodies read."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        real = builtins.open
        prefix = str(root) + os.sep

        def counting(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | os.PathLike) and os.fspath(file).startswith(prefix):
                self.paths.append(os.path.relpath(os.fspath(file), root))
            return real(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", counting)


def _site(root: Path) -> dict[str, bytes]:
    files = {f"posts/p{i}/index.html": f"<p>{i}</p>".encode() for i in range(20)}
    files |= {f"img/big{i}.bin": bytes([i]) * (POOL_FROM + i) for i in range(3)}  # the pool's
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _hash(root: Path, paths: list[str] | None = None) -> dict[str, str]:
    """One run: a new tree (its cache read from disk), scanned, its files hashed."""
    tree = LocalTree(root, follow_symlinks=True)
    listing = asyncio.run(tree.scan(Excludes(())))
    files = [p for p, e in listing.entries.items() if e.kind is Kind.FILE]
    wanted = paths if paths is not None else files
    return asyncio.run(tree.hash_files(wanted))


@pytest.mark.usefixtures("later")
def test_a_no_change_run_reads_no_file_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _site(tmp_path / "site")
    expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    assert _hash(tmp_path / "site") == expected
    opens = Opens(tmp_path / "site", monkeypatch)
    assert _hash(tmp_path / "site") == expected
    assert opens.paths == []


@pytest.mark.usefixtures("later")
def test_files_the_scan_found_cached_are_not_looked_at_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan checks each file's stat against the cache as it lists it: hashing those then
    takes no second stat (a 100,000-file run: 0.5 s), and the hash is the one of the size and
    mtime the scan listed. A file the scan did not vouch for is looked at as before."""
    site = tmp_path / "site"
    files = _site(site)
    _hash(site)
    (site / "posts" / "p1" / "index.html").write_bytes(b"<p>new</p>")  # changed since
    tree = LocalTree(site, follow_symlinks=True)
    asyncio.run(tree.scan(Excludes(())))
    looked: list[str] = []
    real = os.stat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if isinstance(path, str) and path.startswith(f"{site}{os.sep}"):
            looked.append(os.path.relpath(path, site))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    got = asyncio.run(tree.hash_files(sorted(files)))
    assert looked == ["posts/p1/index.html"]
    assert got == {p: hashlib.sha256(files[p]).hexdigest() for p in files} | {
        "posts/p1/index.html": hashlib.sha256(b"<p>new</p>").hexdigest()
    }


@pytest.mark.usefixtures("later")
def test_an_edit_at_the_same_size_with_the_mtime_put_back_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _site(site)
    _hash(site)
    page = site / "posts" / "p3" / "index.html"
    st = page.stat()
    page.write_bytes(b"<p>X</p>")  # same size
    os.utime(page, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as cached: ctime not
    assert (page.stat().st_size, page.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    opens = Opens(site, monkeypatch)
    got = _hash(site)
    assert opens.paths == ["posts/p3/index.html"]
    assert got["posts/p3/index.html"] == hashlib.sha256(b"<p>X</p>").hexdigest()


@pytest.mark.usefixtures("later")
def test_a_file_replaced_by_another_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    _site(site)
    _hash(site)
    page = site / "posts" / "p4" / "index.html"
    st = page.stat()
    (site / "new").write_bytes(b"<p>Y</p>")
    os.utime(site / "new", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(site / "new", page)  # another inode, same size and mtime
    opens = Opens(site, monkeypatch)
    assert _hash(site)["posts/p4/index.html"] == hashlib.sha256(b"<p>Y</p>").hexdigest()
    assert opens.paths == ["posts/p4/index.html"]


def test_files_just_written_are_read_each_run_until_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    files = _site(site)
    _hash(site)  # the real clock: every file is younger than the racy margin
    opens = Opens(site, monkeypatch)
    _hash(site)
    assert sorted(opens.paths) == sorted(files)  # none was trusted to the cache
    real = hashcache.now_ns
    monkeypatch.setattr(hashcache, "now_ns", lambda: real() + 3 * hashcache.RACY_MARGIN_NS)
    _hash(site)  # now they are old enough: read once more, and kept
    opens.paths.clear()
    _hash(site)
    assert opens.paths == []


@pytest.mark.usefixtures("later")
def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFTPMIRROR_NO_HASH_CACHE", "1")
    files = _site(tmp_path / "site")
    _hash(tmp_path / "site")
    opens = Opens(tmp_path / "site", monkeypatch)
    _hash(tmp_path / "site")
    assert sorted(opens.paths) == sorted(files)


@pytest.mark.usefixtures("later")
def test_a_file_read_whole_for_an_upload_is_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    files = _site(site)

    async def upload(tree: LocalTree, path: str, chunk: int, order: list[int] | None) -> None:
        size = len(files[path])
        offsets = order if order is not None else list(range(0, size + 1, chunk))
        async with tree.open_read(path, size) as reader:
            for offset in offsets:
                await reader.read(chunk, offset)

    async def run() -> None:
        tree = LocalTree(site, follow_symlinks=True)
        await tree.scan(Excludes(()))
        await upload(tree, "img/big0.bin", 1 << 16, None)  # whole, in order
        await upload(tree, "img/big1.bin", 1 << 16, [0, 1 << 16])  # not to the end
        await upload(tree, "img/big2.bin", 1 << 20, [1 << 20, 0])  # out of order
        tree.save_hash_cache()

    asyncio.run(run())
    opens = Opens(site, monkeypatch)
    got = _hash(site, ["img/big0.bin", "img/big1.bin", "img/big2.bin"])
    assert got == {p: hashlib.sha256(files[p]).hexdigest() for p in got}
    assert sorted(opens.paths) == ["img/big1.bin", "img/big2.bin"]
