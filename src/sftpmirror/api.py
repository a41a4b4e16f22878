"""The library API: push and pull are one mirror() with the sides swapped.

connect (``transport``) → RemoteTree and LocalTree (``trees``) → ``engine.mirror`` → Result,
the whole made again after a lost connection (``engine.retry``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import posixpath
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from sftpmirror.engine import release
from sftpmirror.engine.adopt import Adopted
from sftpmirror.engine.adopt import adopt as adopt_trees
from sftpmirror.engine.deploy import SUFFIX, DeployState, release_id
from sftpmirror.engine.history import History, git_commit, is_ancestor, new_id
from sftpmirror.engine.manifest import DEFAULT_NAME as DEFAULT_MANIFEST
from sftpmirror.engine.manifest import ManifestStore, inside_path
from sftpmirror.engine.mirror import (
    DEFAULT_JOBS,
    DEFAULT_RECONNECTS,
    DEFAULTS,
    MirrorOptions,
    fill_hashes,
)
from sftpmirror.engine.mirror import mirror as mirror_trees
from sftpmirror.engine.reporter import NullReporter, Reporter
from sftpmirror.engine.retry import with_reconnects
from sftpmirror.engine.rollback import rollback as rollback_tree
from sftpmirror.engine.tree import Excludes, Tree
from sftpmirror.errors import RemoteError, SftpMirrorError, UsageError
from sftpmirror.result import Result
from sftpmirror.transport.auth import ConnectOptions
from sftpmirror.transport.connect import open_session
from sftpmirror.transport.login import LoginTrace
from sftpmirror.trees.local import LocalTree
from sftpmirror.trees.remote import RemoteTree
from sftpmirror.url import RemoteSpec, parse_remote

__all__ = [
    "DEFAULTS",
    "DEFAULT_JOBS",
    "DEFAULT_RECONNECTS",
    "MirrorOptions",
    "Result",
    "fill_hashes",
    "history",
    "mirror",
    "pull",
    "pull_sync",
    "push",
    "push_sync",
    "rollback",
]


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
) -> Result:
    """Mirror ``src`` into ``dst`` (any two Trees): see ``engine.mirror.mirror``."""
    the_plan, report = await mirror_trees(
        src,
        dst,
        options,
        reporter,
        missing_source=missing_source,
        manifest_store=manifest_store,
        manifest_side=manifest_side,
        state=state,
    )
    return Result(the_plan, report)


def _manifest_store(remote: RemoteTree, options: MirrorOptions) -> ManifestStore | None:
    if options.local_manifest is not None:
        where = options.local_manifest.expanduser().absolute()
        local = LocalTree(where.parent, follow_symlinks=False, hash_cache=False)
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
    """Connect, open SFTP, run; made again after a lost connection (``engine.retry``)."""
    options = connect_options or ConnectOptions()

    async def attempt() -> Result:
        trace = LoginTrace()
        async with open_session(spec, options, trace) as session:
            for notice in trace.notices:  # "Permanently added … to the list of known hosts"
                reporter.warning(notice)
            remote = RemoteTree(session, spec.path, str(spec), warn=reporter.warning)
            return await run(remote)

    return await with_reconnects(
        attempt, lambda result: result.report, reconnects=reconnects, reporter=reporter
    )


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
        if await asyncio.to_thread(local.exists):
            raise UsageError(
                f"not a directory: {local} (the source is a directory: its contents are published)"
            )
        raise UsageError(f"local directory not found: {local}")
    spec = _spec(dest)
    source = LocalTree(local, follow_symlinks=True)
    reporter = reporter or NullReporter()
    state = deploy_state(options, secrets.token_hex(8))
    # The source's git commit (for the history) is a process: it runs beside the connection.
    looked_up = asyncio.ensure_future(asyncio.to_thread(git_commit, local))
    rid = new_id()  # --release symlink: the same across reconnections (a retry goes on with it)
    if options.release is not None:
        _release_options(options)

    async def run(remote: RemoteTree) -> Result:
        commit = await asyncio.shield(looked_up)
        older = (lambda live: is_ancestor(local, commit, live)) if commit else None
        deploy = dataclasses.replace(
            state, commit=commit, is_older=older if options.refuse_older else None
        )
        if options.release is not None:
            top, open_tree, name = _release_trees(remote)
            the_plan, report = await release.push(
                source, top, open_tree, name, rid, options, reporter, deploy
            )
            return Result(the_plan, report)
        store = _manifest_store(remote, options)
        return await mirror(
            source, remote, options, reporter, manifest_store=store, manifest_side="dst",
            state=deploy,
        )  # fmt: skip

    try:
        return await _over_sftp(spec, connect_options, reporter, run, options.reconnects)
    finally:
        looked_up.cancel()  # not awaited if the connection failed
        # The hashes of the files uploaded: the next run need not read them.
        await asyncio.to_thread(source.save_hash_cache)


def _release_options(options: MirrorOptions) -> None:
    if options.local_manifest is not None or options.manifest != DEFAULT_MANIFEST:
        raise UsageError(
            "--release symlink keeps the manifest beside the releases: not with --manifest, "
            "--no-manifest or --local-manifest"
        )


def _release_trees(remote: RemoteTree) -> tuple[RemoteTree, Callable[[str], RemoteTree], str]:
    """For ``--release symlink``: a tree on the destination's parent directory (where its link
    and the releases are), one for any path in it, and the link's name."""
    parent, name = posixpath.split(remote.root.rstrip("/"))
    session, warn = remote.session, remote.warn

    def open_tree(rel: str) -> RemoteTree:
        return RemoteTree(session, posixpath.join(parent, rel), f"{remote.label} ({rel})", warn)

    return RemoteTree(session, parent, parent or ".", warn), open_tree, name


