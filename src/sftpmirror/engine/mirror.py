"""One mirror run between two trees: scan both (concurrently) → plan() (pure) → check the
delete guards → execute() (unless dry-run), with the manifest read before and written after.

Push and pull are this one function with the sides swapped; it knows nothing of SSH (the
trees do), and its errors are the Tree error contract's.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sftpmirror.defaults import DEFAULT_JOBS as DEFAULT_JOBS
from sftpmirror.defaults import DEFAULT_KEEP, DEFAULT_MANIFEST, DEFAULT_PROTECT, PAGE_SUFFIXES
from sftpmirror.defaults import DEFAULT_RECONNECTS as DEFAULT_RECONNECTS
from sftpmirror.engine import chmod, journal, manifest
from sftpmirror.engine.chmod import DEFAULT_RULES, ChmodRules
from sftpmirror.engine.concurrency import task_group
from sftpmirror.engine.deploy import DeployState, merge, pick_stale, release_id, repair_swaps
from sftpmirror.engine.guards import DeleteLimits, check_deletes
from sftpmirror.engine.history import Backup, History, new_id, record
from sftpmirror.engine.manifest import Manifest, ManifestStore
from sftpmirror.engine.model import Kind, Listing, Op, Plan, Report
from sftpmirror.engine.plan import PlanOptions, plan
from sftpmirror.engine.reporter import Reporter
from sftpmirror.engine.transfer import execute
from sftpmirror.engine.tree import FULL, Capabilities, Excludes, Tree, new_tag
from sftpmirror.errors import RemoteError, SafetyError, SftpMirrorError, UsageError

log = logging.getLogger("sftpmirror.mirror")


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    delete: bool = False
    dry_run: bool = False
    excludes: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    perms: bool = True  # False: set no permission bits at all (the server's defaults)
    chmod: ChmodRules | None = DEFAULT_RULES  # applied to the source's bits; None: as they are
    manifest: str | None = DEFAULT_MANIFEST  # remote path, relative to the remote directory
    local_manifest: Path | None = None  # keep the manifest on this machine instead
    verify: bool = False  # download and hash remote files the manifest cannot vouch for
    limits: DeleteLimits = field(default_factory=DeleteLimits)
    page_suffixes: tuple[str, ...] = PAGE_SUFFIXES  # uploaded after every other file
    reconnects: int = DEFAULT_RECONNECTS  # times a connection lost mid-run is made again
    delete_foreign: bool = False  # delete also what the manifest does not say we deployed
    protect: tuple[str, ...] = DEFAULT_PROTECT  # never deleted (gitignore patterns)
    keep: int = DEFAULT_KEEP  # deploys whose replaced and deleted files are kept (rollback)
    refuse_older: bool = False  # refuse a commit older than the live deploy's (git)
    lock_wait: float = 0.0  # seconds to wait for another deploy's lock (push)
    break_lock: bool = False  # take the lock even if another deploy holds it
    release: str | None = None  # "symlink": build a release beside the live one, swap a link


DEFAULTS = MirrorOptions()


P = ParamSpec("P")
T = TypeVar("T")


def _unfreezing(
    run: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """``run``, then what ``_collector_paused`` set aside given back to the collector (a
    library caller's process gets it back however the run ends)."""

    @functools.wraps(run)
    async def unfreezing(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await run(*args, **kwargs)
        finally:
            gc.unfreeze()

    return unfreezing


@_unfreezing
async def mirror(
    src: Tree,
    dst: Tree,
    options: MirrorOptions,
    reporter: Reporter,
    *,
    missing_source: type[SftpMirrorError] = UsageError,
    manifest_store: ManifestStore | None = None,
    manifest_side: str = "dst",
    state: DeployState | None = None,
    after: Callable[[Report], Awaitable[None]] | None = None,
) -> tuple[Plan, Report]:
    """Scan, compare, plan, check the delete limits, then (unless dry-run) execute.

    ``manifest_store`` describes the remote side (``manifest_side``): it is read to know the
    remote files by content, and — when the remote side is the destination — rewritten after
    the run (first without the records of the files about to change, then complete).
    ``state`` (a push) is where the deploy lock and the journal are: the lock is held from
    before the scan to the end, and the journal of a run that stopped is read and repaired.
    ``after`` runs once the push went well, still under the lock (a release goes live).
    """
    if state is None or options.dry_run:
        return await _mirror(src, dst, options, reporter, missing_source, manifest_store,
                             manifest_side, state)  # fmt: skip
    held = state.lock(dst, reporter.warning)
    await held.acquire(early=True)  # (its holder written while the trees are scanned)
    try:
        work = asyncio.ensure_future(
            _mirror(src, dst, options, reporter, missing_source, manifest_store, manifest_side,
                    state, held.written)
        )  # fmt: skip
        beat = asyncio.ensure_future(held.heartbeat())
        try:
            await asyncio.wait({work, beat}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (beat, work):
                if not task.done():
                    task.cancel()
            await asyncio.wait({work, beat})
        if beat.done() and not beat.cancelled() and beat.exception() is not None:
            if not work.cancelled():
                work.exception()  # retrieved: the lock's error is the one to say
            raise beat.exception()  # type: ignore[misc]
        the_plan, report = work.result()
        if after is not None and not report.failures:
            await after(report)
        return the_plan, report
    finally:
        await asyncio.shield(held.release_quietly())


async def _mirror(
    src: Tree,
    dst: Tree,
    options: MirrorOptions,
    reporter: Reporter,
    missing_source: type[SftpMirrorError],
    manifest_store: ManifestStore | None,
    manifest_side: str,
    state: DeployState | None,
    locked: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Plan, Report]:
    """``locked``: awaited before the first change (the lock's holder written)."""
    inside = manifest_store.inside if manifest_store else None
    reserved = frozenset({inside}) if inside else frozenset()
    if state is not None:
        reserved |= state.reserved()
    excludes = Excludes(options.excludes, reserved)
    began = time.monotonic()
    with _collector_paused():  # (see there: a third of a 100,000-file run's CPU)
        reporter.phase("scanning")
        # Both scans, the manifest's read and the journal's at once; the local files the manifest
        # knows are hashed (in threads) while the remote tree is still being listed.
        # A run that writes learns what the destination does with attributes beside the scans (a
        # server is probed: chmod or mtimes ignored, SETSTAT refused, writes in order only).
        loaded: asyncio.Task[tuple[Manifest | None, str | None]] | None = None
        journaled: asyncio.Task[journal.Journaled | None] | None = None
        probed: asyncio.Task[Capabilities] | None = None
        async with task_group() as group:
            # The side listed without round trips (the local one) is the other's hint: a
            # remote side lists the directories it names ahead of its walk (Tree.scan).
            if src.cheap_hashes or not dst.cheap_hashes:
                src_scan = group.create_task(src.scan(excludes))
                dst_scan = group.create_task(dst.scan(excludes, src_scan))
            else:
                dst_scan = group.create_task(dst.scan(excludes))
                src_scan = group.create_task(src.scan(excludes, dst_scan))
            if not options.dry_run:
                probed = group.create_task(dst.capabilities())
            if state is not None:
                journaled = group.create_task(journal.read(dst, state.journal_path))
            if manifest_store is not None:
                loaded = group.create_task(manifest_store.load())
                local, scan = (src, src_scan) if manifest_side == "dst" else (dst, dst_scan)
                if local.cheap_hashes:
                    group.create_task(_hash_ahead(local, scan, loaded))
        src_listing, dst_listing = src_scan.result(), dst_scan.result()
        caps = probed.result() if probed is not None else FULL
        found = journaled.result() if journaled is not None else None
        repaired = 0
        if found is not None and found.swaps and not options.dry_run:
            if locked is not None:
                await locked()
            repaired = await repair_swaps(dst, found)
        if repaired:
            reporter.warning(f"put back {repaired} file(s) an interrupted replace left missing")
            dst_listing = await dst.scan(excludes)
        pick_stale(src_listing, dst_listing, (found.tags if found else set()) if state else None)
        log.debug(
            "scanned %d + %d entries in %.2fs",
            len(src_listing.entries), len(dst_listing.entries), time.monotonic() - began,
        )  # fmt: skip
        if not src_listing.root_exists:
            raise missing_source(f"source directory not found: {src.label}")
        link = dst_listing.root_link if state is not None and options.release is None else None
        if link is not None and (rid := release_id(link)) is not None:
            raise UsageError(
                f"{dst.label} is the link to release {rid} (--release symlink): a push in place "
                "would write into the live release",
                hint='push with --release symlink (target key: release = "symlink")',
            )
        if state is not None and state.is_older is not None and state.commit:
            await _refuse_older(dst, state)
        if options.perms and options.chmod is not None:
            chmod.apply_to(src_listing, options.chmod)
        reporter.phase("comparing")
        store = manifest_store if manifest_side == "dst" else None  # the one this run rewrites
        old: Manifest | None = None
        if loaded is not None:
            remote_listing = dst_listing if manifest_side == "dst" else src_listing
            old, why = loaded.result()
            old = merge(old, found) if store is not None else old
            if old is not None:
                manifest.apply(remote_listing, old)
            elif why and remote_listing.root_exists:
                reporter.warning(why)
        began = time.monotonic()
        await fill_hashes(
            src, src_listing, dst, dst_listing, all_source=store is not None, verify=options.verify
        )
        log.debug("manifest and hashes in %.2fs", time.monotonic() - began)
        plan_options = PlanOptions(
            delete=options.delete,
            perms=options.perms,
            page_suffixes=options.page_suffixes,
            # A pull's local destination has no owner to ask: --delete there is all of it.
            delete_foreign=options.delete_foreign or manifest_side != "dst",
            protect=options.protect if manifest_side == "dst" else (),
            caps=caps,
        )
        the_plan = plan(src_listing, dst_listing, plan_options)
    for warning in the_plan.warnings:
        reporter.warning(warning)
    if options.delete:
        try:
            check_deletes(the_plan, src_listing, dst_listing, options.limits)
        except SafetyError as e:
            if options.dry_run:  # show what the refused run would do: the deletions above
                e.plan = the_plan
                e.hint = (e.hint or "").replace("run with --dry-run to see them; ", "")
            raise
    if the_plan.kept:
        reporter.warning(_kept_line(the_plan.kept, dst_listing.owned is None))
    reporter.planned(the_plan)
    if options.dry_run:
        return the_plan, Report(dry_run=True)
    on_server = old  # what the manifest on the server says at each moment
    changing = manifest.touched(the_plan)
    # Before the first change, at once (their round trips overlap): the manifest without the
    # records of what will change, the journal, and the backup area with the manifest as it is.
    preparing: list[Awaitable[Any]] = [locked()] if locked is not None else []
    if store is not None and old is not None and (changing or (found and found.done)):
        on_server = manifest.without(old, changing)
        preparing.append(store.save(on_server))
    tag = new_tag()
    writer: journal.Writer | None = None
    if state is not None and (the_plan.phases or the_plan.conflicts):
        writer = journal.Writer(dst, state.journal_path, records=store is not None)
        preparing.append(writer.start(sorted({tag, *(found.tags if found else ())})))
    backup: Backup | None = None
    history: History | None = None
    deploy_id = new_id()
    if state is not None and store is not None and state.keep > 0 and the_plan.phases:
        history = History(dst, state.directory)
        backup = Backup(dst, history.backup_dir(deploy_id), links=caps.links)
        kept = [
            a.path
            for a in the_plan.actions()
            if a.op in (Op.REPLACE, Op.DELETE, Op.CLEAR) and a.entry.kind is Kind.FILE
        ]
        preparing += [history.load(), backup.start(old or Manifest(), kept)]
    await _all(preparing)
    try:
        report = await execute(
            the_plan, src, dst, jobs=options.jobs, perms=options.perms, reporter=reporter,
            tag=tag, journal=writer, backup=backup, caps=caps,
        )  # fmt: skip
    except BaseException:
        if writer is not None:
            await asyncio.shield(writer.abandon())
        raise
    saved = True

    async def save_manifest() -> None:
        nonlocal saved
        if store is None:
            return
        with _collector_paused():
            new = manifest.after_run(src_listing, dst_listing, the_plan, report, on_server)
        if on_server is None or new.files != on_server.files:
            try:
                await store.save(new)
            except RemoteError as e:
                saved = False
                reporter.warning(f"{e}; the next run compares by size and mtime")

    try:
        # At once: the journal's last lines and close, the backup's index, the new manifest
        # (each is complete on its own; the history names the backup only once all are in).
        # Then at once: the deploy in the history, and the journal (now in the manifest) gone.
        try:
            await _all(
                ([writer.close()] if writer is not None else [])
                + ([backup.finish()] if backup is not None else [])
                + [save_manifest()]
            )
        except BaseException:
            if writer is not None:
                await asyncio.shield(writer.abandon())
            raise
        if state is not None and saved and not report.failures:
            await _all(
                ([_record(history, backup, deploy_id, report, state, reporter)]
                 if history is not None and backup is not None else [])
                + ([journal.remove(dst, state.journal_path)]
                   if writer is not None or found is not None else [])  # (none: no round trip)
            )  # fmt: skip
    except SftpMirrorError as e:  # a cut after the copies: they count (F16)
        if e.done is None:
            e.done = report
        raise
    return the_plan, report


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the listings, the manifest and the plan are
    built (as Mercurial's ``nogc``): each of them is a large graph of small objects with no
    cycles, and the collector, run every 700 new objects and in full each time their number
    grew by a quarter, walked all of them again and again (2.0 s of a 6.0 s no-change run of
    100,000 files, 1.4 s of it in eight full passes). Left as it was when already off; the
    cycles made meanwhile (asyncio's) are collected once it is back on. What was made
    meanwhile is then set aside in the permanent generation (``gc.freeze()``): the first pass
    after would walk all of it (52 ms of a 0.7 s no-change push of the medium site), and it is
    long-lived and acyclic (refcounting frees it). ``mirror()`` gives it back as it returns."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


async def _record(
    history: History,
    backup: Backup,
    deploy_id: str,
    report: Report,
    state: DeployState,
    reporter: Reporter,
) -> None:
    """The deploy in the history; backups older than the last ``keep`` deploys removed."""
    if backup.moved:
        reporter.warning(
            f"the server makes no hard links: the {backup.moved} file(s) this deploy replaced "
            "were kept by renaming them into its backup, the new file renamed in after (each "
            "name missing for one round trip); keep = 0 replaces atomically and keeps none"
        )
    counts = {op.value: n for op, n in report.done.items() if n}
    await history.append(
        record("deploy", deploy_id, deploy_id, commit=state.commit, counts=counts,
               backup=True, backup_bytes=backup.size, backup_by=backup.method)
    )  # fmt: skip
    if await history.prune(state.keep):
        await history.save()


async def _all(steps: Sequence[Awaitable[Any]]) -> None:
    """Await every step at once; the first error is raised once all have ended."""
    results = await asyncio.gather(*steps, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _refuse_older(dst: Tree, state: DeployState) -> None:
    """--refuse-older: a deploy whose commit is an ancestor of the live one's is refused (an
    old CI run finishing after a newer one would put old pages back)."""
    history = await History(dst, state.directory).load()
    live = history.live()
    entry = next((r for r in reversed(history.records) if r.get("id") == live), None)
    theirs = entry.get("commit") if entry else None
    if not isinstance(theirs, str) or state.commit is None or state.is_older is None:
        return
    if await asyncio.to_thread(state.is_older, theirs):
        raise SafetyError(
            f"refusing to deploy commit {state.commit[:12]}: it is older than the live "
            f"deploy's {theirs[:12]} ({live})",
            hint="a newer build is live; --force deploys this one anyway",
        )


def _kept_line(kept: tuple[str, ...], no_manifest: bool) -> str:
    shown = ", ".join(kept[:5]) + (f", … ({len(kept) - 5} more)" if len(kept) > 5 else "")
    why = "no manifest says what it deployed" if no_manifest else "not deployed by sftpmirror"
    return (
        f"kept {len(kept)} file(s) not in the source: {why}, or protected ({shown}); "
        "--delete-foreign removes those not protected"
    )


async def _hash_ahead(
    local: Tree,
    scan: asyncio.Task[Listing],
    loaded: asyncio.Task[tuple[Manifest | None, str | None]],
) -> None:
    """Hash the local files the manifest records at the same size: the comparison will need
    them (they are the ones that can be unchanged), and the remote listing is still coming."""
    listing = await asyncio.shield(scan)
    old, _ = await asyncio.shield(loaded)
    if old is None:
        return
    wanted = [
        path
        for path, entry in listing.entries.items()
        if entry.kind is Kind.FILE
        and entry.sha256 is None
        and (record := old.files.get(path)) is not None
        and record.size == entry.size
    ]
    entries, records = listing.entries, old.files
    # Where the hash is the manifest's, its text comes back: one string for both sides.
    known = {p: digest for p in wanted if (digest := records[p].sha256) is not None}
    hashed = await local.hash_files(wanted, known)
    del known
    for path, digest in hashed.items():
        entries[path] = entries[path].with_sha256(digest)


async def fill_hashes(
    src: Tree,
    src_listing: Listing,
    dst: Tree,
    dst_listing: Listing,
    *,
    all_source: bool,
    verify: bool,
) -> None:
    """Hash what the comparison (and the manifest) needs, where hashing is cheap or asked for.

    Only files with a same-size counterpart are ever hashed beforehand: any other file is
    copied, and its hash is taken from the bytes sent. A local side hashes those whose
    counterpart's hash is known (all of them when ``all_source`` — a manifest will be written
    and must vouch for files that stay); a remote side hashes (downloads) them only with
    ``verify``, where the manifest does not vouch for them.
    """
    same_size = [
        path
        for path, s in src_listing.entries.items()
        if s.kind is Kind.FILE
        and (d := dst_listing.entries.get(path)) is not None
        and d.kind is Kind.FILE
        and d.size == s.size
    ]
    for tree, mine, other, everything in (
        (src, src_listing, dst_listing, all_source),
        (dst, dst_listing, src_listing, False),
    ):
        if tree.cheap_hashes:
            wanted = [p for p in same_size if everything or verify or other.entries[p].sha256]
        elif verify:
            wanted = same_size
        else:
            continue
        wanted = [p for p in wanted if mine.entries[p].sha256 is None]
        known = {p: digest for p in wanted if (digest := other.entries[p].sha256) is not None}
        hashed = await tree.hash_files(wanted, known)
        del known
        for path, digest in hashed.items():
            mine.entries[path] = mine.entries[path].with_sha256(digest)
        if verify and not tree.cheap_hashes:
            # Asked to compare content: a file that cannot be read is not "the same" (F18).
            for path in wanted:
                if path not in hashed:
                    mine.unreadable[path] = "cannot be read to compare its content (--verify)"
