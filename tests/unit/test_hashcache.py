"""The hash cache (trees/hashcache.py): trusted only while all five stat fields are the same,
never for a racily clean file, and a cache file that is anything but a whole, intact cache of
this directory, of ours, is ignored (never a traceback); written atomically, 0600 in 0700."""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import BinaryIO, cast

import pytest

from sftpmirror.engine.hashing import sha256_stream
from sftpmirror.trees import hashcache
from sftpmirror.trees.hashcache import HEAD, MAGIC, RECORD, HashCache, hash_file, key_of

FIELDS = ("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
DIGEST = hashlib.sha256(b"x").hexdigest()


def fake_stat(**fields: int) -> os.stat_result:
    values = dict.fromkeys(FIELDS, 1_000) | {"st_mode": stat.S_IFREG | 0o644} | fields
    return cast(os.stat_result, SimpleNamespace(**values))


def fresh(cache_dir: Path, root: Path) -> HashCache:
    """The cache as a new run sees it: loaded from the file alone."""
    cache = HashCache(cache_dir, str(root))
    cache.load()
    return cache


def filled(cache_dir: Path, root: Path, entries: int = 3) -> HashCache:
    cache = HashCache(cache_dir, str(root))
    for i in range(entries):
        st = fake_stat(st_ino=i)
        key = key_of(st)
        assert key is not None
        cache.store(f"page-{i}.html", key, DIGEST)
    cache.save()
    return cache


def test_a_saved_entry_is_found_by_a_new_run(hash_cache_dir: Path, tmp_path: Path) -> None:
    filled(hash_cache_dir, tmp_path)
    cache = fresh(hash_cache_dir, tmp_path)
    assert len(cache) == 3
    assert cache.lookup("page-1.html", fake_stat(st_ino=1)) == DIGEST
    assert cache.lookup("page-9.html", fake_stat(st_ino=9)) is None


@pytest.mark.parametrize("field", FIELDS)
def test_any_one_field_that_differs_is_a_miss(
    hash_cache_dir: Path, tmp_path: Path, field: str
) -> None:
    filled(hash_cache_dir, tmp_path)
    cache = fresh(hash_cache_dir, tmp_path)
    base = {"st_ino": 1}
    assert cache.lookup("page-1.html", fake_stat(**base)) == DIGEST
    changed = base | {field: (base.get(field, 1_000)) + 1}
    assert cache.lookup("page-1.html", fake_stat(**changed)) is None


def test_a_racily_clean_file_is_hashed_but_not_kept(tmp_path: Path) -> None:
    """Written within the margin before its hashing began: it could be written again in the
    same timestamp tick, unseen; its hash is right but not kept (key None)."""
    path = tmp_path / "page.html"
    path.write_bytes(b"<p>now</p>")
    began = hashcache.now_ns()
    hashed = hash_file(str(path), began)
    assert hashed.digest == hashlib.sha256(b"<p>now</p>").hexdigest()
    assert hashed.key is None
    later = hash_file(str(path), began + hashcache.RACY_MARGIN_NS + 1_000_000_000)
    assert later.key == key_of(path.stat())
    assert later.digest == hashed.digest


def test_a_file_written_while_it_is_hashed_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(b"<p>one</p>")
    st = path.stat()

    def rewriting(f: BinaryIO) -> tuple[str, int]:
        result = sha256_stream(f)
        path.write_bytes(b"<p>two</p>")  # same size, mtime put back: only the ctime tells
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return result

    monkeypatch.setattr(hashcache, "sha256_stream", rewriting)
    hashed = hash_file(str(path), hashcache.now_ns() + 10 * hashcache.RACY_MARGIN_NS)
    assert hashed.digest == hashlib.sha256(b"<p>one</p>").hexdigest()
    assert hashed.key is None


def _body(root: bytes, count: int, records: bytes, paths: bytes) -> bytes:
    body = MAGIC + struct.pack("<IQQ", len(root), count, len(paths)) + root + records + paths
    return body + hashlib.sha256(body).digest()


def _corrupt(kind: str, data: bytes, root: bytes) -> bytes:
    record = bytes(72)
    match kind:
        case "garbage":
            return b"not a cache at all\n" * 10
        case "empty":
            return b""
        case "truncated":
            return data[:-1]
        case "cut in half":
            return data[: len(data) // 2]
        case "root flipped":
            at = len(MAGIC) + HEAD.size + 1
            return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        case "digest flipped":  # only the checksum tells: it would vouch for other bytes
            at = len(MAGIC) + HEAD.size + len(root) + RECORD - 1
            return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        case "old format":
            return b"sftpmirror hash cache 0\n" + data[len(MAGIC) :]
        case "json":
            return b'{"page-1.html": "' + DIGEST.encode() + b'"}'
        case "another root":
            return _body(b"/somewhere/else", 1, record, b"a.html")
        case "count too large":  # checksum right, counts wrong: no giant allocation either
            return _body(root, 10**15, record, b"a.html")
        case "paths short":
            return _body(root, 2, record * 2, b"a.html")
        case "not utf-8":
            return _body(root, 1, record, b"\xff\xfe.html")
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "empty",
        "truncated",
        "cut in half",
        "root flipped",
        "digest flipped",
        "old format",
        "json",
        "another root",
        "count too large",
        "paths short",
        "not utf-8",
    ],
)
def test_a_damaged_cache_file_is_ignored(hash_cache_dir: Path, tmp_path: Path, kind: str) -> None:
    cache = filled(hash_cache_dir, tmp_path)
    data = cache.path.read_bytes()
    cache.path.write_bytes(_corrupt(kind, data, cache.root))
    again = fresh(hash_cache_dir, tmp_path)
    assert len(again) == 0
    assert again.lookup("page-1.html", fake_stat(st_ino=1)) is None
    # and a new save replaces it with a good one
    key = key_of(fake_stat())
    assert key is not None
    again.store("new.html", key, DIGEST)
    again.save()
    assert fresh(hash_cache_dir, tmp_path).lookup("new.html", fake_stat()) == DIGEST


