"""LocalTree: the local side of a mirror (the source of a push, the destination of a pull).

As a source it follows symbolic links that stay inside the tree (a static site generator's
``static/`` links, say) and skips, with a warning, those that point outside, dangle, or loop.
As a destination it never follows a link: a link is an entry of its own, replaced or removed
like a file, so a pull cannot be steered into writing outside LOCAL_DIR.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, KeysView, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from stat import S_ISREG
from sys import intern
from typing import TypeVar

from sftpmirror.engine.hashing import as_known
from sftpmirror.engine.interned import PERMS, shared_mtime
from sftpmirror.engine.model import Entry, Kind, Listing, Refused
from sftpmirror.engine.tree import (
    FULL,
    MAX_DEPTH,
    Capabilities,
    Excludes,
    FileReader,
    FileWriter,
    Hint,
    Names,
    NoSpace,
    NotFound,
    OnSwap,
    PermissionDenied,
    TreeError,
    file_type_of,
    name_problem,
    shown,
    temp_name,
)
from sftpmirror.errors import UsageError
from sftpmirror.trees import hashcache
from sftpmirror.trees.hashcache import HashCache, Hashed, Tap

log = logging.getLogger(__name__)
T = TypeVar("T")

HASH_THREADS = min(8, (os.cpu_count() or 1) * 2)
POOL_FROM = 1 << 20  # files this large are hashed in the pool, smaller ones in one thread


def _tree_error(e: OSError) -> TreeError:
    message = e.strerror or str(e)
    if e.errno == errno.ENOENT:
        return NotFound(message)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionDenied(message)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return NoSpace(message)
    return TreeError(message)


@contextmanager
def _mapped() -> Iterator[None]:
    """The Tree error contract's error in place of an OSError."""
    try:
        yield
    except OSError as e:
        raise _tree_error(e) from None


class _Reader:
    def __init__(self, fd: int, tap: Tap | None) -> None:
        self._fd = fd
        self._tap = tap

    async def read(self, size: int, offset: int) -> bytes:
        with _mapped():
            return await asyncio.to_thread(self._read, size, offset)

    def _read(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        if self._tap is not None:
            self._tap.feed(offset, data)
        return data


class _Writer:
    mtime: int | None = None  # the one asked is the one set

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, data: bytes, offset: int) -> int:
        with _mapped():
            return await asyncio.to_thread(_pwrite_all, self._fd, data, offset)


def _pwrite_all(fd: int, data: bytes, offset: int) -> int:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written
    return len(data)


async def _to_the_end(call: Callable[..., T], *args: object) -> T:
    """``asyncio.to_thread``, except that a cancellation waits for the call to end: it works
    on a file descriptor the canceller closes next (closed under it, the number could be
    another file's by then)."""
    job = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        if not job.cancelled():
            job.exception()  # retrieved: the cancellation is what is raised
        raise


