"""RemoteTree: the SFTP side, over one SFTP session (many requests in flight).

Directory scans run concurrently; every name the server lists is checked before it is used
(a hostile or broken server must not make a pull write outside LOCAL_DIR). It talks to the
server through a ``transport.session.Session``, which raises only the Tree error contract's
errors; a listing that cannot be made becomes ``RemoteError`` here (the run cannot go on).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from stat import S_ISDIR, S_ISREG
from sys import intern
from typing import Any, TypeVar

from sftpmirror.engine.concurrency import run_pool, task_group
from sftpmirror.engine.hashing import HASH_CHUNK, as_known
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
    ServerFailure,
    TreeError,
    Unsupported,
    backup_name,
    file_type_of,
    name_problem,
    new_tag,
    read_chunks,
    shown,
    temp_name,
)
from sftpmirror.errors import RemoteError, SftpMirrorError
from sftpmirror.transport.profile import probe_names
from sftpmirror.transport.session import Listed, Session, Writer

# A server out of file descriptors (sftp-server holds one per open file or directory) answers
# an open with a bare "Failure". Opens that get one are tried again while other requests
# finish: after 20 ms, then twice as long each time, eight times (5.1 s in all).
BUSY_RETRIES = 8
BUSY_FIRST_WAIT = 0.02

T = TypeVar("T")
log = logging.getLogger("sftpmirror.remote")


_NOT_NAMES = ("", ".", "..")


class _Walk:
    """The directories a scan found whose listing is not taken in yet; ``over`` once none is."""

    def __init__(self) -> None:
        self.pending = 0
        self.over = asyncio.Event()

    def done_one(self) -> None:
        self.pending -= 1
        if not self.pending:
            self.over.set()


def _plain_path(path: str) -> bool:
    """Printable ASCII, no empty, ``.`` or ``..`` component: the name a listing would give."""
    return (
        path.isascii()
        and path.isprintable()
        and not any(part in _NOT_NAMES for part in path.split("/"))
    )


def _unsafe_name(name: str) -> str | None:
    """A name no server should list: it would lead a pull outside LOCAL_DIR."""
    if name in _NOT_NAMES:
        return "is not a file name"
    if "/" in name or "\0" in name:
        return "contains '/' or NUL"
    return None


class RemoteTree:
    cheap_hashes = False

    def __init__(
        self,
        session: Session,
        root: str,
        label: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.session = session
        self.root = root
        self.label = label
        self.warn = warn
        self.names = Names()
        self._posix_rename = True
        self._retry_failures = True
        self._caps: Capabilities | None = None
        self._probe_tag = new_tag()
        self._probe_names = frozenset(probe_names(self._probe_tag))  # a scan skips them
        self._probing = asyncio.Lock()
        # Every handle this tree opens (a listing, a read, a write) holds a slot: a server
        # that states a limit is kept under it, one that does not under DEFAULT_HANDLES.
        self._slots = asyncio.Semaphore(session.profile.max_handles)

    async def capabilities(self) -> Capabilities:
        """The server's profile, probed once in the tree's root (which must exist: until it
        does, a deploy's defaults are assumed and the probe is tried again next time)."""
        if self._caps is not None:
            return self._caps
        async with self._probing:
            if self._caps is not None:
                return self._caps
            profile = await self.session.probe(self._full(""), self._probe_tag)
            said = profile.warnings()
            if self.warn is not None:
                for line in said:
                    self.warn(line)
            for line in [*profile.adapted(), *profile.notes]:
                if line not in said:
                    log.debug("%s: %s", self.label, line)
            caps = Capabilities(
                chmod=profile.chmod is not False,
                create_mode=profile.create_mode is not False,
                default_mode=profile.default_mode,
                mtimes=profile.mtimes is not False,
                sequential_writes=profile.sequential_writes,
                links=profile.hardlink is not False,
            )
            if profile.probed or not profile.notes:  # (not probed, and no reason: never is)
                self._caps = caps
            return caps

    async def _retry_busy(self, open_: Callable[[], Awaitable[T]]) -> T:
        """``open_()``, tried again on a generic Failure (see BUSY_RETRIES); other errors at
        once. An open still failing after every retry is not for want of descriptors (a
        read-only or full file system answers the same way): from then on, no retries, so
        such a run fails at once for its other files too, not 5 s per file."""
        wait = BUSY_FIRST_WAIT
        for _ in range(BUSY_RETRIES):
            if not self._retry_failures:
                break
            try:
                return await open_()
            except ServerFailure:
                await asyncio.sleep(wait)
                wait *= 2
        try:
            return await open_()
        except ServerFailure:
            self._retry_failures = False
            raise

    async def hash_files(
        self, paths: Sequence[str], known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Download and hash (``--verify``): the server has no shell to hash for us."""
        hashes: dict[str, str] = {}

        async def one(path: str) -> None:
            digest = hashlib.sha256()
            try:
                async with self.open_read(path) as reader:
                    async for data in read_chunks(reader, HASH_CHUNK):
                        digest.update(data)
            except TreeError:
                return
            hashes[path] = as_known(path, digest.hexdigest(), known)

        await run_pool(paths, one, self.session.profile.max_handles)
        return hashes

    def _full(self, path: str) -> str:
        if not path:
            return self.root or "."
        real = self.names.real(path)
        return posixpath.join(self.root, real) if self.root else real

    async def scan(self, excludes: Excludes, hint: Hint | None = None) -> Listing:
        listing = Listing()
        # Listings asked ahead of the walk (see _ahead): directory -> its names, None if the
        # listing failed (the walk then asks again, and says why).
        ahead: dict[str, asyncio.Task[list[Listed] | None]] = {}
        walk = _Walk()
        async with task_group() as group:

            async def list_dir(rel_dir: str) -> None:
                names: list[Listed] | None = None
                try:
                    if (early := ahead.pop(rel_dir, None)) is not None:
                        names = await early
                    if names is None:  # (at most the tree's handle slots at once)
                        names = await self._readdir(rel_dir)
                    take(rel_dir, names)
                finally:
                    walk.done_one()

            def take(rel_dir: str, names: list[Listed]) -> None:
                seen: set[str] = set()
                entries, excluded, probe = listing.entries, listing.excluded, self._probe_names
                prefix = f"{rel_dir}/" if rel_dir else ""
                plain_dir = self.names.real(rel_dir) == rel_dir
                for filename, mode, size, mtime in names:
                    # A plain name (printable ASCII, so NFC; neither seen nor taken) of a file
                    # or directory, in a directory named as it is on disk, passes every check
                    # _entry() makes: it is made here, at a third of the cost. Any other
                    # goes through _entry().
                    if (
                        plain_dir
                        and isinstance(filename, str)
                        and filename.isascii()
                        and filename.isprintable()
                        and filename not in _NOT_NAMES
                        and "/" not in filename
                        and filename not in seen
                        and (rel_dir or filename not in probe)
                        and (rel := intern(prefix + filename)) not in entries
                        and rel not in excluded
                        and (S_ISREG(mode) or S_ISDIR(mode))
                    ):
                        seen.add(filename)
                        when, perm = shared_mtime(mtime), PERMS[mode & 0o7777]
                        if S_ISREG(mode):
                            child = Entry(rel, Kind.FILE, size, when, perm)
                        else:
                            child = Entry(rel, Kind.DIR, 0, when, perm)
                    else:
                        found = self._entry(rel_dir, filename, mode, size, mtime, seen, listing)
                        if found is None:
                            continue
                        child = found
                    if excludes(child.path, child.kind is Kind.DIR):
                        excluded.add(child.path)
                        continue
                    entries[child.path] = child
                    if child.kind is Kind.DIR and child.depth >= MAX_DEPTH:
                        raise RemoteError(
                            f"{self._full(child.path)[:200]}…: directories nested deeper than "
                            f"{MAX_DEPTH} levels; refusing to go on"
                        )
                    if child.kind is Kind.DIR:
                        walk.pending += 1
                        group.create_task(list_dir(child.path))

            # The root's stat (does it exist, is it a directory?), its lstat (is it a link?)
            # and its listing go out together: one round trip, not three.
            attrs, own, names = await asyncio.gather(
                self.session.stat(self._full("")),
                self.session.lstat(self._full("")),
                self._readdir(""),
                return_exceptions=True,
            )
            if isinstance(attrs, NotFound):
                listing.root_exists = False
                return listing
            if isinstance(attrs, TreeError):
                raise RemoteError(f"{self.label}: {attrs}")
            if isinstance(attrs, BaseException):
                raise attrs
            if not stat.S_ISDIR(attrs.mode):
                raise RemoteError(f"{self.label}: not a directory")
            if isinstance(names, BaseException):
                raise names
            if not isinstance(own, BaseException) and stat.S_ISLNK(own.mode):
                listing.root_link = await self.session.readlink(self._full(""))
            take("", names)
            if hint is not None and walk.pending:
                await self._ahead(hint, listing, excludes, ahead, walk, group)
        return listing

    async def _ahead(
        self,
        hint: Hint,
        listing: Listing,
        excludes: Excludes,
        ahead: dict[str, asyncio.Task[list[Listed] | None]],
        walk: _Walk,
        group: asyncio.TaskGroup,
    ) -> None:
        """Ask at once for the listing of every directory the other side has under a
        directory of the root that is one here too, shallowest first (they are what the walk
        waits for), instead of one level of the tree per two round trips: on a deploy that
        changes little the tree here is the other side's. The walk takes a listing asked ahead
        only for a directory it found, so a guess that is wrong costs a request, never a
        wrong listing. Only plain names (printable ASCII) are guessed: their path is their name
        on disk. Waits for the other side's scan while the walk goes on (never raising its
        error: the run does), and guesses nothing once the walk is over."""
        over = asyncio.ensure_future(walk.over.wait())
        try:
            either: set[asyncio.Future[Any]] = {hint, over}
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            over.cancel()
        if walk.over.is_set() or not hint.done() or hint.cancelled() or hint.exception():
            return
        entries = listing.entries
        top = {p for p, e in entries.items() if e.kind is Kind.DIR and "/" not in p}
        wanted = [
            path
            for path, entry in hint.result().entries.items()
            if entry.kind is Kind.DIR
            and "/" in path
            and path.partition("/")[0] in top
            and path not in entries
            and entry.depth < MAX_DEPTH
            and _plain_path(path)
            and not excludes(path, True)
        ]
        wanted.sort(key=lambda path: path.count("/"))

        async def early(path: str) -> list[Listed] | None:
            try:
                return await self._readdir(path)
            except (TreeError, SftpMirrorError):
                return None

        for path in wanted:
            ahead[path] = group.create_task(early(path))

    async def _readdir(self, rel_dir: str) -> list[Listed]:
        path = self._full(rel_dir)
        try:
            async with self._slots:
                return await self._retry_busy(lambda: self.session.listdir(path))
        except TreeError as e:
            raise RemoteError(f"cannot list {path}: {e}") from None

    def _entry(
        self,
        rel_dir: str,
        filename: str | bytes,
        mode: int,
        size: int,
        mtime: int,
        seen: set[str],
        listing: Listing,
    ) -> Entry | None:
        if not rel_dir and filename in self._probe_names:
            return None  # the profile's probe, beside the scan
        if not isinstance(filename, str):
            text = filename.decode("utf-8", "backslashreplace")
            path = f"{rel_dir}/{text}" if rel_dir else text
            why = "name refused: it is not valid UTF-8"
            listing.refused[shown(path)] = Refused(Entry(shown(path), Kind.FILE), why, False)
            return None
        if problem := _unsafe_name(filename):
            raise RemoteError(
                f"the server listed an unsafe name {filename!r} in {self._full(rel_dir)}: "
                f"it {problem}; refusing to go on"
            )
        if filename in seen:
            raise RemoteError(f"the server listed {filename!r} twice in {self._full(rel_dir)}")
        seen.add(filename)
        if problem := name_problem(filename):
            rel = self.names.child(rel_dir, filename)
            kind = Kind.DIR if stat.S_ISDIR(mode) else Kind.FILE
            why = f"name refused: it {problem}"
            listing.refused[rel] = Refused(Entry(rel, kind), why, deletable=True)
            return None
        rel = self.names.child(rel_dir, filename)
        if listing.twin(rel):
            return None
        if stat.S_ISREG(mode):
            return Entry(rel, Kind.FILE, size, shared_mtime(mtime), PERMS[mode & 0o7777])
        if stat.S_ISDIR(mode):
            return Entry(rel, Kind.DIR, 0, shared_mtime(mtime), PERMS[mode & 0o7777])
        if stat.S_ISLNK(mode):
            return Entry(rel, Kind.SYMLINK, mtime=mtime)
        listing.warnings.append(f"{rel}: not a regular file, directory or link, skipped")
        return None

    async def file_type(self, path: str) -> str | None:
        found = await self.kind_and_size(path)
        return found[0] if found is not None else None

    async def kind_and_size(self, path: str) -> tuple[str, int] | None:
        try:
            attrs = await self.session.lstat(self._full(path))
        except NotFound:
            return None
        return file_type_of(attrs.mode), attrs.size

    async def mkdir(self, entry: Entry, *, perms: bool) -> None:
        path = self._full(entry.path)
        if not entry.path:
            await self.session.makedirs(path)
            return
        await self.session.mkdir(path, entry.mode & 0o777 if perms else None)

    async def set_attrs(self, entry: Entry, *, perms: bool) -> None:
        await self.session.setstat(
            self._full(entry.path),
            mode=entry.mode & 0o777 if perms else None,
            mtime=entry.mtime if entry.kind is Kind.FILE else None,
        )

    async def remove(self, entry: Entry) -> None:
        await self.session.remove(self._full(entry.path))

    async def rmdir(self, entry: Entry) -> None:
        await self.session.rmdir(self._full(entry.path))

    @asynccontextmanager
    async def open_read(self, path: str, size: int | None = None) -> AsyncIterator[FileReader]:
        full = self._full(path)
        async with self._slots:
            reader = await self._retry_busy(lambda: self.session.open(full, size))
            try:
                yield reader
            finally:
                await reader.close()

    async def rename(self, old: str, new: str) -> None:
        await self.session.rename(self._full(old), self._full(new))

    async def link(self, old: str, new: str) -> None:
        await self.session.link(self._full(old), self._full(new))

    async def link_into_place(self, source: str, final: str, *, tag: str) -> None:
        target = self._full(final)
        directory, name = posixpath.split(target)
        tmp = posixpath.join(directory, temp_name(name, tag))
        await self.session.link(self._full(source), tmp)
        try:
            rel_tmp = posixpath.join(posixpath.dirname(final), posixpath.basename(tmp))
            await self._rename(tmp, target, final, rel_tmp, None)
        except BaseException:
            with suppress(TreeError, RemoteError):
                await asyncio.shield(self.session.remove(tmp))
            raise

    async def symlink(self, target: str, path: str) -> None:
        await self.session.symlink(target, self._full(path))

    async def readlink(self, path: str) -> str:
        return await self.session.readlink(self._full(path))

    async def move_into_place(self, source: str, final: str, *, aside: str | None) -> None:
        target = self._full(final)
        if aside is not None:
            await self._swap_aside(self._full(source), target, final, source, None, aside)
        else:
            await self._rename(self._full(source), target, final, source, None)

    @asynccontextmanager
    async def open_log(self, path: str) -> AsyncIterator[FileWriter]:
        caps = await self.capabilities()
        async with self._slots:
            writer = await self.session.create(
                self._full(path), 0o600 if caps.create_mode else None, replace=True
            )
            try:
                yield writer
            finally:
                with suppress(TreeError, RemoteError):
                    await writer.finish(mode=None, mtime=None)

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
        final = self._full(entry.path)
        directory, name = posixpath.split(final)
        temp = temp_name(name, tag)
        tmp = posixpath.join(directory, temp)
        mode = entry.mode & 0o777
        # The profile is probed beside the scans, so a site file finds it known; a file written
        # before it (the lock's holder, without perms) does not wait for it, and leaves its
        # mtime unset where the server refuses it.
        known = self._caps or (await self.capabilities() if perms else None)
        caps = known or FULL
        # Private while it is partial, then its mode: where chmod works. Where it does not,
        # the final mode from the start (or the server's own, where a mode given is refused:
        # plan() refuses a site file whose mode cannot be made so; our own state files take
        # what they get). Without perms, the server's default mode from the start.
        if not perms:
            create, later = None, None
        elif caps.chmod:
            create, later = 0o600, mode
        else:
            create, later = (mode if caps.create_mode else None), None
        async with self._slots:
            writer: Writer = await self._retry_busy(lambda: self.session.create(tmp, create))
            try:
                yield writer
                # The rename waits for the last write, the attributes and the close: a failure
                # never puts the file in place. Where the server ignores mtimes, the one it
                # gives is asked for (the manifest records it).
                await writer.finish(
                    mode=later, mtime=entry.mtime if caps.mtimes else None,
                    observe=not caps.mtimes, lenient=known is None,
                )  # fmt: skip
                rel_tmp = posixpath.join(posixpath.dirname(entry.path), temp)
                if aside is not None:
                    await self._swap_aside(tmp, final, entry.path, rel_tmp, on_swap, aside)
                else:
                    await self._rename(tmp, final, entry.path, rel_tmp, on_swap)
            except BaseException as exc:
                await asyncio.shield(writer.discard())
                # If the connection is gone, the next run sweeps the temporary file.
                with suppress(TreeError, RemoteError):
                    await asyncio.shield(self.session.remove(tmp))
                if isinstance(exc, ServerFailure | NoSpace):
                    free = await self.session.free_space(directory)
                    if free is not None and free < max(entry.size, 1):
                        raise RemoteError(
                            f"remote filesystem full: {free} bytes free in {directory or '.'}, "
                            f"{entry.path} needs {entry.size}",
                            hint="free space on the server, or ask for a larger quota",
                        ) from None
                raise

    async def _swap_aside(
        self, tmp: str, final: str, rel: str, rel_tmp: str, on_swap: OnSwap | None, aside: str
    ) -> None:
        """The file at ``final`` kept at ``aside`` (a backup, where the server makes no hard
        links), then ``tmp`` renamed in. One request after the other, not both at once: a
        server that runs requests in parallel (rclone's, gesftpserver's worker threads) could
        otherwise rename the new file over the old one and then move the new one aside. The
        name is missing for one round trip; the journal's swap line, written first, lets the
        next run repair a cut in between."""
        if on_swap is not None:
            await on_swap(rel, rel_tmp, aside)
        moved = True
        try:
            await self.session.rename(final, self._full(aside))
        except NotFound:
            moved = False  # nothing there to keep (removed meanwhile)
        try:
            await self.session.rename(tmp, final)
        except BaseException:
            if moved:  # the old file back where it was
                with suppress(TreeError, RemoteError):
                    await asyncio.shield(self.session.rename(self._full(aside), final))
            raise

    async def _rename(
        self, tmp: str, final: str, rel: str, rel_tmp: str, on_swap: OnSwap | None
    ) -> None:
        if self._posix_rename:
            try:
                await self.session.posix_rename(tmp, final)
                return
            except Unsupported:
                self._posix_rename = False
                if self.warn is not None:
                    self.warn(
                        "the server refuses posix-rename: a replaced file is moved aside and the "
                        "new one renamed in, in two requests sent at once; a cut between them is "
                        "repaired by the next run"
                    )
        try:  # a new file: nothing to replace
            await self.session.rename(tmp, final)
            return
        except ServerFailure:
            pass
        if (kind := file_type_of((await self.session.lstat(final)).mode)) != "file":
            # Never a directory (or a link's target) moved aside: the plan replaces only files.
            raise TreeError(f"cannot replace: it is a {'directory' if kind == 'dir' else kind}")
        # No atomic replace on this server. The swap is journaled first; then the old file is
        # renamed aside and the new one in, both requests at once (answered in order), so the
        # final name is missing only while the server goes from one to the next.
        if on_swap is not None:
            await on_swap(rel, rel_tmp, None)
        backup = backup_name(tmp)
        aside, put = await asyncio.gather(
            self.session.rename(final, backup),
            self.session.rename(tmp, final),
            return_exceptions=True,
        )
        if isinstance(put, BaseException):
            if not isinstance(aside, BaseException):  # the old file back where it was
                with suppress(TreeError, RemoteError):
                    await self.session.rename(backup, final)
            raise put
        if isinstance(aside, BaseException):
            raise aside
        with suppress(TreeError, RemoteError):
            await self.session.remove(backup)
