"""The library API: push and pull are one mirror() with the sides swapped.

scan both trees (concurrently) → plan() (pure) → execute() (unless dry-run) → Result
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .auth import ConnectOptions
from .errors import ConnectError, RemoteError, SftpMirrorError, UsageError
from .local import LocalTree
from .model import Plan, Report
from .plan import PlanOptions, plan
from .progress import NullReporter, Reporter
from .remote import CONNECTION_ERRORS, RemoteTree
from .ssh import connect, open_sftp
from .transfer import execute
from .tree import Excludes, Tree
from .url import RemoteSpec, parse_remote

DEFAULT_JOBS = 16


@dataclass(frozen=True, slots=True)
class MirrorOptions:
    delete: bool = False
    dry_run: bool = False
    excludes: tuple[str, ...] = ()
    jobs: int = DEFAULT_JOBS
    perms: bool = True


DEFAULTS = MirrorOptions()


@dataclass(slots=True)
class Result:
    plan: Plan
    report: Report = field(default_factory=Report)


async def mirror(
    src: Tree,
    dst: Tree,
    options: MirrorOptions,
    reporter: Reporter,
    *,
    missing_source: type[SftpMirrorError] = UsageError,
) -> Result:
    excludes = Excludes(options.excludes)
    src_listing, dst_listing = await asyncio.gather(src.scan(excludes), dst.scan(excludes))
    if not src_listing.root_exists:
        raise missing_source(f"source directory not found: {src.label}")
    the_plan = plan(src_listing, dst_listing, PlanOptions(options.delete, options.perms))
    for warning in the_plan.warnings:
        reporter.warning(warning)
    if options.dry_run:
        return Result(the_plan, Report(dry_run=True))
    report = await execute(
        the_plan, src, dst, jobs=options.jobs, perms=options.perms, reporter=reporter
    )
    return Result(the_plan, report)


def _spec(remote: str | RemoteSpec) -> RemoteSpec:
    return parse_remote(remote) if isinstance(remote, str) else remote


async def _over_sftp(
    spec: RemoteSpec,
    connect_options: ConnectOptions | None,
    run: Callable[[RemoteTree], Awaitable[Result]],
) -> Result:
    """Connect, open SFTP, run; a connection lost on the way is a ConnectError (exit 3)."""
    async with connect(spec, connect_options or ConnectOptions()) as conn, open_sftp(conn) as sftp:
        try:
            return await run(RemoteTree(sftp, spec.path, str(spec)))
        except CONNECTION_ERRORS as e:
            raise ConnectError(f"connection lost: {e}") from None


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
    return await _over_sftp(
        _spec(dest),
        connect_options,
        lambda remote: mirror(source, remote, options, reporter or NullReporter()),
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
    return await _over_sftp(
        _spec(source),
        connect_options,
        lambda remote: mirror(
            remote, dest, options, reporter or NullReporter(), missing_source=RemoteError
        ),
    )