class _NewFile:
    """A file being made at a temporary name (``open_write``), in as few thread calls as it
    can: the first write is held until a second comes or the file is done, so a file written
    in one piece (most files of a site, in a pull) is created, written, given its mode and
    mtime, closed and renamed into place in one call (``finish``) where it took four. A file
    of more pieces is created at its second write; each piece is written in a call of its
    own."""

    mtime: int | None = None  # the one asked is the one set

    def __init__(self, tmp: str, mode: int) -> None:
        self.tmp = tmp
        self._mode = mode
        self._fd: int | None = None
        self.created = False  # the temporary is ours to remove
        self._held: tuple[bytes, int] | None = None
        self._writing = False  # a write came after the held one: the file is open from now
        self._opening = asyncio.Lock()

    async def write(self, data: bytes, offset: int) -> int:
        if not self._writing and self._held is None:
            self._held = (data, offset)
            return len(data)
        self._writing = True
        with _mapped():
            async with self._opening:
                if self._fd is None:
                    await _to_the_end(self._create)
            assert self._fd is not None
            return await _to_the_end(_pwrite_all, self._fd, data, offset)

    def _create(self) -> int:
        """Open the temporary (exclusively: never someone else's) and write what was held."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        if self._fd is None:
            self._fd = os.open(self.tmp, flags, self._mode)
            self.created = True
        if self._held is not None:
            _pwrite_all(self._fd, *self._held)
            self._held = None
        return self._fd

    def finish(self, mode: int | None, mtime: int, final: str, aside: str | None) -> None:
        """In a thread: the file complete, given its mode and mtime, closed and in place."""
        fd = self._create()
        if mode is not None:
            os.fchmod(fd, mode)
        os.utime(fd, (mtime, mtime))
        self._fd = None
        os.close(fd)
        _replace(self.tmp, final, aside)
        self.created = False

    def discard(self) -> None:
        """The file abandoned: closed, and the temporary removed if it is ours."""
        self._held = None
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)
        if self.created:
            with suppress(OSError):
                os.unlink(self.tmp)


class LocalTree:
    """``hash_cache``: keep the hashes of this directory's files between runs
    (``trees/hashcache.py``), so files whose stat has not changed are not read again."""

    cheap_hashes = True

    def __init__(self, root: Path, *, follow_symlinks: bool, hash_cache: bool = True) -> None:
        self.root = root
        self.label = str(root)
        self._prefix = os.path.join(root, "")  # + a relative path: os.path.join(root, it)
        self.follow_symlinks = follow_symlinks
        self.names = Names()
        self.hash_cache = HashCache.of(root) if hash_cache else None
        self._files: KeysView[str] | None = None  # the paths of the last scan
        # Files whose stat at the last scan was the one the hash cache holds: known without
        # another stat (the hash matches the size and mtime the scan listed).
        self._fresh: set[str] = set()

    def save_hash_cache(self) -> None:
        """Write back the hashes learned since the last save (those of files uploaded: the
        engine's ``hash_files`` saves its own); the entries of files gone are dropped."""
        if self.hash_cache is not None:
            self.hash_cache.save(self._files)

    async def capabilities(self) -> Capabilities:
        return FULL

    async def hash_files(
        self, paths: Sequence[str], known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Hash off the event loop, streaming each file; big files in parallel threads."""
        return await asyncio.to_thread(self._hash_files, list(paths), known)

    def _hash_files(self, paths: list[str], known: Mapping[str, str] | None) -> dict[str, str]:
        """Small files one after the other in this thread: handing each to a pool cost three
        times the CPU (0.17 s against 0.06 s for a 1,281-file site), all of it under the GIL
        the event loop needs. Big files go to the pool, where hashlib runs without the GIL.
        A file whose stat is the one the hash cache holds is not read at all; one whose stat
        at the scan was (the scan loads the cache) is not even looked at again."""
        if not paths:
            return {}
        cache = self.hash_cache
        if cache is not None:
            cache.load()
        since = hashcache.now_ns()  # before any stat: what is older than this is settled
        hashes: dict[str, str] = {}
        pending: deque[Future[tuple[str, Hashed | None]]] = deque()
        cached = 0
        fresh = self._fresh

        def one(path: str) -> tuple[str, Hashed | None]:
            try:
                return path, hashcache.hash_file(self._full(path), since)
            except OSError:
                return path, None

        def keep(path: str, hashed: Hashed | None) -> None:
            if hashed is None:
                return
            hashes[path] = as_known(path, hashed.digest, known)
            if cache is not None and hashed.key is not None:
                cache.store(path, hashed.key, hashed.digest)

        with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
            for path in paths:
                if path in fresh and cache is not None and (digest := cache.digest(path)):
                    hashes[path] = as_known(path, digest, known)
                    cached += 1
                    continue
                try:
                    st = os.stat(self._full(path))
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):  # no longer a file (a FIFO could block)
                    continue
                if cache is not None and (digest := cache.lookup(path, st)) is not None:
                    hashes[path] = as_known(path, digest, known)
                    cached += 1
                    continue
                if st.st_size < POOL_FROM:
                    keep(*one(path))
                    continue
                pending.append(pool.submit(one, path))
                if len(pending) >= 2 * HASH_THREADS:  # bounded: never a future per file
                    keep(*pending.popleft().result())
            while pending:
                keep(*pending.popleft().result())
        log.debug(
            "local hashes: %d of %d file(s) read, %d from the hash cache",
            len(hashes) - cached, len(paths), cached,
        )  # fmt: skip
        if cache is not None:
            cache.save(self._files)
        return hashes

    def _full(self, path: str) -> str:
        return self._prefix + self.names.real(path) if path else str(self.root)

    async def scan(self, excludes: Excludes, hint: Hint | None = None) -> Listing:
        return await asyncio.to_thread(self._scan, excludes)

    def _scan(self, excludes: Excludes) -> Listing:
        listing = Listing()
        try:
            top = os.stat(self.root)
        except FileNotFoundError:
            listing.root_exists = False
            return listing
        except OSError as e:
            raise UsageError(f"cannot read {self.root}: {e.strerror}") from None
        if not stat.S_ISDIR(top.st_mode):
            raise UsageError(f"not a directory: {self.root}")
        real_root = os.path.realpath(self.root)
        entries, excluded = listing.entries, listing.excluded
        cache = self.hash_cache
        if cache is not None:
            cache.load()  # (in this thread, beside the remote listing)
        fresh: set[str] = set()
        stack: list[tuple[str, tuple[str, ...]]] = [("", (real_root,))]
        while stack:
            rel_dir, ancestors = stack.pop()
            try:
                with os.scandir(self._full(rel_dir)) as it:
                    items = list(it)
            except OSError as e:
                listing.unreadable[rel_dir] = f"cannot list directory: {e.strerror}"
                continue
            prefix = f"{rel_dir}/" if rel_dir else ""
            plain_dir = self.names.real(rel_dir) == rel_dir
            for item in items:
                name = item.name
                # A plain file (printable ASCII name, so NFC, not taken, in a directory named
                # as it is on disk) is made here, as _entry() would make it; the rest goes
                # the long way.
                if (
                    plain_dir
                    and name.isascii()
                    and name.isprintable()
                    and (rel := intern(prefix + name)) not in entries
                    and rel not in excluded
                    and item.is_file(follow_symlinks=False)
                ):
                    try:
                        st = item.stat(follow_symlinks=False)
                    except OSError:
                        st = None
                    if st is not None and S_ISREG(st.st_mode):
                        entry = Entry(
                            rel, Kind.FILE, st.st_size, shared_mtime(int(st.st_mtime)),
                            PERMS[st.st_mode & 0o7777],
                        )  # fmt: skip
                        if excludes(rel, False):
                            excluded.add(rel)
                            continue
                        entries[rel] = entry
                        if cache is not None and cache.holds(rel, st):
                            fresh.add(rel)
                        continue
                if problem := name_problem(name):
                    self._refuse(item, rel_dir, problem, real_root, ancestors, listing)
                    continue
                rel = self.names.child(rel_dir, name)
                if listing.twin(rel):
                    continue
                found = self._entry(item, rel, real_root, ancestors, listing)
                if found is None:
                    continue
                entry = found
                if excludes(rel, entry.kind is Kind.DIR):
                    excluded.add(rel)
                    continue
                entries[rel] = entry
                if entry.kind is Kind.DIR and entry.depth >= MAX_DEPTH:
                    listing.unreadable[rel] = f"nested deeper than {MAX_DEPTH} levels: not read"
                elif entry.kind is Kind.DIR:
                    # A directory that is not a link is where its parent (ancestors[-1], a
                    # real path) says: realpath() would lstat every component again.
                    real = (
                        os.path.realpath(item.path)
                        if item.is_symlink()
                        else os.path.join(ancestors[-1], item.name)
                    )
                    stack.append((rel, (*ancestors, real)))
        self._files = listing.entries.keys()  # (a view: no second table of 100,000 paths)
        self._fresh = fresh
        return listing

    def _refuse(
        self,
        item: os.DirEntry[str],
        rel_dir: str,
        problem: str,
        real_root: str,
        ancestors: tuple[str, ...],
        listing: Listing,
    ) -> None:
        """A name no tree may deploy: refused here, as the remote scan would (F2, F3)."""
        utf8 = problem != "is not valid UTF-8"
        rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
        key = rel if utf8 else shown(rel)  # bytes that are not UTF-8 never reach a path
        scratch = Listing()
        entry = self._entry(item, rel, real_root, ancestors, scratch) if utf8 else None
        entry = entry or Entry(key, Kind.FILE)
        listing.refused[key] = Refused(entry, f"name refused: it {problem}", deletable=utf8)

    def _entry(
        self,
        item: os.DirEntry[str],
        rel: str,
        real_root: str,
        ancestors: tuple[str, ...],
        listing: Listing,
    ) -> Entry | None:
        try:
            st = item.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if not self.follow_symlinks:
                    return Entry(rel, Kind.SYMLINK, mtime=int(st.st_mtime))
                target = os.path.realpath(item.path)
                if os.path.commonpath([real_root, target]) != real_root:
                    listing.warnings.append(
                        f"{rel}: symbolic link points outside the tree, skipped"
                    )
                    return None
                if target in ancestors:
                    listing.warnings.append(f"{rel}: symbolic link loop, skipped")
                    return None
                try:
                    st = os.stat(item.path)
                except OSError as e:
                    if e.errno != errno.ELOOP:
                        raise
                    listing.warnings.append(f"{rel}: symbolic link loop, skipped")
                    return None
        except FileNotFoundError:
            listing.warnings.append(f"{rel}: dangling symbolic link, skipped")
            return None
        except OSError as e:
            listing.unreadable[rel] = f"cannot read: {e.strerror}"
            return None
        mode, when = PERMS[st.st_mode & 0o7777], shared_mtime(int(st.st_mtime))
        if stat.S_ISDIR(st.st_mode):
            return Entry(rel, Kind.DIR, mtime=when, mode=mode)
        if stat.S_ISREG(st.st_mode):
            return Entry(rel, Kind.FILE, size=st.st_size, mtime=when, mode=mode)
        listing.warnings.append(f"{rel}: not a regular file or directory, skipped")
        return None

    async def file_type(self, path: str) -> str | None:
        found = await self.kind_and_size(path)
        return found[0] if found is not None else None

    async def kind_and_size(self, path: str) -> tuple[str, int] | None:
        try:
            st = await asyncio.to_thread(os.lstat, self._full(path))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _tree_error(e) from None
        return file_type_of(st.st_mode), st.st_size

    async def mkdir(self, entry: Entry, *, perms: bool) -> None:
        with _mapped():
            await self._mkdir(entry, perms=perms)

    async def _mkdir(self, entry: Entry, *, perms: bool) -> None:
        path = self._full(entry.path)
        if not entry.path:
            await asyncio.to_thread(os.makedirs, path, exist_ok=True)
            return
        if not perms:  # this machine's umask decides
            await asyncio.to_thread(os.mkdir, path, 0o777)
            return
        await asyncio.to_thread(_mkdir_private, path, entry.mode & 0o777)

    async def set_attrs(self, entry: Entry, *, perms: bool) -> None:
        path = self._full(entry.path)
        with _mapped():
            if perms:
                await asyncio.to_thread(os.chmod, path, entry.mode & 0o777, follow_symlinks=False)
            if entry.kind is Kind.FILE:
                await asyncio.to_thread(
                    os.utime, path, (entry.mtime, entry.mtime), follow_symlinks=False
                )

    async def remove(self, entry: Entry) -> None:
        with _mapped():
            await asyncio.to_thread(os.unlink, self._full(entry.path))

    async def rmdir(self, entry: Entry) -> None:
        with _mapped():
            await asyncio.to_thread(os.rmdir, self._full(entry.path))

    @asynccontextmanager
    async def open_read(self, path: str, size: int | None = None) -> AsyncIterator[FileReader]:
        """A file read whole (an upload) is hashed on the way for the hash cache, unless the
        cache already holds it: the next run need not read it again."""
        cache = self.hash_cache
        if cache is not None and not cache.loaded:
            await asyncio.to_thread(cache.load)
        with _mapped():
            fd = await asyncio.to_thread(os.open, self._full(path), os.O_RDONLY)
        tap = Tap.start(cache, path, fd) if cache is not None else None
        try:
            yield _Reader(fd, tap)
        finally:
            if tap is not None:
                tap.finish(fd)
            os.close(fd)

    async def rename(self, old: str, new: str) -> None:
        source, target = self._full(old), self._full(new)
        with _mapped():
            if await asyncio.to_thread(os.path.lexists, target):
                raise TreeError(f"{new} exists")
            await asyncio.to_thread(os.rename, source, target)

    async def link(self, old: str, new: str) -> None:
        with _mapped():
            await asyncio.to_thread(os.link, self._full(old), self._full(new))

    async def link_into_place(self, source: str, final: str, *, tag: str) -> None:
        target = self._full(final)
        directory, name = os.path.split(target)
        tmp = os.path.join(directory, temp_name(name, tag))
        with _mapped():
            await asyncio.to_thread(os.link, self._full(source), tmp)
            try:
                await asyncio.to_thread(os.replace, tmp, target)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise

    async def symlink(self, target: str, path: str) -> None:
        with _mapped():
            await asyncio.to_thread(os.symlink, target, self._full(path))

    async def readlink(self, path: str) -> str:
        with _mapped():
            return await asyncio.to_thread(os.readlink, self._full(path))

    async def move_into_place(self, source: str, final: str, *, aside: str | None) -> None:
        target = self._full(final)
        with _mapped():
            keep = self._full(aside) if aside is not None else None
            await asyncio.to_thread(_replace, self._full(source), target, keep)

    @asynccontextmanager
    async def open_log(self, path: str) -> AsyncIterator[FileWriter]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with _mapped():
            fd = await asyncio.to_thread(os.open, self._full(path), flags, 0o600)
        try:
            yield _Writer(fd)
        finally:
            os.close(fd)

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
        """``os.replace`` is atomic here: ``on_swap`` is never needed (nor ``aside``: a local
        tree links; it is honoured all the same)."""
        final = self._full(entry.path)
        directory, name = os.path.split(final)
        new = _NewFile(os.path.join(directory, temp_name(name, tag)), 0o600 if perms else 0o666)
        try:
            yield new
            keep = self._full(aside) if aside is not None else None
            mode = entry.mode & 0o777 if perms else None
            with _mapped():
                await _to_the_end(new.finish, mode, entry.mtime, final, keep)
        except BaseException:
            new.discard()
            raise


def _mkdir_private(path: str, mode: int) -> None:
    """A directory made private, then given ``mode`` (which the umask does not touch)."""
    os.mkdir(path, 0o700)
    os.chmod(path, mode)


def _replace(source: str, final: str, aside: str | None) -> None:
    """``source`` renamed over ``final``; with ``aside``, the file at ``final`` (if any) renamed
    there first, and back if ``source`` cannot go in."""
    moved = False
    if aside is not None:
        with suppress(FileNotFoundError):
            os.rename(final, aside)
            moved = True
    try:
        os.replace(source, final)
    except BaseException:
        if moved and aside is not None:
            with suppress(OSError):
                os.rename(aside, final)
        raise
