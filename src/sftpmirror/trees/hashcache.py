"""A local cache of content hashes, so a run that changed nothing reads no file bodies (issue 19).

As git's index does, a file's SHA-256 is kept with five fields of its ``stat``: ``st_dev``,
``st_ino``, ``st_size``, ``st_mtime_ns`` and ``st_ctime_ns``, and trusted only while all five
are the same. Any write to a file moves its ctime, and nobody can set a ctime back (``utime``
sets the mtime and atime only), so an edit that keeps the size and restores the mtime is still
seen; a file replaced by another (a new inode) is seen by its inode. (FAT has no change time:
there, as with git, such an edit goes unseen.)

**Racily clean files.** Timestamps have a granularity (the kernel's clock tick in practice;
1 s on ext3 and HFS+, 2 s on FAT): a file written twice within one tick keeps the same times,
so a hash taken between the two writes would vouch for bytes it never read. As git does, only
a file whose mtime and ctime are both older than the moment its hashing began, by
``RACY_MARGIN_NS`` (2 s, the coarsest granularity above), is kept: any later write lands on a
later tick and changes the key. A younger file is hashed again on each run until it is old
enough to be kept. (File times are compared with this machine's clock: a network file system
whose server lags it by more than the margin, with coarse timestamps too, could defeat this;
``SFTPMIRROR_NO_HASH_CACHE=1`` there.) A file is kept only when it was read whole and
``fstat`` before and after the read agree (one written while it was hashed is not kept). A file
uploaded is hashed as it is read (``Tap``), under the same rules, so the run after an upload
reads nothing either.

**The cache file**: one per local directory, ``hashes-<first 32 hex digits of the SHA-256 of
its realpath>.bin`` in ``$SFTPMIRROR_CACHE_DIR``, else ``$XDG_CACHE_HOME/sftpmirror``, else
``~/.cache/sftpmirror`` (``~/Library/Caches/sftpmirror`` on macOS);
``SFTPMIRROR_NO_HASH_CACHE=1`` turns it off. The layout, little-endian::

    MAGIC | root length u32, count u64, paths length u64 | root (the realpath's bytes)
    | count records of dev u64, ino u64, size u64, mtime_ns i64, ctime_ns i64, SHA-256 (32 bytes)
    | the paths, UTF-8, joined by NUL | SHA-256 of all the above

(100,000 entries of 60-character paths: 13 MB, loaded in 85 ms, saved in 75 ms.) The file is
input, not trusted: one that is not a regular file of ours (owner, no group or world write),
larger than ``MAX_BYTES``, of another format or root, or whose checksum fails (truncated, torn
by a crash, edited) is ignored whole, never a traceback. It is written to a temporary name
(mode 0600, in a 0700 directory) and renamed over the old one: concurrent runs never tear it,
the last writer wins. A write drops the entries of files the last scan did not find. Where the
directory cannot be made or written, the run goes on without the cache (said in ``--debug``
only).
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from sys import intern

from sftpmirror.engine.hashing import sha256_stream

log = logging.getLogger(__name__)

MAGIC = b"sftpmirror hash cache 1\n"
HEAD = struct.Struct("<IQQ")  # root length, entry count, paths length
KEY = struct.Struct("<QQQqq")  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
DIGEST = 32
RECORD = KEY.size + DIGEST
MAX_BYTES = 256 << 20  # a cache file larger than this is not read (about 2.5 million files)
RACY_MARGIN_NS = 2_000_000_000


def now_ns() -> int:
    """The wall clock file times are compared with (a name of its own: tests move it)."""
    return time.time_ns()


def key_of(st: os.stat_result) -> bytes | None:
    """The five fields a cached hash is trusted by, packed (None: out of range, not cached)."""
    try:
        return KEY.pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    except struct.error:
        return None


def settled(st: os.stat_result, since_ns: int) -> bool:
    """Were the file's last change and write a safe margin before ``since_ns`` (not racy)?"""
    return max(st.st_mtime_ns, st.st_ctime_ns) < since_ns - RACY_MARGIN_NS


@dataclass(frozen=True, slots=True)
class Hashed:
    digest: str
    key: bytes | None  # None: not to be cached (changed while read, or too recent)


