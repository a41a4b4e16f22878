"""The Tree protocol, one suite for every implementation: LocalTree (as a destination),
RemoteTree over the embedded server, RemoteTree over a chrooted OpenSSH account.

Every test sets up and checks on disk (``tree_env.disk`` is the on-disk directory of the tree's
root) and drives the tree through its protocol only. At the end: the source side of LocalTree
(``follow_symlinks=True``), which only LocalTree has.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import random
import stat
import threading
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.engine.model import Action, Entry, Kind, Listing, Op
from sftpmirror.engine.transfer import CHUNK, WRITES_IN_FLIGHT, copy_file
from sftpmirror.engine.tree import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    Excludes,
    FileWriter,
    NotFound,
    OnSwap,
    Tree,
)
from sftpmirror.trees.local import LocalTree
from tests.tree.conftest import TreeEnv

T0 = 1_600_000_000  # whole-second mtimes, far from "now"
NFC_NAME = unicodedata.normalize("NFC", "caf\u00e9 \u65e5\u672c.txt")


class Boom(Exception):
    """Raised inside an ``open_write`` block by the tests."""


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def scan(tree: Tree, *patterns: str) -> Listing:
    return await tree.scan(Excludes(patterns))


async def write_all(tree: Tree, entry: Entry, chunks: list[bytes], *, perms: bool = True) -> None:
    async with tree.open_write(entry, perms=perms) as writer:
        offset = 0
        for chunk in chunks:
            assert await writer.write(chunk, offset) == len(chunk)
            offset += len(chunk)


def assert_clean_path(path: str) -> None:
    """Relative POSIX, no leading '/', no '.', '..' or empty component, NFC."""
    assert path, "empty entry path"
    assert not path.startswith("/"), path
    assert all(part not in ("", ".", "..") for part in path.split("/")), path
    assert unicodedata.is_normalized("NFC", path), path


def file_entry(path: str, data: bytes = b"", mode: int = 0o640, mtime: int = T0) -> Entry:
    return Entry(path, Kind.FILE, size=len(data), mtime=mtime, mode=mode)


# -- scan ----------------------------------------------------------------------------------


def test_scan_empty_root(tree_env: TreeEnv) -> None:
    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    assert listing.root_exists is True
    assert listing.entries == {}
    assert listing.excluded == set()
    assert listing.warnings == []


def test_scan_shares_one_int_per_mode_and_per_mtime(tree_env: TreeEnv) -> None:
    """Ints above 256 are objects of their own: a scan takes equal modes and mtimes from one
    table (engine/interned.py), or 100,000 files would hold 100,000 copies of 0o644."""
    for name in ("a", "b"):
        tree_env.mkdir(name, mode=0o755, mtime=T0)
        tree_env.write(f"{name}/index.html", b"x", mode=0o644, mtime=T0 + 7)
        os.utime(tree_env.path(name), (T0, T0))  # (the write moved it)

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    entries = asyncio.run(body()).entries
    (a, b), (da, db) = (entries[f"{n}/index.html"] for n in "ab"), (entries["a"], entries["b"])
    assert (a.mode, a.mtime, da.mode, da.mtime) == (0o644, T0 + 7, 0o755, T0)
    assert a.mode is b.mode
    assert a.mtime is b.mtime
    assert da.mode is db.mode
    assert da.mtime is db.mtime


def test_hash_files_gives_back_the_known_string_where_it_is_the_hash(tree_env: TreeEnv) -> None:
    """``known`` (a manifest's hashes): an equal hash comes back as that very string, so two
    sides share one; a different one is never taken for it."""
    tree_env.write("same.html", b"same\n")
    tree_env.write("other.html", b"other\n")
    real = {n: hashlib.sha256(tree_env.read(n)).hexdigest() for n in ("same.html", "other.html")}
    known = {"same.html": "".join(list(real["same.html"])), "other.html": "0" * 64}
    assert known["same.html"] is not real["same.html"]

    async def body() -> dict[str, str]:
        async with tree_env.tree() as tree:
            return await tree.hash_files(["same.html", "other.html", "gone.html"], known)

    hashed = asyncio.run(body())
    assert hashed == real
    assert hashed["same.html"] is known["same.html"]


def test_scan_missing_root(tree_env: TreeEnv) -> None:
    tree_env.write("present.txt", b"x")  # the parent exists and is not empty

    async def body() -> Listing:
        async with tree_env.tree("missing") as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    assert listing.root_exists is False
    assert listing.entries == {}
    assert not tree_env.exists("missing")  # scanning created nothing


@pytest.mark.needs("modes")
def test_scan_tree_built_on_disk(tree_env: TreeEnv) -> None:
    files = {
        "index.html": (b"<html>home</html>\n", 0o644, T0 + 1),
        "private.txt": (b"secret\n", 0o600, T0 + 2),
        "run.sh": (b"#!/bin/sh\n", 0o755, T0 + 3),
        "css/main.css": (b"body {}\n", 0o640, T0 + 4),
        "posts/2024/hello/index.html": (payload(10_000, 1), 0o644, T0 + 5),
        "posts/second post.html": (b"second\n", 0o664, T0 + 6),
        f"tags/{NFC_NAME}": ("caf\u00e9\n".encode(), 0o444, T0 + 7),
        "empty.txt": (b"", 0o644, T0 + 8),
    }
    dirs = {  # deepest first: setting a dir's mtime must come after its children exist
        "posts/2024/hello": (0o755, T0 + 100),
        "posts/2024": (0o750, T0 + 101),
        "posts": (0o755, T0 + 102),
        "css": (0o700, T0 + 103),
        "tags": (0o755, T0 + 104),
        "empty-dir": (0o711, T0 + 105),
    }
    for rel, (data, mode, mtime) in files.items():
        tree_env.write(rel, data, mode, mtime)
    for rel, (mode, mtime) in dirs.items():
        tree_env.mkdir(rel, mode, mtime)

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    expected = {rel: Entry(rel, Kind.FILE, len(d), t, m) for rel, (d, m, t) in files.items()}
    expected |= {rel: Entry(rel, Kind.DIR, mtime=t, mode=m) for rel, (m, t) in dirs.items()}
    assert listing.entries == expected
    assert listing.root_exists is True
    assert listing.excluded == set()
    assert listing.warnings == []
    for path, entry in listing.entries.items():
        assert entry.path == path
        assert_clean_path(path)


def test_scan_excludes(tree_env: TreeEnv) -> None:
    for rel in [
        "keep.txt",
        "debug.log",
        "sub/keep2.txt",
        "sub/trace.log",
        "drafts/a.txt",
        "drafts/nested/b.txt",
        "sub/drafts/c.txt",
        "cache/x.bin",
    ]:
        tree_env.write(rel, b"data")

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree, "*.log", "drafts/", "/cache")

    listing = asyncio.run(body())
    assert set(listing.entries) == {"keep.txt", "sub", "sub/keep2.txt"}
    # an excluded directory is recorded but not descended into
    assert listing.excluded == {"debug.log", "sub/trace.log", "drafts", "sub/drafts", "cache"}
    assert listing.entries["sub"].kind is Kind.DIR


@pytest.mark.needs("symlinks")
def test_scan_lists_symlinks_without_following(tree_env: TreeEnv) -> None:
    tree_env.write("index.html", b"home", 0o644, T0)
    tree_env.write("sub/page.html", b"page", 0o644, T0)
    tree_env.symlink("alias.html", "index.html", mtime=T0 + 10)
    tree_env.symlink("linked-dir", "sub", mtime=T0 + 11)
    tree_env.symlink("dangling", "nowhere", mtime=T0 + 12)

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    assert listing.entries["alias.html"] == Entry("alias.html", Kind.SYMLINK, mtime=T0 + 10)
    assert listing.entries["linked-dir"] == Entry("linked-dir", Kind.SYMLINK, mtime=T0 + 11)
    assert listing.entries["dangling"] == Entry("dangling", Kind.SYMLINK, mtime=T0 + 12)
    assert set(listing.entries) == {
        "index.html",
        "sub",
        "sub/page.html",
        "alias.html",
        "linked-dir",
        "dangling",
    }
    assert listing.warnings == []


def hint_of(*dirs: str) -> Listing:
    """The other side's listing, as a hint names it: these directories (and their parents)."""
    listing = Listing()
    for path in dirs:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            listing.entries[sub] = Entry(sub, Kind.DIR, mtime=T0, mode=0o755)
    return listing


@pytest.mark.needs("symlinks")
@pytest.mark.parametrize("when", ["ready", "later", "failed", "never"])
def test_scan_with_a_wrong_hint_lists_what_is_there(tree_env: TreeEnv, when: str) -> None:
    """A remote tree lists ahead the directories the other side's scan names (``hint``); the
    walk decides what is listed: a hinted directory that is a link, a file, missing or
    excluded here is not listed through, and a hint that fails or never ends changes
    nothing."""
    tree_env.write("site/a/b/c/d/page.html", b"deep", 0o644, T0)
    tree_env.write("site/a/b/other.html", b"b", 0o644, T0)
    tree_env.write("site/only-here/e/f.txt", b"mine", 0o644, T0)
    tree_env.write("site/file", b"a file where the hint has a directory", 0o644, T0)
    tree_env.write("site/drafts/x/y.txt", b"excluded", 0o644, T0)
    tree_env.write(f"site/{NFC_NAME}.d/g/h.txt", b"named", 0o644, T0)
    tree_env.symlink("site/link", "a", mtime=T0)
    for rel in ["site/a/b/c/d", "site/a/b/c", "site/a/b", "site/a", "site/only-here/e",
                "site/only-here", "site/drafts/x", "site/drafts", f"site/{NFC_NAME}.d/g",
                f"site/{NFC_NAME}.d", "site"]:  # fmt: skip
        tree_env.mkdir(rel, 0o755, T0)
    hint = hint_of(
        "site/a/b/c/d/gone/deeper",  # a, b, c, d here; gone, deeper not
        "site/link/b/c",  # a link here: never listed through
        "site/file/under",  # a file here
        "site/missing/x",
        "site/drafts/x",  # excluded
        f"site/{NFC_NAME}.d/g",  # not plain: not guessed
    )

    async def body() -> tuple[Listing, Listing]:
        async with tree_env.tree() as tree:
            plain = await scan(tree, "drafts/")
        async with tree_env.tree() as tree:
            loop = asyncio.get_running_loop()
            other: asyncio.Future[Listing] = loop.create_future()
            if when == "ready":
                other.set_result(hint)
            elif when == "later":
                loop.call_later(0.05, other.set_result, hint)
            elif when == "failed":
                other.set_exception(OSError("the other scan failed"))
            hinted = await tree.scan(Excludes(("drafts/",)), other)
            if when == "failed":
                other.exception()  # (retrieved)
            return plain, hinted

    plain, hinted = asyncio.run(body())
    assert hinted.entries == plain.entries
    assert hinted.excluded == plain.excluded == {"site/drafts"}
    assert hinted.warnings == plain.warnings == []
    assert hinted.entries["site/link"].kind is Kind.SYMLINK
    assert hinted.entries["site/file"].kind is Kind.FILE
    assert {
        "site/a/b/c/d/page.html",
        "site/only-here/e/f.txt",
        f"site/{NFC_NAME}.d/g/h.txt",
    } <= set(hinted.entries)
    assert not any(
        p.startswith(("site/link/", "site/file/", "site/missing")) for p in hinted.entries
    )


def test_scan_truncates_mtime_to_whole_seconds(tree_env: TreeEnv) -> None:
    path = tree_env.write("f.txt", b"x")
    os.utime(path, (T0 + 0.9, T0 + 0.9))
    d = tree_env.mkdir("d")
    os.utime(d, (T0 + 10.6, T0 + 10.6))

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    assert listing.entries["f.txt"].mtime == T0
    assert listing.entries["d"].mtime == T0 + 10


@pytest.mark.needs("special-files")
def test_scan_skips_special_files_with_warning(tree_env: TreeEnv) -> None:
    tree_env.write("sub/index.html", b"home")
    os.mkfifo(tree_env.path("sub/fifo"))

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            return await scan(tree)

    listing = asyncio.run(body())
    assert set(listing.entries) == {"sub", "sub/index.html"}
    assert len(listing.warnings) == 1
    assert listing.warnings[0].startswith("sub/fifo:")


# -- mkdir ---------------------------------------------------------------------------------


@pytest.mark.needs("modes")
@pytest.mark.parametrize("mode", [0o750, 0o775, 0o700, 0o777], ids=oct)
def test_mkdir_sets_exact_mode(tree_env: TreeEnv, mode: int) -> None:
    # the servers run with umask 022: a mode with group/other write bits shows it is bypassed
    tree_env.mkdir("parent")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.mkdir(Entry("made", Kind.DIR, mode=mode), perms=True)
            await tree.mkdir(Entry("parent/child", Kind.DIR, mode=mode), perms=True)

    asyncio.run(body())
    for rel in ("made", "parent/child"):
        assert stat.S_ISDIR(tree_env.lstat(rel).st_mode)
        assert tree_env.mode(rel) == mode, f"{rel}: {oct(tree_env.mode(rel))}"


@pytest.mark.needs("strict-errors")
def test_mkdir_existing_dir_fails(tree_env: TreeEnv) -> None:
    tree_env.mkdir("there")
    tree_env.write("there/file", b"x")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.mkdir(Entry("there", Kind.DIR, mode=0o755), perms=True)

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert tree_env.read("there/file") == b"x"


@pytest.mark.needs("modes")
def test_mkdir_root_creates_parents(tree_env: TreeEnv) -> None:
    async def body() -> tuple[Listing, Listing]:
        async with tree_env.tree("a/b") as tree:
            before = await scan(tree)
            await tree.mkdir(Entry("", Kind.DIR), perms=True)
            await tree.mkdir(Entry("", Kind.DIR), perms=True)  # exists now: not an error
            await tree.mkdir(Entry("c", Kind.DIR, mode=0o750), perms=True)
            return before, await scan(tree)

    before, after = asyncio.run(body())
    assert before.root_exists is False
    assert after.root_exists is True
    assert stat.S_ISDIR(tree_env.lstat("a").st_mode)
    assert stat.S_ISDIR(tree_env.lstat("a/b").st_mode)
    assert tree_env.mode("a/b/c") == 0o750
    assert set(after.entries) == {"c"}


# -- open_write ----------------------------------------------------------------------------

WRITE_PATHS = [
    pytest.param("new.txt", id="top"),
    pytest.param(f"sub/dir/{NFC_NAME}", id="nested-nfc"),
]


@pytest.mark.needs("modes", "mtimes")
@pytest.mark.parametrize("mode", [0o640, 0o664], ids=oct)
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("rel", WRITE_PATHS)
def test_open_write_result(tree_env: TreeEnv, rel: str, existing: bool, mode: int) -> None:
    tree_env.mkdir("sub/dir")
    if existing:
        tree_env.write(rel, b"old content" * 100, 0o600, T0 - 1000)
    data = b"new content\n" * 50
    entry = file_entry(rel, data, mode, T0 + 42)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, entry, [data[:7], data[7:]])

    asyncio.run(body())
    st = tree_env.lstat(rel)
    assert stat.S_ISREG(st.st_mode)
    assert tree_env.read(rel) == data
    assert stat.S_IMODE(st.st_mode) == mode
    assert int(st.st_mtime) == T0 + 42
    assert tree_env.temp_files(os.path.dirname(rel)) == []