def test_a_cache_file_too_large_is_not_read(
    hash_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = filled(hash_cache_dir, tmp_path, entries=50)
    size = cache.path.stat().st_size
    monkeypatch.setattr(hashcache, "MAX_BYTES", size - 1)
    assert len(fresh(hash_cache_dir, tmp_path)) == 0
    monkeypatch.setattr(hashcache, "MAX_BYTES", size)
    assert len(fresh(hash_cache_dir, tmp_path)) == 50


def test_too_many_entries_are_not_written(
    hash_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hashcache, "MAX_BYTES", 1_000)
    filled(hash_cache_dir, tmp_path, entries=50)  # about 4 KB: not saved, no error
    assert not list(hash_cache_dir.glob("*"))


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "group-writable", "not ours"])
def test_a_cache_path_that_is_not_a_private_file_of_ours_is_ignored(
    hash_cache_dir: Path, tmp_path: Path, kind: str
) -> None:
    cache = filled(hash_cache_dir, tmp_path)
    good = cache.path.read_bytes()
    cache.path.unlink()
    match kind:
        case "fifo":  # opening one for reading would block for good
            os.mkfifo(cache.path)
        case "symlink":
            (tmp_path / "elsewhere.bin").write_bytes(good)
            cache.path.symlink_to(tmp_path / "elsewhere.bin")
        case "directory":
            cache.path.mkdir()
        case "group-writable":
            cache.path.write_bytes(good)
            cache.path.chmod(0o664)
        case "not ours":  # another user's, planted where ours goes
            if os.geteuid() != 0:
                pytest.skip("giving a file to another user needs root")
            cache.path.write_bytes(good)
            cache.path.chmod(0o600)
            os.chown(cache.path, 12345, -1)
    loaded: list[HashCache] = []
    reading = threading.Thread(target=lambda: loaded.append(fresh(hash_cache_dir, tmp_path)))
    reading.start()
    reading.join(10)
    if reading.is_alive():  # blocked on the FIFO: let it go, and fail
        with open(cache.path, "wb"):
            pass
        reading.join()
        pytest.fail("the cache's load blocked on a FIFO")
    assert len(loaded[0]) == 0


