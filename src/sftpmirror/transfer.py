"""execute(): carry out a Plan between two Trees with bounded concurrency; return a Report.

Each step's actions are shared by ``jobs`` workers, so at most ``jobs`` files are in flight on
the one SFTP session (and each file's writes are pipelined by asyncssh). A failed action is
recorded and the run goes on; after any failure the destructive phases (delete, rmdir) are held
back. A lost connection is not a per-file failure: it aborts the run with ``ConnectError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

import asyncssh

from .concurrency import run_pool
from .errors import ConnectError
from .model import Action, Failure, Kind, Op, Plan, Report
from .progress import Reporter
from .remote import CONNECTION_ERRORS, describe_sftp_error
from .tree import Tree

log = logging.getLogger("sftpmirror.transfer")

CHUNK = 1 << 20  # bytes read from the source at a time; asyncssh splits writes into requests
LARGE_CHUNK = 8 << 20  # for files this large: 32 write requests in flight instead of 4
LARGE_SLOTS = 4  # large files in flight at once with large chunks (bounds memory)
THREADED_HASH = 256 << 10  # chunks this large are hashed off the event loop


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
) -> tuple[int, str]:
    """Stream one file from ``src`` to ``dst`` (atomically replaced).

    The next chunk is read while this one is written and hashed (large chunks are hashed in a
    thread: hashlib releases the GIL), so a big file keeps the network busy. Returns the bytes
    copied and the SHA-256 of exactly those bytes (for the manifest); ``sent`` hears of each
    chunk written (progress).
    """
    offset = 0
    digest = hashlib.sha256()
    async with (
        src.open_read(action.path) as reader,
        dst.open_write(action.entry, perms=perms) as writer,
    ):
        data = await reader.read(chunk, 0)
        while data:
            ahead = asyncio.ensure_future(reader.read(chunk, offset + len(data)))
            try:
                if len(data) >= THREADED_HASH:
                    await asyncio.gather(
                        writer.write(data, offset), asyncio.to_thread(digest.update, data)
                    )
                else:
                    digest.update(data)
                    await writer.write(data, offset)
            except BaseException:
                ahead.cancel()
                raise
            offset += len(data)
            sent(len(data))
            data = await ahead
    return offset, digest.hexdigest()


async def _apply(
    action: Action,
    src: Tree,
    dst: Tree,
    perms: bool,
    large: asyncio.Semaphore,
    sent: Callable[[int], None],
) -> tuple[int, str | None]:
    entry = action.entry
    match action.op:
        case Op.COPY | Op.REPLACE if entry.size >= LARGE_CHUNK:
            async with large:
                return await copy_file(src, dst, action, perms=perms, chunk=LARGE_CHUNK, sent=sent)
        case Op.COPY | Op.REPLACE:
            return await copy_file(src, dst, action, perms=perms, sent=sent)
        case Op.MKDIR:
            await dst.mkdir(entry, perms=perms)
        case Op.ATTRS:
            await dst.set_attrs(entry, perms=perms)
        case Op.CLEAR if entry.kind is Kind.DIR:
            await dst.rmdir(entry)
        case Op.RMDIR:
            await dst.rmdir(entry)
        case Op.CLEAR | Op.DELETE | Op.SWEEP:
            await dst.remove(entry)
    return 0, None


def _message(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.SFTPError):
        return describe_sftp_error(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class _Run:
    def __init__(self, src: Tree, dst: Tree, jobs: int, perms: bool, reporter: Reporter) -> None:
        self.src, self.dst, self.jobs, self.perms = src, dst, max(1, jobs), perms
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
            nbytes, digest = await _apply(
                action, self.src, self.dst, self.perms, self.large, self.reporter.transferred
            )
        except CONNECTION_ERRORS as e:
            raise ConnectError(f"connection lost: {_message(e)}") from None
        except (asyncssh.SFTPError, OSError) as e:
            self.fail(action, _message(e))
        else:
            self.report.done[action.op] += 1
            self.report.bytes_copied += nbytes
            if digest is not None:
                self.report.copied[action.path] = (nbytes, digest)
            self.reporter.done(action, nbytes)


async def execute(
    plan: Plan, src: Tree, dst: Tree, *, jobs: int, perms: bool, reporter: Reporter
) -> Report:
    run = _Run(src, dst, jobs, perms, reporter)
    started = time.monotonic()
    for action in plan.conflicts:
        run.fail(action, action.reason)
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
    run.report.elapsed = time.monotonic() - started
    return run.report