LONG_NAMES = ["x" * 251 + ".txt", "\u00e9" * 125 + ".html"]  # 255 bytes, the most a name has


@pytest.mark.needs("modes", "mtimes")
@pytest.mark.parametrize("name", LONG_NAMES, ids=["ascii", "two-byte"])
def test_open_write_longest_name(tree_env: TreeEnv, name: str) -> None:
    assert len(os.fsencode(name)) == 255
    tree_env.write(name, b"old")
    entry = file_entry(name, b"new", 0o640, T0)

    async def body() -> Listing:
        async with tree_env.tree() as tree:
            await write_all(tree, entry, [b"new"])
            return await scan(tree)

    listing = asyncio.run(body())
    assert tree_env.read(name) == b"new"
    assert listing.entries == {name: entry}
    assert tree_env.temp_files() == []


def test_open_write_missing_parent_fails(tree_env: TreeEnv) -> None:
    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, file_entry("no/such/dir.txt", b"x"), [b"x"])

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert not tree_env.exists("no")


@pytest.mark.parametrize("empty", [True, False], ids=["empty-dir", "full-dir"])
def test_open_write_over_directory_fails_cleanly(tree_env: TreeEnv, empty: bool) -> None:
    tree_env.mkdir("page")
    if not empty:
        tree_env.write("page/index.html", b"inside")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, file_entry("page", b"x"), [b"x"])

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert stat.S_ISDIR(tree_env.lstat("page").st_mode)
    assert os.listdir(tree_env.path("page")) == ([] if empty else ["index.html"])
    assert tree_env.temp_files() == []