async def _release_link(remote: RemoteTree) -> tuple[RemoteTree, str] | None:
    """Where the destination is a link to one of our releases: the parent's tree and the
    link's name (rollback and history then work on the releases)."""
    top, _, name = _release_trees(remote)
    if name in ("", ".", "..") or await top.file_type(name) != "symlink":
        return None
    if release_id(await top.readlink(name)) is None:
        return None
    return top, name


def deploy_state(options: MirrorOptions, token: str) -> DeployState:
    """Where a push keeps its lock and journal: beside a manifest on the server, else in the
    destination's root (``token``: this run's, kept across reconnections)."""
    directory, inside = "", True
    if options.manifest and options.local_manifest is None:
        directory = posixpath.dirname(posixpath.normpath(options.manifest))
        inside = inside_path(options.manifest) is not None
    return DeployState(
        directory=directory,
        token=token,
        inside=inside,
        lock_wait=options.lock_wait,
        break_lock=options.break_lock,
        keep=options.keep if options.manifest and options.local_manifest is None else 0,
    )


async def pull(
    source: str | RemoteSpec,
    local_dir: str | Path,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Result:
    """Mirror the remote directory ``source`` into ``local_dir`` (lftp ``mirror``)."""
    if options.release is not None:
        raise UsageError("--release is a push's: a pull reads whatever the destination links to")
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


async def rollback(
    dest: str | RemoteSpec,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
    *,
    to: str | None = None,
) -> tuple[str, Result]:
    """Put back the deploy before the live one (or ``to``), by links and renames on the server:
    nothing is uploaded. Returns the deploy put back, and what was done."""
    reporter = reporter or NullReporter()
    spec = _spec(dest)
    state = deploy_state(options, secrets.token_hex(8))
    options_ = connect_options or ConnectOptions()
    if not options.manifest or options.local_manifest is not None:
        raise UsageError("rollback needs the manifest on the server (not --local-manifest)")
    manifest = options.manifest

    async def attempt() -> tuple[str, Result]:
        async with open_session(spec, options_) as session:
            remote = RemoteTree(session, spec.path, str(spec), warn=reporter.warning)
            if (found := await _release_link(remote)) is not None:
                top, name = found
                target, the_plan, report = await release.rollback(
                    top, name, to, reporter, state, dry_run=options.dry_run
                )
                return target, Result(the_plan, report)
            store = ManifestStore(remote, manifest)
            target, the_plan, report = await rollback_tree(
                remote, state, store, reporter, to=to, dry_run=options.dry_run
            )
            return target, Result(the_plan, report)

    reporter.phase("connecting")
    return await attempt()


async def history(
    dest: str | RemoteSpec,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
) -> list[dict[str, object]]:
    """The deploys recorded on the server, oldest first."""
    spec = _spec(dest)
    state = deploy_state(options, "")
    async with open_session(spec, connect_options or ConnectOptions()) as session:
        remote = RemoteTree(session, spec.path, str(spec))
        if (found := await _release_link(remote)) is not None:
            top, name = found
            return list((await History(top, name + SUFFIX).load()).records)
        return list((await History(remote, state.directory).load()).records)


async def adopt(
    local_dir: str | Path,
    dest: str | RemoteSpec,
    options: MirrorOptions = DEFAULTS,
    connect_options: ConnectOptions | None = None,
    reporter: Reporter | None = None,
) -> Adopted:
    """Record in the manifest the remote files that match ``local_dir`` (hashed on the server
    with ``options.verify``): a site deployed by another tool becomes ours, nothing uploaded."""
    local = Path(local_dir)
    if not await asyncio.to_thread(local.is_dir):
        raise UsageError(f"local directory not found: {local}")
    if not options.manifest or options.local_manifest is not None:
        raise UsageError("adopt records into the manifest on the server (not --local-manifest)")
    reporter = reporter or NullReporter()
    spec = _spec(dest)
    state = deploy_state(options, secrets.token_hex(8))
    manifest_path = options.manifest
    reporter.phase("connecting")
    async with open_session(spec, connect_options or ConnectOptions()) as session:
        remote = RemoteTree(session, spec.path, str(spec), warn=reporter.warning)
        store = ManifestStore(remote, manifest_path)
        inside = store.inside
        reserved = (frozenset({inside}) if inside else frozenset()) | state.reserved()
        return await adopt_trees(
            LocalTree(local, follow_symlinks=True), remote, state, store, reporter,
            excludes=Excludes(options.excludes, reserved), verify=options.verify,
        )  # fmt: skip
