"""The library API: push and pull are one mirror() with the sides swapped.

scan both trees (concurrently) → plan() (pure) → execute() (unless dry-run) → Result
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import chmod, manifest
from .auth import ConnectOptions
from .chmod import DEFAULT_RULES, ChmodRules
from .concurrency import task_group
from .errors import (
    ConnectError,
    ConnectionLost,
    HostKeyError,
    RemoteError,
    SftpMirrorError,
    UsageError,
)
from .guards import DeleteLimits, check_deletes
from .local import LocalTree
from .manifest import DEFAULT_NAME as DEFAULT_MANIFEST
from .manifest import Manifest, ManifestStore
from .model import Kind, Listing, Plan, Report
from .plan import PAGE_SUFFIXES, PlanOptions, plan
from .progress import NullReporter, Reporter
from .remote import CONNECTION_ERRORS, RemoteTree
from .ssh import connect, open_sftp
from .summary import summary_line, summary_object
from .transfer import execute
from .tree import Excludes, Tree
from .url import RemoteSpec, parse_remote

DEFAULT_JOBS = 64
DEFAULT_RECONNECTS = 3  # after a connection lost mid-run; waits 2, 4, 8 s: 14 s in all
RECONNECT_FIRST_WAIT = 2.0

log = logging.getLogger("sftpmirror.api")


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


DEFAULTS = MirrorOptions()


@dataclass(slots=True)
class Result:
    """What a run planned and did: ``summary()`` is the line the CLI prints last, ``as_json()``
    the object of ``--json`` (docs/json.md)."""

    plan: Plan
    report: Report = field(default_factory=Report)

    @property
    def ok(self) -> bool:
        return self.report.ok

    def summary(self) -> str:
        return summary_line(self)

    def as_json(self) -> dict[str, Any]:
        return summary_object(self)


async def mirror(
    src: Tree,
    dst: Tree,
    options: MirrorOptions,
    reporter: Reporter,
    *,
    missing_source: type[SftpMirrorError] = UsageError,
    manifest_store: ManifestStore | None = None,
    manifest_side: str = "dst",
) -> Result:
    """Scan, compare, plan, check the delete limits, then (unless dry-run) execute.

    ``manifest_store`` describes the remote side (``manifest_side``): it is read to know the
    remote files by content, and — when the remote side is the destination — rewritten after
    the run (first without the records of the files about to change, then complete).
    """
    inside = manifest_store.inside if manifest_store else None
    excludes = Excludes(options.excludes, frozenset({inside}) if inside else frozenset())
    began = time.monotonic()
    reporter.phase("scanning")
    # Both scans and the manifest's read at once; the local files the manifest knows are
    # hashed (in threads) while the remote tree is still being listed.
    loaded: asyncio.Task[tuple[Manifest | None, str | None]] | None = None
    async with task_group() as group:
        src_scan = group.create_task(src.scan(excludes))
        dst_scan = group.create_task(dst.scan(excludes))
        if manifest_store is not None:
            loaded = group.create_task(manifest_store.load())
            local, scan = (src, src_scan) if manifest_side == "dst" else (dst, dst_scan)
            if local.cheap_hashes:
                group.create_task(_hash_ahead(local, scan, loaded))
    src_listing, dst_listing = src_scan.result(), dst_scan.result()
    log.debug(
        "scanned %d + %d entries in %.2fs",
        len(src_listing.entries), len(dst_listing.entries), time.monotonic() - began,
    )  # fmt: skip
    if not src_listing.root_exists:
        raise missing_source(f"source directory not found: {src.label}")
    if options.perms and options.chmod is not None:
        chmod.apply_to(src_listing, options.chmod)
    reporter.phase("comparing")
    store = manifest_store if manifest_side == "dst" else None  # the one this run rewrites
    old: Manifest | None = None
    if loaded is not None:
        remote_listing = dst_listing if manifest_side == "dst" else src_listing
        old, why = loaded.result()
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
        delete=options.delete, perms=options.perms, page_suffixes=options.page_suffixes
    )
    the_plan = plan(src_listing, dst_listing, plan_options)
    for warning in the_plan.warnings:
        reporter.warning(warning)
    if options.delete:
        check_deletes(the_plan, src_listing, dst_listing, options.limits)
    reporter.planned(the_plan)
    if options.dry_run:
        return Result(the_plan, Report(dry_run=True))
    on_server = old  # what the manifest on the server says at each moment
    if store is not None and old is not None and (changing := manifest.touched(the_plan)):
        on_server = manifest.without(old, changing)
        await store.save(on_server)
    report = await execute(
        the_plan, src, dst, jobs=options.jobs, perms=options.perms, reporter=reporter
    )
    if store is not None:
        new = manifest.after_run(src_listing, dst_listing, the_plan, report)
        if on_server is None or new.files != on_server.files:
            try:
                await store.save(new)
            except RemoteError as e:
                reporter.warning(f"{e}; the next run compares by size and mtime")
    return Result(the_plan, report)


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
    for path, digest in (await local.hash_files(wanted)).items():
        listing.entries[path] = dataclasses.replace(listing.entries[path], sha256=digest)


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
        for path, digest in (await tree.hash_files(wanted)).items():
            mine.entries[path] = dataclasses.replace(mine.entries[path], sha256=digest)


def _manifest_store(remote: RemoteTree, options: MirrorOptions) -> ManifestStore | None:
    if options.local_manifest is not None:
        where = options.local_manifest.expanduser().absolute()
        local = LocalTree(where.parent, follow_symlinks=False)
        return ManifestStore(local, where.name, in_mirrored_tree=False)
    return ManifestStore(remote, options.manifest) if options.manifest else None


def _spec(remote: str | RemoteSpec) -> RemoteSpec:
    return parse_remote(remote) if isinstance(remote, str) else remote


async def _over_sftp(
    spec: RemoteSpec,
    connect_options: ConnectOptions | None,
    reporter: Reporter,
    run: Callable[[RemoteTree], Awaitable[Result]],
    reconnects: int,
) -> Result:
    """Connect, open SFTP, run. A connection lost after the login is made again, up to
    ``reconnects`` times with a doubling wait, and the run starts over: scan, compare, plan.
    What the lost pass finished is in place and is not done again (each file is renamed into
    place whole, and the new plan sees it), and its counts are carried into the Report. Then
    ConnectionLost (exit 3). A reconnection that fails to log in, or meets another host key,
    stops at once."""
    options = connect_options or ConnectOptions()
    earlier = Report()
    lost = 0
    wait = RECONNECT_FIRST_WAIT
    while True:
        reporter.phase("connecting" if not lost else "reconnecting")
        try:
            async with connect(spec, options) as conn, open_sftp(conn) as sftp:
                remote = RemoteTree(sftp, spec.path, str(spec), warn=reporter.warning)
                try:
                    result = await run(remote)
                except CONNECTION_ERRORS as e:
                    raise ConnectionLost(f"connection lost: {e}") from None
        except ConnectionLost as e:
            if e.done is not None:
                earlier.carry(e.done)
            why = e.message
        except ConnectError as e:
            if not lost or isinstance(e, HostKeyError):
                raise
            why = e.message  # the server is not back yet
        else:
            result.report.carry(earlier)
            result.report.reconnects = lost
            return result
        if lost >= reconnects:
            tries = f" after {lost} reconnection(s)" if lost else ""
            raise ConnectionLost(f"{why}{tries}", done=earlier)
        lost += 1
        reporter.warning(f"{why}; reconnecting in {wait:g}s ({lost} of {reconnects})")
        await asyncio.sleep(wait)
        wait *= 2


async def push(
    local_dir: str | Path,
    dest: str | RemoteSpec,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """Mirror ``local_dir`` into the remote directory ``dest`` (lftp ``mirror -R``)."""
    local = Path(local_dir)
    if not await asyncio.to_thread(local.is_dir):
        raise UsageError(f"local directory not found: {local}")
    source = LocalTree(local, follow_symlinks=True)
    reporter = reporter or NullReporter()
    return await _over_sftp(
        _spec(dest),
        connect_options,
        reporter,
        lambda remote: mirror(
            source,
            remote,
            options,
            reporter,
            manifest_store=_manifest_store(remote, options),
            manifest_side="dst",
        ),
        options.reconnects,
    )


async def pull(
    source: str | RemoteSpec,
    local_dir: str | Path,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """Mirror the remote directory ``source`` into ``local_dir`` (lftp ``mirror``)."""
    local = Path(local_dir)
    if await asyncio.to_thread(lambda: local.exists() and not local.is_dir()):
        raise UsageError(f"not a directory: {local}")
    dest = LocalTree(local, follow_symlinks=False)
    reporter = reporter or NullReporter()
    return await _over_sftp(
        _spec(source),
        connect_options,
        reporter,
        lambda remote: mirror(
            remote,
            dest,
            options,
            reporter,
            missing_source=RemoteError,
            manifest_store=_manifest_store(remote, options),
            manifest_side="src",
        ),
        options.reconnects,
    )


def push_sync(
    local_dir: str | Path,
    dest: str | RemoteSpec,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """:func:`push` for code without an event loop (scripts, Fabric/Invoke tasks)."""
    return asyncio.run(push(local_dir, dest, options, connect_options, reporter))


def pull_sync(
    source: str | RemoteSpec,
    local_dir: str | Path,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """:func:`pull` for code without an event loop."""
    return asyncio.run(pull(source, local_dir, options, connect_options, reporter))