@pytest.mark.needs("modes", "mtimes")
def test_open_write_multi_megabyte(tree_env: TreeEnv) -> None:
    data = payload(3 * 1024 * 1024 + 12345, seed=7)
    chunk = 700_001
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    assert len(chunks) > 4
    entry = file_entry("big.bin", data)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, entry, chunks)

    asyncio.run(body())
    assert tree_env.lstat("big.bin").st_size == len(data)
    assert tree_env.read("big.bin") == data
    assert tree_env.mode("big.bin") == 0o640
    assert tree_env.temp_files() == []


@pytest.mark.needs("modes", "mtimes")
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_open_write_empty_file(tree_env: TreeEnv, existing: bool) -> None:
    if existing:
        tree_env.write("empty.txt", b"not empty yet", 0o644, T0 - 5)
    entry = file_entry("empty.txt", b"", 0o640, T0 + 3)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, entry, [])

    asyncio.run(body())
    st = tree_env.lstat("empty.txt")
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 0
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert int(st.st_mtime) == T0 + 3
    assert tree_env.temp_files() == []


@pytest.mark.needs("mtimes")
def test_open_write_without_perms_gives_0644(tree_env: TreeEnv) -> None:
    tree_env.write("page.html", b"old", 0o600, T0)
    entry = file_entry("page.html", b"new", 0o600, T0 + 9)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, entry, [b"new"], perms=False)

    asyncio.run(body())
    assert tree_env.read("page.html") == b"new"
    assert tree_env.mode("page.html") == 0o644
    assert int(tree_env.lstat("page.html").st_mtime) == T0 + 9