def hash_file(path: str, since_ns: int) -> Hashed:
    """Hash a file, streaming; its key only when the file may be cached: read whole, the same
    before and after the read, and settled before ``since_ns`` (when this hashing began)."""
    with open(path, "rb") as f:
        before = os.fstat(f.fileno())
        digest, size = sha256_stream(f)
        after = os.fstat(f.fileno())
    key = key_of(before)
    if key != key_of(after) or size != before.st_size or not settled(before, since_ns):
        key = None
    return Hashed(digest, key)


class Tap:
    """Hashes what a reader serves (a file uploaded), so the next run need not read it again:
    kept only when the reads ran in order from 0 to the end and the file did not change."""

    def __init__(self, cache: HashCache, path: str, before: os.stat_result, since: int) -> None:
        self.cache, self.path, self.before, self.since = cache, path, before, since
        self._digest: hashlib._Hash | None = hashlib.sha256()
        self._end = 0
        self._lock = threading.Lock()

    @classmethod
    def start(cls, cache: HashCache, path: str, fd: int) -> Tap | None:
        """A tap for the file just opened; None where the cache holds it already."""
        since = now_ns()
        try:
            before = os.fstat(fd)
        except OSError:
            return None
        if not stat.S_ISREG(before.st_mode) or cache.lookup(path, before) is not None:
            return None
        return cls(cache, path, before, since)

    def feed(self, offset: int, data: bytes) -> None:
        """Called from the reading thread with what ``offset`` gave."""
        with self._lock:
            if self._digest is None:
                return
            if offset != self._end:  # out of order: this read proves nothing
                self._digest = None
                return
            self._digest.update(data)
            self._end += len(data)

    def finish(self, fd: int) -> None:
        """Before the file is closed: keep the hash when it is the whole, unchanged file."""
        with self._lock:
            digest, end = self._digest, self._end
            self._digest = None
        if digest is None or end != self.before.st_size:
            return
        try:
            after = os.fstat(fd)
        except OSError:
            return
        key = key_of(self.before)
        if key is not None and key == key_of(after) and settled(self.before, self.since):
            self.cache.store(self.path, key, digest.hexdigest())


def default_dir() -> Path | None:
    """Where cache files go (None: turned off)."""
    if os.environ.get("SFTPMIRROR_NO_HASH_CACHE", "") not in ("", "0"):
        return None
    if chosen := os.environ.get("SFTPMIRROR_CACHE_DIR"):
        return Path(chosen)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec: a relative path is to be ignored
        return Path(xdg) / "sftpmirror"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no $HOME and no password entry: no cache
        return None
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "sftpmirror"
    return home / ".cache" / "sftpmirror"


class HashCache:
    """The cached hashes of one local directory's files, by path relative to it. Loaded once
    (``load``: by the local scan, which checks each file's stat against it as it goes), written
    back by ``save`` when something was added."""

    def __init__(self, directory: Path, root: str) -> None:
        self.root = os.fsencode(os.path.realpath(root))
        name = hashlib.sha256(self.root).hexdigest()[:32]
        self.directory = directory
        self.path = directory / f"hashes-{name}.bin"
        self.loaded = False
        self._entries: dict[str, bytes] = {}  # path → packed key + raw digest
        self._dirty = False
        self._lock = threading.Lock()

    @classmethod
    def of(cls, root: str | os.PathLike[str]) -> HashCache | None:
        directory = default_dir()
        return None if directory is None else cls(directory, os.fspath(root))

    def __len__(self) -> int:
        return len(self._entries)

    def load(self) -> None:
        """Read the cache file once; anything wrong with it leaves the cache empty."""
        with self._lock:
            if self.loaded:
                return
            began = time.monotonic()
            data = _read_own(self.path)
            entries = _parse(data, self.root) if data is not None else None
            if data is not None and entries is None:
                log.debug("hash cache %s: not a cache of this directory, ignored", self.path)
            self._entries = {**(entries or {}), **self._entries}  # what was stored meanwhile
            self.loaded = True
            log.debug(
                "hash cache: %d entries from %s in %.3fs",
                len(entries or ()), self.path, time.monotonic() - began,
            )  # fmt: skip

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        """The hash of ``path`` when its stat is the one it was cached with, else None."""
        record = self._entries.get(path)
        if record is None or record[: KEY.size] != key_of(st):
            return None
        return record[KEY.size :].hex()

    def holds(self, path: str, st: os.stat_result) -> bool:
        """Is ``path`` cached with this stat? (``lookup`` without making the hash's text.)"""
        record = self._entries.get(path)
        return record is not None and record[: KEY.size] == key_of(st)

    def digest(self, path: str) -> str | None:
        """The hash cached for ``path``, whatever its stat (for a file ``holds`` vouched for)."""
        record = self._entries.get(path)
        return None if record is None else record[KEY.size :].hex()

    def store(self, path: str, key: bytes, digest: str) -> None:
        with self._lock:
            self._entries[path] = key + bytes.fromhex(digest)
            self._dirty = True

    def save(self, present: Collection[str] | None = None) -> None:
        """Write the cache back (atomically) when something was added; ``present``: the files
        the tree holds now (the others' entries are dropped). Never raises for the disk."""
        if not self._dirty:
            return
        if not self.loaded:
            self.load()  # the entries of the files not read this run are kept too
        with self._lock:
            if not self._dirty:
                return
            if present is not None:
                self._entries = {p: r for p, r in self._entries.items() if p in present}
            entries = dict(self._entries)
            self._dirty = False
        began = time.monotonic()
        data = _serialize(self.root, entries)
        if len(data) > MAX_BYTES:
            log.debug(
                "hash cache: %d entries make %d bytes, too many: not saved", len(entries), len(data)
            )
            return
        try:
            _write_atomically(self.directory, self.path, data)
        except OSError as e:
            log.debug("hash cache: not saved to %s (%s)", self.path, e.strerror or e)
            return
        log.debug(
            "hash cache: %d entries saved to %s in %.3fs",
            len(entries), self.path, time.monotonic() - began,
        )  # fmt: skip