def test_saved_atomically_private_in_a_private_directory(
    hash_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = filled(hash_cache_dir, tmp_path)
    assert stat.S_IMODE(hash_cache_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert [p.name for p in hash_cache_dir.iterdir()] == [cache.path.name]  # no temporary left
    before = cache.path.read_bytes()

    def cut(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    key = key_of(fake_stat(st_ino=99))
    assert key is not None
    cache.store("more.html", key, DIGEST)
    monkeypatch.setattr(os, "replace", cut)
    cache.save()  # no error: the run goes on
    assert cache.path.read_bytes() == before  # the old cache whole, not half a new one
    assert [p.name for p in hash_cache_dir.iterdir()] == [cache.path.name]


def test_concurrent_writers_leave_a_whole_cache(hash_cache_dir: Path, tmp_path: Path) -> None:
    def writer(n: int) -> None:
        for round_ in range(20):
            cache = HashCache(hash_cache_dir, str(tmp_path))
            for i in range(200):
                key = key_of(fake_stat(st_ino=i, st_size=n * 1000 + round_))
                assert key is not None
                cache.store(f"p{i}.html", key, DIGEST)
            cache.save()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fresh(hash_cache_dir, tmp_path)) == 200  # the last writer's, whole
    assert [p.name for p in hash_cache_dir.iterdir()] == [f"hashes-{_name(tmp_path)}.bin"]


def _name(root: Path) -> str:
    return hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:32]


@pytest.mark.parametrize("how", ["a file where the directory goes", "read-only file system"])
def test_an_unwritable_cache_directory_means_no_cache(
    hash_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "a file where the directory goes":
        hash_cache_dir.write_text("in the way")
    else:
        monkeypatch.setenv("SFTPMIRROR_CACHE_DIR", "/proc/sftpmirror-cache")
    cache = HashCache.of(tmp_path)
    assert cache is not None
    cache.load()  # nothing to read: empty, no error
    key = key_of(fake_stat())
    assert key is not None
    cache.store("a.html", key, DIGEST)
    cache.save()  # cannot write: no error either
    assert cache.lookup("a.html", fake_stat()) == DIGEST  # still good for this run


def test_entries_of_files_gone_are_dropped_on_write(hash_cache_dir: Path, tmp_path: Path) -> None:
    cache = filled(hash_cache_dir, tmp_path)
    key = key_of(fake_stat(st_ino=7))
    assert key is not None
    cache.store("page-7.html", key, DIGEST)
    cache.save(present={"page-0.html", "page-7.html", "never-cached.html"})
    assert sorted(fresh(hash_cache_dir, tmp_path)._entries) == ["page-0.html", "page-7.html"]


def test_a_save_keeps_what_an_earlier_run_cached(hash_cache_dir: Path, tmp_path: Path) -> None:
    filled(hash_cache_dir, tmp_path)
    cache = HashCache(hash_cache_dir, str(tmp_path))  # not loaded: learned from uploads only
    key = key_of(fake_stat(st_ino=7))
    assert key is not None
    cache.store("page-7.html", key, DIGEST)
    cache.save()
    assert len(fresh(hash_cache_dir, tmp_path)) == 4


def test_names_round_trip(hash_cache_dir: Path, tmp_path: Path) -> None:
    names = ["tags/日本語/index.html", "posts/second post/index.html", "a\u0301.html", "x" * 300]
    cache = HashCache(hash_cache_dir, str(tmp_path))
    for i, name in enumerate(names):
        key = key_of(fake_stat(st_ino=i, st_mtime_ns=-5, st_ctime_ns=2**62))
        assert key is not None
        cache.store(name, key, DIGEST)
    cache.save()
    again = fresh(hash_cache_dir, tmp_path)
    for i, name in enumerate(names):
        assert again.lookup(name, fake_stat(st_ino=i, st_mtime_ns=-5, st_ctime_ns=2**62))


def test_where_the_cache_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SFTPMIRROR_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hashcache.default_dir() == tmp_path / "xdg" / "sftpmirror"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    home = tmp_path / "home"
    darwin = home / "Library" / "Caches" / "sftpmirror"
    assert hashcache.default_dir() in (home / ".cache" / "sftpmirror", darwin)
    monkeypatch.setenv("SFTPMIRROR_CACHE_DIR", str(tmp_path / "mine"))
    assert hashcache.default_dir() == tmp_path / "mine"
    monkeypatch.setenv("SFTPMIRROR_NO_HASH_CACHE", "1")
    assert hashcache.default_dir() is None
    assert HashCache.of(tmp_path) is None