@pytest.mark.needs("disk-writes")
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("rel", WRITE_PATHS)
def test_open_write_is_invisible_until_exit(tree_env: TreeEnv, rel: str, existing: bool) -> None:
    tree_env.mkdir("sub/dir")
    old = b"the old content\n"
    if existing:
        tree_env.write(rel, old, 0o644, T0)
    directory, name = posixpath.split(rel)
    data = payload(100_000, seed=3)
    seen: dict[str, object] = {}

    async def body() -> None:
        async with tree_env.tree() as tree:
            async with tree.open_write(file_entry(rel, data), perms=True) as writer:
                await writer.write(data[:60_000], 0)
                await writer.write(data[60_000:], 60_000)
                seen["final"] = tree_env.read(rel) if tree_env.exists(rel) else None
                temps = tree_env.temp_files(directory)
                seen["temps"] = temps
                seen["temp data"] = tree_env.read(posixpath.join(directory, temps[0]))
            seen["after"] = tree_env.read(rel)

    asyncio.run(body())
    assert seen["final"] == (old if existing else None)
    temps = seen["temps"]
    assert isinstance(temps, list)
    assert len(temps) == 1, temps
    assert temps[0].startswith(TEMP_PREFIX)
    assert temps[0].endswith(TEMP_SUFFIX)
    assert name in temps[0]
    # the writes went to the hidden temporary file; the last one may still be in flight
    # (RemoteTree answers for it with the close), every earlier one has landed
    temp_data = seen["temp data"]
    assert isinstance(temp_data, bytes)
    assert temp_data in (data[:60_000], data), len(temp_data)
    assert seen["after"] == data
    assert tree_env.temp_files(directory) == []


async def write_then_raise(tree: Tree, entry: Entry) -> None:
    async with tree.open_write(entry, perms=True) as writer:
        await writer.write(b"partial", 0)
        await writer.write(b" and more", 7)
        raise Boom("the source went away")


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
@pytest.mark.parametrize("rel", WRITE_PATHS)
def test_open_write_exception_discards(tree_env: TreeEnv, rel: str, existing: bool) -> None:
    tree_env.mkdir("sub/dir")
    old = b"the old content\n"
    if existing:
        tree_env.write(rel, old, 0o600, T0)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_then_raise(tree, file_entry(rel, b"x" * 16, 0o644, T0 + 1))

    with pytest.raises(Boom, match="the source went away"):
        asyncio.run(body())
    if existing:
        assert tree_env.read(rel) == old
        assert tree_env.mode(rel) == 0o600
        assert int(tree_env.lstat(rel).st_mtime) == T0
    else:
        assert not tree_env.exists(rel)
    assert tree_env.temp_files(os.path.dirname(rel)) == []


@pytest.mark.needs("disk-writes")
def test_open_write_cancelled_discards(tree_env: TreeEnv) -> None:
    tree_env.write("page.html", b"old", 0o644, T0)

    async def body() -> list[str]:
        started = asyncio.Event()

        async def upload(tree: Tree) -> None:
            async with tree.open_write(file_entry("page.html"), perms=True) as writer:
                await writer.write(b"half ", 0)
                await writer.write(b"of it", 5)  # (a local tree makes the file at its second)
                started.set()
                await asyncio.Event().wait()  # a stalled source

        async with tree_env.tree() as tree:
            task = asyncio.create_task(upload(tree))
            await started.wait()
            temps_inside = tree_env.temp_files()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return temps_inside

    temps_inside = asyncio.run(body())
    assert len(temps_inside) == 1
    assert tree_env.read("page.html") == b"old"
    assert tree_env.temp_files() == []