def _serialize(root: bytes, entries: dict[str, bytes]) -> bytes:
    paths = "\0".join(entries).encode("utf-8", "surrogatepass")
    body = b"".join(
        (MAGIC, HEAD.pack(len(root), len(entries), len(paths)), root, *entries.values(), paths)
    )
    return body + hashlib.sha256(body).digest()


def _parse(data: bytes | bytearray, root: bytes) -> dict[str, bytes] | None:
    """The entries of a cache file's bytes, or None for anything but a whole, intact cache of
    ``root`` (read through a view: the file's bytes are not copied whole again)."""
    start = len(MAGIC) + HEAD.size
    view = memoryview(data)
    if len(view) < start + DIGEST or view[: len(MAGIC)] != MAGIC:
        return None
    body = view[:-DIGEST]
    if hashlib.sha256(body).digest() != view[-DIGEST:]:
        return None
    root_len, count, paths_len = HEAD.unpack_from(body, len(MAGIC))
    records = start + root_len
    blob = records + count * RECORD
    if body[start:records] != root or blob + paths_len != len(body):
        return None
    try:
        text = str(body[blob:], "utf-8", "surrogatepass") if count else ""
        paths = [intern(path) for path in text.split("\0")] if count else []
    except UnicodeDecodeError:
        return None
    if len(paths) != count or (count == 0 and paths_len):
        return None
    found = (body[i : i + RECORD].tobytes() for i in range(records, blob, RECORD))
    return dict(zip(paths, found, strict=True))


def _read_own(path: Path) -> bytearray | None:
    """The file's bytes when it is a regular file of ours that nobody else may write and not
    larger than ``MAX_BYTES``; None otherwise (missing, a link, a FIFO, someone else's, or one
    that changes size while it is read)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if not isinstance(e, FileNotFoundError):
            log.debug("hash cache %s: cannot open (%s)", path, e.strerror or e)
        return None
    try:
        st = os.fstat(fd)
        ours = not hasattr(os, "geteuid") or st.st_uid == os.geteuid()
        if not stat.S_ISREG(st.st_mode) or not ours or st.st_mode & 0o022:
            log.debug("hash cache %s: not a private regular file of ours, ignored", path)
            return None
        if st.st_size > MAX_BYTES:
            log.debug("hash cache %s: %d bytes, too large, ignored", path, st.st_size)
            return None
        data = bytearray(st.st_size + 1)  # one byte more: a file that grew is seen
        view, got = memoryview(data), 0
        while got < len(data) and (n := os.readv(fd, [view[got:]])):
            got += n
        if got != st.st_size:
            return None
        del view
        del data[got:]
        return data
    except OSError as e:
        log.debug("hash cache %s: cannot read (%s)", path, e.strerror or e)
        return None
    finally:
        os.close(fd)


def _write_atomically(directory: Path, path: Path, data: bytes) -> None:
    """A temporary file beside ``path`` (0600), renamed over it: a reader sees the old cache
    or the new one. No fsync: a file a crash tore fails its checksum and is ignored."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hashes-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
