"""execute(): carry out a Plan between two Trees with bounded concurrency; return a Report.

Each step's actions are shared by ``jobs`` workers, so at most ``jobs`` files are in flight on
the one SFTP session (and each file's writes are pipelined by asyncssh). A failed action is
recorded and the run goes on; after any failure the destructive phases (delete, rmdir) are held
back. A tree raises only the Tree error contract's errors (``engine/tree.py``): a ``TreeError``
fails its action; a lost connection is not a per-file failure: it aborts the run with
``ConnectionLost``, which carries the Report so far; any other error stops the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sftpmirror.engine.concurrency import run_pool
from sftpmirror.engine.model import Action, Failure, Kind, Op, Plan, Report
from sftpmirror.engine.reporter import Reporter
from sftpmirror.engine.tree import FULL, Capabilities, OnSwap, ServerFailure, Tree, TreeError
from sftpmirror.errors import SftpMirrorError

log = logging.getLogger("sftpmirror.transfer")

CHUNK = 1 << 20  # bytes read from the source at a time; asyncssh splits writes into requests
LARGE_CHUNK = 8 << 20  # for files this large: 8 MiB chunks (32 write requests each)
LARGE_SLOTS = 4  # large files at once with large chunks; each holds 3 chunks (2 written, 1 read)
THREADED_HASH = 256 << 10  # chunks this large are hashed off the event loop
WRITES_IN_FLIGHT = 2  # chunks of one file being written at once (3, or 4 of 4 MiB: no faster)
# A file may grow while it is copied (a log being written); past its listed size plus this, the
# copy fails: a server that never ends a file cannot fill the disk.
GROWTH_MARGIN = 1 << 20


def _ignore(nbytes: int) -> None:
    pass


async def copy_file(
    src: Tree,
    dst: Tree,
    action: Action,
    *,
    perms: bool,
    chunk: int = CHUNK,
    sent: Callable[[int], None] = _ignore,
    tag: str | None = None,
    on_swap: OnSwap | None = None,
    in_flight: int = WRITES_IN_FLIGHT,
    aside: str | None = None,
) -> tuple[int, str, int]:
    """Stream one file from ``src`` to ``dst`` (atomically replaced).

    Two chunks' writes are in flight at once and the next chunk is read meanwhile, so the
    pipe never waits for the last answers of a chunk before the next one starts; each chunk is
    hashed in order as it goes out (large chunks in a thread: hashlib releases the GIL).
    ``in_flight`` 1: each chunk's writes answered before the next chunk's go out (a server
    that takes writes in order only). Returns the bytes copied, the SHA-256 of exactly those
    bytes, and the mtime the file has on ``dst`` (for the manifest: a server may ignore ours);
    ``sent`` hears of each chunk the server acknowledged (progress, F19): a chunk's write
    returns once it is answered, except the last small one, held back to go with the close,
    so the chunks still in flight at the end are counted once the file is in place.
    ``aside``: where the file replaced is kept (a backup made by renames: ``open_write``).
    """
    held = 0
    offset = 0
    limit = action.entry.size + GROWTH_MARGIN
    digest = hashlib.sha256()
    writes: deque[tuple[asyncio.Future[int], int]] = deque()
    ahead: asyncio.Future[bytes] | None = None
    async with (
        src.open_read(action.path, action.entry.size) as reader,
        dst.open_write(action.entry, perms=perms, tag=tag, on_swap=on_swap, aside=aside) as writer,
    ):
        try:
            data = await reader.read(chunk, 0)
            while data:
                if offset + len(data) > limit:
                    raise TreeError(
                        f"grew past its listed size ({action.entry.size} bytes) by more than "
                        f"{GROWTH_MARGIN >> 20} MiB while it was copied; not copied"
                    )
                ahead = asyncio.ensure_future(reader.read(chunk, offset + len(data)))
                writes.append((asyncio.ensure_future(writer.write(data, offset)), len(data)))
                if len(data) >= THREADED_HASH:
                    await asyncio.to_thread(digest.update, data)
                else:
                    digest.update(data)
                offset += len(data)
                while len(writes) >= in_flight:
                    await _written(writes, sent)
                data = await ahead
            while writes:
                held += await _written(writes, _ignore)
        except BaseException:
            await _settle([w for w, _ in writes] + ([ahead] if ahead is not None else []))
            raise
    sent(held)  # acknowledged with the close, and in place
    mtime = writer.mtime if writer.mtime is not None else action.entry.mtime
    return offset, digest.hexdigest(), mtime


async def _written(
    writes: deque[tuple[asyncio.Future[int], int]], sent: Callable[[int], None]
) -> int:
    write, size = writes[0]
    await write
    writes.popleft()
    sent(size)
    return size


async def _settle(futures: list[asyncio.Future[Any]]) -> None:
    """Let the other reads and writes of a failed file finish (their errors are dropped).

    They are not cancelled: asyncssh sends a large write as several requests from tasks of its
    own, which a cancellation would not stop. One sent after the file's handle is closed could
    land in the next file that the server gives the same handle.
    """
    if futures:
        await asyncio.wait(futures)
    for future in futures:
        if not future.cancelled():
            future.exception()  # retrieved: the error being raised is this one or an earlier one


class Keeper(Protocol):
    """Where replaced and deleted files go for a rollback (``engine/history.Backup``)."""

    async def keep(self, path: str) -> str | None: ...

    async def move(self, path: str) -> None: ...


class Journal(Protocol):
    """What execute() tells the journal (``engine/journal.Writer``)."""

    def done(self, path: str, size: int, mtime: int, sha256: str) -> None: ...

    async def swap(self, path: str, temp: str, aside: str | None) -> None: ...


async def _copy(
    run: _Run, action: Action, on_swap: OnSwap | None, aside: str | None
) -> tuple[int, str, int]:
    """One file's copy. A file of more than one chunk whose copy fails with a bare failure, on a
    server not yet known to take writes in order only, is copied again once with one chunk in
    flight, and so is every file after it (``rclone serve sftp`` fails a write that arrives
    ahead of the ones before it: "Illegal seek")."""
    chunk = LARGE_CHUNK if action.entry.size >= LARGE_CHUNK else CHUNK
    while True:
        in_flight = 1 if run.sequential else WRITES_IN_FLIGHT
        try:
            return await copy_file(
                run.src, run.dst, action, perms=run.perms, chunk=chunk,
                sent=run.reporter.transferred, tag=run.tag, on_swap=on_swap,
                in_flight=in_flight, aside=aside,
            )  # fmt: skip
        except ServerFailure as e:
            if run.sequential or action.entry.size <= chunk:
                raise
            run.sequential = True
            run.reporter.warning(
                f"{action.path}: the server failed a write sent ahead of the last one ({e}): "
                "writes go in order from now on, one chunk at a time; copying it again"
            )


async def _apply(run: _Run, action: Action) -> tuple[int, str | None, int]:
    dst = run.dst
    entry = action.entry
    on_swap = run.journal.swap if run.journal is not None else None
    aside: str | None = None
    if run.backup is not None and action.op is Op.REPLACE and entry.kind is Kind.FILE:
        aside = await run.backup.keep(action.path)  # the old file kept for a rollback: no copy
    match action.op:
        case Op.COPY | Op.REPLACE if entry.size >= LARGE_CHUNK:
            async with run.large:
                return await _copy(run, action, on_swap, aside)
        case Op.COPY | Op.REPLACE:
            return await _copy(run, action, on_swap, aside)
        case Op.MKDIR:
            await dst.mkdir(entry, perms=run.perms)
        case Op.ATTRS:
            await dst.set_attrs(entry, perms=run.perms)
        case Op.CLEAR if entry.kind is Kind.DIR:
            await dst.rmdir(entry)
        case Op.RMDIR:
            await dst.rmdir(entry)
        case Op.CLEAR | Op.DELETE if run.backup is not None and entry.kind is Kind.FILE:
            await run.backup.move(action.path)  # deleted by moving it into the backup
        case Op.CLEAR | Op.DELETE | Op.SWEEP:
            await dst.remove(entry)
    return 0, None, entry.mtime


class _Run:
    def __init__(
        self,
        src: Tree,
        dst: Tree,
        jobs: int,
        perms: bool,
        reporter: Reporter,
        tag: str | None = None,
        journal: Journal | None = None,
        backup: Keeper | None = None,
        caps: Capabilities = FULL,
    ) -> None:
        self.src, self.dst, self.jobs, self.perms = src, dst, max(1, jobs), perms
        self.sequential = caps.sequential_writes  # learned on the way too (``_copy``)
        self.tag, self.journal, self.backup = tag, journal, backup
        self.reporter = reporter
        self.report = Report()
        self.failed_dirs: set[str] = set()
        self.large = asyncio.Semaphore(LARGE_SLOTS)

    def fail(self, action: Action, message: str) -> None:
        self.report.failures.append(Failure(action.path, action.op, message))
        if action.op is Op.MKDIR:
            self.failed_dirs.add(action.path)
        self.reporter.failed(action, message)

    def _blocked(self, action: Action) -> str | None:
        parent = action.entry.parent
        while parent:
            if parent in self.failed_dirs:
                return f"skipped: {parent}/ could not be created"
            parent = parent.rpartition("/")[0]
        return None

    async def apply(self, action: Action) -> None:
        if blocked := self._blocked(action):
            self.fail(action, blocked)
            return
        try:
            nbytes, digest, mtime = await _apply(self, action)
        except TreeError as e:
            self.fail(action, str(e) or type(e).__name__)
        else:
            self.report.done[action.op] += 1
            self.report.bytes_copied += nbytes
            if digest is not None:
                self.report.copied[action.path] = (nbytes, digest, mtime)
                if self.journal is not None:
                    self.journal.done(action.path, nbytes, mtime, digest)
            self.reporter.done(action, nbytes)


async def execute(
    plan: Plan,
    src: Tree,
    dst: Tree,
    *,
    jobs: int,
    perms: bool,
    reporter: Reporter,
    tag: str | None = None,
    journal: Journal | None = None,
    backup: Keeper | None = None,
    caps: Capabilities = FULL,
) -> Report:
    """``tag`` names this run's temporaries; ``journal`` hears of each file in place;
    ``backup`` keeps what is replaced or deleted, for a rollback; ``caps`` is what the
    destination does (its writes in order only, say)."""
    run = _Run(src, dst, jobs, perms, reporter, tag, journal, backup, caps)
    started = time.monotonic()
    for action in plan.conflicts:
        run.fail(action, action.reason)
    try:
        for phase in plan.phases:
            if phase.destructive and run.report.failures:
                held = len(phase.actions())
                run.report.not_run += held
                reporter.warning(f"not running {held} {phase.name} action(s): there were errors")
                continue
            began = time.monotonic()
            if phase.steps:
                reporter.phase(phase.name)
            for step in phase.steps:
                await run_pool(step, run.apply, min(run.jobs, len(step)))
            log.debug(
                "phase %s: %d action(s) in %d step(s), %.2fs",
                phase.name, len(phase.actions()), len(phase.steps), time.monotonic() - began,
            )  # fmt: skip
    except SftpMirrorError as e:  # lost connection, full disk: the counts stay true (F16)
        if e.done is None:
            e.done = run.report
        raise
    finally:
        run.report.elapsed = time.monotonic() - started
    return run.report