def test_open_write_replaces_file_by_rename(tree_env: TreeEnv) -> None:
    tree_env.write("page.html", b"old", 0o644, T0)
    os.link(tree_env.path("page.html"), tree_env.path("hardlink"))
    old_inode = tree_env.lstat("page.html").st_ino

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(tree, file_entry("page.html", b"new"), [b"new"])

    asyncio.run(body())
    assert tree_env.read("page.html") == b"new"
    assert tree_env.lstat("page.html").st_ino != old_inode  # a new file, renamed into place
    assert tree_env.read("hardlink") == b"old"  # the old file was not written in place
    assert tree_env.lstat("hardlink").st_nlink == 1


def test_open_write_keeps_the_old_file_aside(tree_env: TreeEnv) -> None:
    """A backup made by renames (a server without hard links): the very file replaced ends at
    ``aside``; where nothing was there, nothing is kept and the new file lands all the same."""
    tree_env.write("page.html", b"old", 0o644, T0)
    tree_env.mkdir("kept")
    old_inode = tree_env.lstat("page.html").st_ino

    async def body() -> None:
        async with tree_env.tree() as tree:
            entry = file_entry("page.html", b"newer")
            async with tree.open_write(entry, perms=True, aside="kept/page.html") as writer:
                await writer.write(b"newer", 0)
            fresh = file_entry("fresh.html", b"f")
            async with tree.open_write(fresh, perms=True, aside="kept/fresh.html") as writer:
                await writer.write(b"f", 0)

    asyncio.run(body())
    assert tree_env.read("page.html") == b"newer"
    assert tree_env.read("kept/page.html") == b"old"
    assert tree_env.lstat("kept/page.html").st_ino == old_inode  # renamed, not copied
    assert tree_env.read("fresh.html") == b"f"
    assert not tree_env.exists("kept/fresh.html")
    assert tree_env.temp_files() == []


def test_move_into_place(tree_env: TreeEnv) -> None:
    """A rollback without hard links: a kept file renamed back over the live one, the live one
    kept aside first; without ``aside``, a rename over it (or into a free name)."""
    tree_env.mkdir("kept")
    tree_env.mkdir("kept2")
    tree_env.write("kept/a.html", b"v1", 0o644, T0)
    tree_env.write("kept/b.html", b"b1", 0o644, T0)
    tree_env.write("kept/c.html", b"c1", 0o644, T0)
    tree_env.write("a.html", b"v2", 0o644, T0)
    tree_env.write("b.html", b"b2", 0o644, T0)
    kept_inode = tree_env.lstat("kept/a.html").st_ino
    live_inode = tree_env.lstat("a.html").st_ino

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.move_into_place("kept/a.html", "a.html", aside="kept2/a.html")
            await tree.move_into_place("kept/b.html", "b.html", aside=None)
            await tree.move_into_place("kept/c.html", "c.html", aside="kept2/c.html")
            with pytest.raises(NotFound):
                await tree.move_into_place("kept/gone.html", "a.html", aside="kept2/gone.html")

    asyncio.run(body())
    assert (tree_env.read("a.html"), tree_env.lstat("a.html").st_ino) == (b"v1", kept_inode)
    assert (tree_env.read("kept2/a.html"), tree_env.lstat("kept2/a.html").st_ino) == (
        b"v2",
        live_inode,
    )
    assert tree_env.read("b.html") == b"b1"
    assert tree_env.read("c.html") == b"c1"
    assert not tree_env.exists("kept2/c.html")
    assert not tree_env.exists("kept/a.html")
    # A source that is missing leaves the live file where it was.
    assert tree_env.read("a.html") == b"v1"
    assert not tree_env.exists("kept2/gone.html")


@pytest.mark.needs("rename-over-link", "modes")
def test_open_write_replaces_symlink_not_target(tree_env: TreeEnv) -> None:
    tree_env.write("index.html", b"target content", 0o644, T0)
    tree_env.symlink("alias.html", "index.html")
    target_before = tree_env.lstat("index.html")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await write_all(
                tree, file_entry("alias.html", b"replaced", 0o640, T0 + 5), [b"replaced"]
            )

    asyncio.run(body())
    st = tree_env.lstat("alias.html")
    assert stat.S_ISREG(st.st_mode)  # the link itself was replaced
    assert tree_env.read("alias.html") == b"replaced"
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert tree_env.read("index.html") == b"target content"
    target_after = tree_env.lstat("index.html")
    assert (target_after.st_mode, target_after.st_mtime, target_after.st_ino) == (
        target_before.st_mode,
        target_before.st_mtime,
        target_before.st_ino,
    )
    assert tree_env.temp_files() == []


# -- file_type / kind_and_size -------------------------------------------------------------


def test_kind_and_size_of_each_kind(tree_env: TreeEnv) -> None:
    """What a path is and its size: a file's size is what it holds (the manifest, the journal
    and the lock's holder are read ahead at it)."""
    tree_env.write("page.html", b"x" * 1234)
    tree_env.write("empty.txt", b"")
    tree_env.mkdir("sub")
    found = asyncio.run(_kinds(tree_env, ["page.html", "empty.txt", "sub", "missing", "sub/no"]))
    assert found["page.html"] == ("file", 1234)
    assert found["empty.txt"] == ("file", 0)
    assert (found["sub"] or ("?",))[0] == "dir"
    assert found["missing"] is None
    assert found["sub/no"] is None


@pytest.mark.needs("symlinks", "lstat")
def test_kind_and_size_of_a_link_is_the_link_s(tree_env: TreeEnv) -> None:
    tree_env.write("page.html", b"x" * 1234)
    tree_env.symlink("alias", "page.html")
    found = asyncio.run(_kinds(tree_env, ["alias"]))
    assert (found["alias"] or ("?",))[0] == "symlink"


async def _kinds(tree_env: TreeEnv, paths: list[str]) -> dict[str, tuple[str, int] | None]:
    """``kind_and_size`` of each path; ``file_type`` agrees with it."""
    async with tree_env.tree() as tree:
        found = {path: await tree.kind_and_size(path) for path in paths}
        for path, info in found.items():
            assert await tree.file_type(path) == (info[0] if info else None)
        return found


# -- open_read -----------------------------------------------------------------------------


def test_open_read_size_and_offset(tree_env: TreeEnv) -> None:
    data = payload(300_000, seed=5)
    tree_env.write("sub/data.bin", data)
    tree_env.write("empty.txt", b"")
    n = len(data)

    async def body() -> dict[str, bytes]:
        async with tree_env.tree() as tree:
            got: dict[str, bytes] = {}
            async with tree.open_read("sub/data.bin") as reader:
                got["head"] = await reader.read(10, 0)
                got["middle"] = await reader.read(1000, 123_457)
                got["reread"] = await reader.read(10, 0)  # offsets, not a file position
                got["all"] = await reader.read(n + 100, 0)
                got["tail"] = await reader.read(100, n - 3)
                got["eof"] = await reader.read(100, n)
                got["past"] = await reader.read(100, n + 1000)
            async with tree.open_read("empty.txt") as reader:
                got["empty"] = await reader.read(100, 0)
            return got

    got = asyncio.run(body())
    assert got["head"] == data[:10]
    assert got["middle"] == data[123_457:124_457]
    assert got["reread"] == data[:10]
    assert got["all"] == data
    assert got["tail"] == data[-3:]
    assert got["eof"] == b""
    assert got["past"] == b""
    assert got["empty"] == b""


def test_open_read_missing_file_fails(tree_env: TreeEnv) -> None:
    async def body() -> None:
        async with tree_env.tree() as tree, tree.open_read("nope.txt") as reader:
            await reader.read(1, 0)

    with pytest.raises(NotFound):
        asyncio.run(body())


# -- set_attrs -----------------------------------------------------------------------------


@pytest.mark.needs("modes", "mtimes")
def test_set_attrs_file_with_perms(tree_env: TreeEnv) -> None:
    tree_env.write("f.txt", b"content", 0o644, T0)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.set_attrs(file_entry("f.txt", b"content", 0o600, T0 + 77), perms=True)

    asyncio.run(body())
    assert tree_env.mode("f.txt") == 0o600
    assert int(tree_env.lstat("f.txt").st_mtime) == T0 + 77
    assert tree_env.read("f.txt") == b"content"


@pytest.mark.needs("mtimes")
def test_set_attrs_file_without_perms(tree_env: TreeEnv) -> None:
    tree_env.write("f.txt", b"content", 0o604, T0)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.set_attrs(file_entry("f.txt", b"content", 0o777, T0 + 88), perms=False)

    asyncio.run(body())
    assert tree_env.mode("f.txt") == 0o604
    assert int(tree_env.lstat("f.txt").st_mtime) == T0 + 88


@pytest.mark.needs("modes")
def test_set_attrs_dir(tree_env: TreeEnv) -> None:
    tree_env.mkdir("d", 0o755, T0)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.set_attrs(Entry("d", Kind.DIR, mtime=T0 + 500, mode=0o750), perms=True)

    asyncio.run(body())
    assert tree_env.mode("d") == 0o750
    assert int(tree_env.lstat("d").st_mtime) == T0  # mtimes are set for files only


# -- remove / rmdir ------------------------------------------------------------------------


def test_remove_file(tree_env: TreeEnv) -> None:
    tree_env.write("sub/gone.txt", b"x")
    tree_env.write("sub/stays.txt", b"y")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.remove(file_entry("sub/gone.txt", b"x"))

    asyncio.run(body())
    assert not tree_env.exists("sub/gone.txt")
    assert tree_env.read("sub/stays.txt") == b"y"


@pytest.mark.needs("symlinks")
@pytest.mark.parametrize("target", ["index.html", "sub", "nowhere"])
def test_remove_symlink_not_target(tree_env: TreeEnv, target: str) -> None:
    tree_env.write("index.html", b"home")
    tree_env.write("sub/page.html", b"page")
    tree_env.symlink("link", target)

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.remove(Entry("link", Kind.SYMLINK))

    asyncio.run(body())
    assert not tree_env.exists("link")
    assert tree_env.read("index.html") == b"home"
    assert tree_env.read("sub/page.html") == b"page"


def test_remove_missing_fails(tree_env: TreeEnv) -> None:
    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.remove(file_entry("nope.txt"))

    with pytest.raises(NotFound):
        asyncio.run(body())


@pytest.mark.needs("strict-errors")
def test_remove_directory_fails(tree_env: TreeEnv) -> None:
    tree_env.mkdir("d")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.remove(Entry("d", Kind.FILE))

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert stat.S_ISDIR(tree_env.lstat("d").st_mode)


@pytest.mark.needs("strict-errors")
def test_rmdir_file_fails(tree_env: TreeEnv) -> None:
    tree_env.write("f.txt", b"keep")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.rmdir(Entry("f.txt", Kind.DIR))

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert tree_env.read("f.txt") == b"keep"


def test_rmdir_empty(tree_env: TreeEnv) -> None:
    tree_env.mkdir("a/empty")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.rmdir(Entry("a/empty", Kind.DIR))

    asyncio.run(body())
    assert not tree_env.exists("a/empty")
    assert tree_env.exists("a")


def test_rmdir_non_empty_fails(tree_env: TreeEnv) -> None:
    tree_env.write("full/file.txt", b"keep me")

    async def body() -> None:
        async with tree_env.tree() as tree:
            await tree.rmdir(Entry("full", Kind.DIR))

    with pytest.raises(tree_env.error_type):
        asyncio.run(body())
    assert tree_env.read("full/file.txt") == b"keep me"


# -- through the transfer routine ----------------------------------------------------------


@pytest.mark.needs("modes", "mtimes")
def test_copy_file_round_trip(tree_env: TreeEnv, tmp_path: Path) -> None:
    data = payload(5 * 1024 * 1024, seed=11)
    source = tmp_path / "source"
    back = tmp_path / "back"
    (source / "assets").mkdir(parents=True)
    back.mkdir()
    (source / "assets" / "blob.bin").write_bytes(data)
    entry = Entry("assets/blob.bin", Kind.FILE, size=len(data), mtime=T0 + 1, mode=0o640)
    tree_env.mkdir("assets")

    async def body() -> tuple[tuple[int, str, int], tuple[int, str, int]]:
        src = LocalTree(source, follow_symlinks=True)
        home = LocalTree(back, follow_symlinks=False)
        async with tree_env.tree() as dst:
            up = await copy_file(src, dst, Action(Op.COPY, entry, "new file"), perms=True)
            await home.mkdir(Entry("assets", Kind.DIR, mode=0o755), perms=True)
            down = await copy_file(dst, home, Action(Op.COPY, entry, "new file"), perms=True)
        return up, down

    up, down = asyncio.run(body())
    assert up == down == (len(data), hashlib.sha256(data).hexdigest(), T0 + 1)
    assert tree_env.read("assets/blob.bin") == data
    assert tree_env.mode("assets/blob.bin") == 0o640
    assert int(tree_env.lstat("assets/blob.bin").st_mtime) == T0 + 1
    assert (back / "assets" / "blob.bin").read_bytes() == data
    assert tree_env.temp_files("assets") == []


class Watched:
    """A FileWriter in front of a tree's own: counts the writes in flight at once, holds each
    for ``delay`` seconds, and fails the ``fail_at``-th write (before it reaches the tree)."""

    def __init__(self, inner: FileWriter, fail_at: int | None, delay: float) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.delay = delay
        self.calls = 0
        self.now = 0
        self.most = 0
        self.after_failure = 0

    @property
    def mtime(self) -> int | None:
        return self.inner.mtime

    async def write(self, data: bytes, offset: int) -> int:
        self.calls += 1
        if self.fail_at is not None and self.calls > self.fail_at:
            self.after_failure += 1
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            if self.calls == self.fail_at:
                await asyncio.sleep(0.05)  # the chunk after it is read and sent meanwhile
                raise Boom("write failed")
            await asyncio.sleep(self.delay)  # a slow link: the next chunk is ready before
            return await self.inner.write(data, offset)
        finally:
            self.now -= 1


class WatchedTree:
    """A tree whose ``open_write`` hands out ``Watched`` writers; the rest is the tree's own."""

    def __init__(self, tree: Tree, fail_at: int | None = None, delay: float = 0.0) -> None:
        self.tree = tree
        self.fail_at = fail_at
        self.delay = delay
        self.writers: list[Watched] = []

    @asynccontextmanager
    async def open_write(
        self,
        entry: Entry,
        *,
        perms: bool,
        tag: str | None = None,
        on_swap: OnSwap | None = None,
        aside: str | None = None,
    ) -> AsyncIterator[FileWriter]:
        async with self.tree.open_write(
            entry, perms=perms, tag=tag, on_swap=on_swap, aside=aside
        ) as inner:
            watched = Watched(inner, self.fail_at, self.delay)
            self.writers.append(watched)
            yield watched

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tree, name)


def test_copy_file_keeps_two_chunks_in_flight(tree_env: TreeEnv, tmp_path: Path) -> None:
    data = payload(6 * CHUNK + 12_345, seed=12)
    (tmp_path / "big.bin").write_bytes(data)
    entry = file_entry("big.bin", data)

    async def body() -> tuple[tuple[int, str, int], Watched]:
        src = LocalTree(tmp_path, follow_symlinks=True)
        async with tree_env.tree() as tree:
            dst = WatchedTree(tree, delay=0.05)
            done = await copy_file(src, dst, Action(Op.COPY, entry, "new"), perms=True)
        return done, dst.writers[0]

    done, writer = asyncio.run(body())
    assert done[:2] == (len(data), hashlib.sha256(data).hexdigest())
    assert tree_env.read("big.bin") == data
    assert writer.calls == 7
    assert writer.most == WRITES_IN_FLIGHT == 2


def test_copy_file_failing_write_leaves_the_old_file(tree_env: TreeEnv, tmp_path: Path) -> None:
    old = b"the page as it was\n"
    tree_env.write("page.bin", old, mode=0o644)
    data = payload(6 * CHUNK, seed=13)
    (tmp_path / "page.bin").write_bytes(data)
    entry = file_entry("page.bin", data)

    async def body() -> Watched:
        src = LocalTree(tmp_path, follow_symlinks=True)
        async with tree_env.tree() as tree:
            dst = WatchedTree(tree, fail_at=3)
            with pytest.raises(Boom):
                await copy_file(src, dst, Action(Op.REPLACE, entry, "changed"), perms=True)
            # The session goes on: the next file is written whole (no write of the failed
            # one lands in it, though the server may give it the same handle).
            other = file_entry("next.bin", data)
            await copy_file(src, tree, Action(Op.COPY, other, "new"), perms=True)
        return dst.writers[0]

    (tmp_path / "next.bin").write_bytes(data)
    writer = asyncio.run(body())
    assert tree_env.read("page.bin") == old
    assert tree_env.read("next.bin") == data
    assert tree_env.temp_files("") == []
    assert writer.after_failure <= 1  # at most the chunk already on its way
    assert writer.most <= WRITES_IN_FLIGHT


# -- LocalTree as a source: follows in-tree links, skips the rest -------------------------


def scan_source(root: Path, timeout: float = 20.0) -> Listing:
    """Scan with follow_symlinks=True in a daemon thread, so a hang fails instead of blocking."""
    result: list[Listing] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            tree = LocalTree(root, follow_symlinks=True)
            result.append(asyncio.run(tree.scan(Excludes())))
        except BaseException as e:
            error.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"scan of {root} did not finish within {timeout}s"
    if error:
        raise error[0]
    return result[0]


def make_source(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "static" / "img").mkdir(parents=True)
    (root / "index.html").write_bytes(b"home page")
    (root / "index.html").chmod(0o640)
    os.utime(root / "index.html", (T0, T0))
    (root / "static" / "img" / "logo.png").write_bytes(b"png" * 10)
    return root


def test_source_follows_link_to_file(tmp_path: Path) -> None:
    root = make_source(tmp_path)
    (root / "alias.html").symlink_to("index.html")
    (root / "static" / "home.html").symlink_to("../index.html")

    listing = scan_source(root)
    expected = Entry("alias.html", Kind.FILE, size=9, mtime=T0, mode=0o640)
    assert listing.entries["alias.html"] == expected
    assert listing.entries["static/home.html"] == Entry(
        "static/home.html", Kind.FILE, size=9, mtime=T0, mode=0o640
    )
    assert listing.warnings == []


def test_source_follows_link_to_dir(tmp_path: Path) -> None:
    root = make_source(tmp_path)
    (root / "images").symlink_to("static/img")

    listing = scan_source(root)
    assert listing.entries["images"].kind is Kind.DIR
    assert listing.entries["images/logo.png"] == Entry(
        "images/logo.png",
        Kind.FILE,
        size=30,
        mtime=listing.entries["static/img/logo.png"].mtime,
        mode=listing.entries["static/img/logo.png"].mode,
    )
    assert set(listing.entries) == {
        "index.html",
        "static",
        "static/img",
        "static/img/logo.png",
        "images",
        "images/logo.png",
    }
    assert listing.warnings == []


@pytest.mark.parametrize(
    "link_target",
    ["/etc/hostname", "../outside.txt", "../site-other/page.html", "../site-other"],
    ids=["absolute", "parent-file", "prefix-sibling-file", "prefix-sibling-dir"],
)
def test_source_skips_link_outside_tree(tmp_path: Path, link_target: str) -> None:
    root = make_source(tmp_path)
    (tmp_path / "outside.txt").write_bytes(b"outside")
    (tmp_path / "site-other").mkdir()  # shares the root's name as a prefix
    (tmp_path / "site-other" / "page.html").write_bytes(b"other")
    (root / "out").symlink_to(link_target)

    listing = scan_source(root)
    assert not any(p == "out" or p.startswith("out/") for p in listing.entries)
    assert len(listing.warnings) == 1
    assert listing.warnings[0].startswith("out:")
    assert "outside" in listing.warnings[0]
    assert "index.html" in listing.entries


def test_source_skips_dangling_link(tmp_path: Path) -> None:
    root = make_source(tmp_path)
    (root / "static" / "broken").symlink_to("no-such-file")

    listing = scan_source(root)
    assert "static/broken" not in listing.entries
    assert len(listing.warnings) == 1
    assert listing.warnings[0].startswith("static/broken:")
    assert "dangling" in listing.warnings[0]


@pytest.mark.parametrize(
    ("link", "target"),
    [("loop", "."), ("static/img/up", "../.."), ("static/img/self", "../img")],
)
def test_source_skips_link_loop(tmp_path: Path, link: str, target: str) -> None:
    root = make_source(tmp_path)
    (root / link).symlink_to(target)

    listing = scan_source(root, timeout=20)
    assert set(listing.entries) == {"index.html", "static", "static/img", "static/img/logo.png"}
    assert len(listing.warnings) == 1
    assert listing.warnings[0].startswith(f"{link}:")
    assert "loop" in listing.warnings[0]


def test_source_skips_link_chain_loop(tmp_path: Path) -> None:
    root = make_source(tmp_path)
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")

    listing = scan_source(root)
    assert set(listing.entries) == {"index.html", "static", "static/img", "static/img/logo.png"}
    assert sorted(w.split(":")[0] for w in listing.warnings) == ["ping", "pong"]
