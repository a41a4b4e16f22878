"""Releases (``--release symlink``, issue 18): the web root is a symbolic link to one complete
release, and a deploy goes live by swapping that link: a visitor sees the old site or the new
one, never a mix of the two, and a rollback is one more swap.

In the web root's parent directory (the web root ``public_html`` here):

    public_html -> public_html.releases/<id>   a relative link, replaced by posix-rename
    public_html.releases/<id>/                   one release: the whole site
    public_html.releases/.sftpmirror-…           the manifest (the live release's), the lock,
                                                 the journal and the history

A push takes the lock, makes the new release beside the live one with every file of the live
release hard-linked into it (no copy: one request per file, ``LINKS_AT_ONCE`` in flight), runs
the usual push into it (changed files uploaded and replaced; the live release is never
written), then makes the new link at a temporary name, reads it back, and renames it over the
web root's. The last ``keep`` releases are kept (and the live one, always); older ones, and
releases a failed run left, are removed once the new one is live. Without hard links the new
release is uploaded whole. The server must make symbolic links and have posix-rename (a link
cannot be replaced atomically otherwise): ``doctor`` says whether it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sftpmirror.engine.concurrency import run_pool
from sftpmirror.engine.deploy import RELEASE_ID as _ID
from sftpmirror.engine.deploy import SUFFIX, DeployState, release_id
from sftpmirror.engine.history import (
    History,
    ensure_dir,
    new_id,
    record,
    remove_dirs,
    remove_files,
)
from sftpmirror.engine.lock import DeployLock
from sftpmirror.engine.manifest import MAX_COMPRESSED, ManifestStore
from sftpmirror.engine.mirror import MirrorOptions, mirror
from sftpmirror.engine.model import Action, Entry, Kind, Listing, Op, Phase, Plan, Report
from sftpmirror.engine.reporter import Reporter
from sftpmirror.engine.tree import (
    Excludes,
    NotFound,
    Tree,
    TreeError,
    Unsupported,
    new_tag,
    read_bounded,
    temp_name,
)
from sftpmirror.errors import RemoteError, UsageError

T = TypeVar("T")
log = logging.getLogger("sftpmirror.release")

MANIFESTS = ".sftpmirror-manifests"  # in the releases directory: <id>.json.gz, one a release
LINKS_AT_ONCE = 64


@dataclass(frozen=True, slots=True)
class Site:
    """The web root's link (``name``, in the ``top`` tree: its parent) and its releases."""

    name: str
    live: str | None  # the release the link names now; None: no link yet

    @property
    def directory(self) -> str:
        return self.name + SUFFIX

    def release(self, rid: str) -> str:
        return f"{self.directory}/{rid}"

    @property
    def manifests(self) -> str:
        return f"{self.directory}/{MANIFESTS}"


def check_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name:
        raise UsageError(
            "--release symlink needs a destination directory with a name (public_html, not / "
            "nor the login directory): its parent holds the link and the releases"
        )
    return name


async def find(top: Tree, name: str) -> Site:
    """The web root as it is: missing (the first release makes the link), or a link to one of
    our releases; anything else is refused, with what to do."""
    kind = await top.file_type(check_name(name))
    if kind is None:
        return Site(name, None)
    if kind != "symlink":
        what = "a directory" if kind == "dir" else f"a {kind}"
        raise UsageError(
            f"{name} is {what}: --release symlink needs it to be a symbolic link to a release "
            "(or missing, for the first)",
            hint=f"make it one once (README, Releases): rename {name} to "
            f"{name}{SUFFIX}/first and link {name} to it, with sftp's rename and ln -s",
        )
    target = await top.readlink(name)
    rid = release_id(target)
    if rid is None or posixpath.dirname(target.rstrip("/")) != name + SUFFIX:
        raise UsageError(
            f"{name} links to {target}, not to a release of sftpmirror's ({name}{SUFFIX}/<id>)"
        )
    return Site(name, rid)


async def clone(top: Tree, live: Listing, source: str, dest: str, *, links: bool) -> int:
    """Make ``dest`` hold what the live release ``source`` holds, by hard links: directories
    level by level (each level's at once, with their modes), then every file, LINKS_AT_ONCE in
    flight. Tolerates what an earlier try (before a reconnection) made. Returns the files
    linked; 0 where the tree makes no hard links (the push then uploads every file)."""
    levels: dict[int, list[Entry]] = {}
    files: list[str] = []
    for path, entry in live.entries.items():
        if entry.kind is Kind.DIR:
            levels.setdefault(path.count("/"), []).append(entry)
        elif entry.kind is Kind.FILE:
            files.append(path)
    if not files or not links:
        return 0
    for depth in sorted(levels):
        await asyncio.gather(
            *(ensure_dir(top, posixpath.join(dest, e.path), e.mode & 0o7777 or 0o755)
              for e in levels[depth])
        )  # fmt: skip
    linked = 0

    async def link(path: str) -> None:
        nonlocal linked
        there = posixpath.join(dest, path)
        try:
            await top.link(posixpath.join(source, path), there)
        except TreeError:
            if await top.file_type(there) != "file":
                raise
        linked += 1

    await run_pool(files, link, LINKS_AT_ONCE)
    return linked


async def make_release(top: Tree, site: Site, rid: str) -> None:
    """The releases directory and its manifests' (the first time), and the new release's."""
    for path, mode in ((site.directory, 0o755), (site.manifests, 0o700),
                       (site.release(rid), 0o755)):  # fmt: skip
        await ensure_dir(top, path, mode)


async def check_rename(top: Tree, site: Site, tag: str) -> None:
    """Can a symbolic link be renamed over another, as a link? That needs posix-rename, and a
    rename that does not follow the link (ProFTPD's does, and would move what it names: a
    whole release). Found out with two links to an empty file, all three ours, before anything
    is made; a server that makes no links, or a directory that cannot be written, is found out
    here too."""
    scratch, a, b = (temp_name(f"{site.name}.{n}", tag) for n in ("f", "a", "b"))
    try:
        try:
            async with top.open_write(Entry(scratch, Kind.FILE), perms=False) as writer:
                await writer.write(b"", 0)
        except TreeError as e:
            raise _unwritable(site, e) from None
        for link in (a, b):
            await _link(top, site, posixpath.basename(scratch), link)
        try:
            await top.move_into_place(a, b, aside=None)
        except TreeError as e:
            raise _no_swap(f"{e}: no posix-rename, or a rename that follows links") from None
        if await top.file_type(b) != "symlink":
            raise _no_swap("the rename followed the link and moved what it names")
    finally:
        for name in (b, a, scratch):
            await drop_link(top, name)


async def _link(top: Tree, site: Site, target: str, path: str) -> None:
    try:
        await top.symlink(target, path)
    except Unsupported as e:
        raise RemoteError(
            f"the server makes no symbolic links ({e}): --release symlink cannot be used here",
            hint="deploy in place (without --release symlink)",
        ) from None
    except TreeError as e:
        raise _unwritable(site, e) from None


def _no_swap(why: str) -> RemoteError:
    return RemoteError(
        f"the server does not rename a symbolic link over another as a link ({why}): the web "
        "root's link cannot be swapped; --release symlink cannot be used here",
        hint="deploy in place (without --release symlink)",
    )


def _unwritable(site: Site, e: TreeError) -> RemoteError:
    return RemoteError(
        f"cannot make a symbolic link beside {site.name}: {e}",
        hint=f"--release symlink needs the directory holding {site.name} to be writable",
    )


async def make_link(top: Tree, site: Site, rid: str, tag: str) -> str:
    """The link to ``rid``, made at a temporary name beside the web root's and read back before
    anything is built: a server that makes no symbolic links, or reads SYMLINK's two paths the
    other way round, is found out while nothing has changed. Returns the temporary's name."""
    target = site.release(rid)
    tmp = temp_name(site.name, tag)
    if await top.file_type(tmp) is not None:  # made by a try before a reconnection
        await top.remove(Entry(tmp, Kind.FILE))
    await check_rename(top, site, tag)
    await _link(top, site, target, tmp)
    try:
        made = await top.readlink(tmp)
        # ProFTPD answers READLINK with the link resolved (absolute, in its own view of the
        # tree), though the link holds what it was given.
        if made != target and not (made.startswith("/") and made.endswith("/" + target)):
            raise RemoteError(
                f"the server made a link to {made!r} when asked for one to {target!r}: "
                "--release symlink cannot be used here"
            )
    except BaseException:
        await drop_link(top, tmp)
        raise
    return tmp


async def swap(top: Tree, site: Site, tmp: str) -> None:
    """The link made by ``make_link`` renamed over the web root's by posix-rename: atomic."""
    try:
        await top.move_into_place(tmp, site.name, aside=None)
    except TreeError as e:
        await drop_link(top, tmp)
        raise RemoteError(
            f"cannot put the new link in place of {site.name}: {e}",
            hint="--release symlink needs posix-rename (doctor says whether the server has it)",
        ) from None
    except BaseException:
        await drop_link(top, tmp)
        raise


async def drop_link(top: Tree, tmp: str) -> None:
    with contextlib.suppress(TreeError, RemoteError):
        await asyncio.shield(top.remove(Entry(tmp, Kind.FILE)))


async def releases(open_tree: Callable[[str], Tree], site: Site) -> list[str]:
    """The releases there are (a listing of the releases directory, one level deep)."""
    listing = await open_tree(site.directory).scan(Excludes(("/*/*",)))
    return sorted(p for p, e in listing.entries.items() if e.kind is Kind.DIR and _ID.fullmatch(p))


async def prune(
    top: Tree, open_tree: Callable[[str], Tree], site: Site, history: History, keep: int
) -> list[str]:
    """Remove the releases but the live one and the last ``keep`` deploys' (releases a failed
    run left too); returns those removed."""
    recorded = [str(r["id"]) for r in history.deploys()]
    wanted = set(recorded[-max(keep, 1) :]) | {site.live or ""}
    removed: list[str] = []
    for rid in await releases(open_tree, site):
        if rid in wanted:
            continue
        await remove_tree(top, open_tree, site.release(rid))
        with contextlib.suppress(TreeError):
            await top.remove(Entry(f"{site.manifests}/{rid}.json.gz", Kind.FILE))
        removed.append(rid)
    for entry in history.records:
        if entry.get("id") in removed:
            entry["backup"] = False
    return removed


async def remove_tree(top: Tree, open_tree: Callable[[str], Tree], path: str) -> None:
    """A release removed: its files, then its directories deepest first, then itself."""
    listing = await open_tree(path).scan(Excludes())
    entries = [(posixpath.join(path, p), e.kind) for p, e in listing.entries.items()]
    await remove_files(top, [p for p, kind in entries if kind is not Kind.DIR])
    await remove_dirs(top, [*(p for p, kind in entries if kind is Kind.DIR), path])


async def go_back(
    top: Tree, site: Site, history: History, to: str | None, tag: str, *, dry_run: bool
) -> tuple[str, str]:
    """A rollback: the link swapped to an older release (which must still be there); recorded
    as a deploy of kind "rollback". Returns (the release made live, the one it replaced)."""
    target = history.pick(site.live, to, "release")
    if await top.file_type(site.release(target)) != "dir":
        raise RemoteError(
            f"release {target} was removed (only the last releases are kept): it cannot be "
            "made live again",
            hint=f"push the source of {target} again instead",
        )
    if dry_run:
        return target, site.live or ""
    await swap(top, site, await make_link(top, site, target, tag))
    await history.append(record("rollback", new_id(), target, release=True,
                                rolled_back=[site.live]))  # fmt: skip
    return target, site.live or ""


async def push(
    src: Tree,
    top: Tree,
    open_tree: Callable[[str], Tree],
    name: str,
    rid: str,
    options: MirrorOptions,
    reporter: Reporter,
    state: DeployState,
) -> tuple[Plan, Report]:
    """Build release ``rid`` of ``src`` beside the live one and make it live (see above);
    ``rid`` is the same across reconnections, so a second try goes on with the same release."""
    site = await find(top, name)
    new = open_tree(site.release(rid))
    inner = dataclasses.replace(state, directory="..", inside=False, keep=0)
    if options.dry_run:  # what would be uploaded: against the live release
        if site.live is None:
            return await mirror(src, new, options, reporter, state=inner)
        live = open_tree(site.release(site.live))
        return await mirror(src, live, options, reporter, manifest_store=_manifest(live, site.live),
                            manifest_side="dst", state=inner)  # fmt: skip
    tmp = await make_link(top, site, rid, state.token[:8] or new_tag())
    held = state.lock(top, reporter.warning, site.directory)
    try:
        await held.acquire()
        history = await History(top, site.directory).load()
        await make_release(top, site, rid)
        linked = 0
        if site.live is not None:
            await _seed_manifest(top, site, site.live, rid)
            reporter.phase("linking")
            listing = await open_tree(site.release(site.live)).scan(Excludes())
            links = (await new.capabilities()).links
            linked = await _beating(held, clone(top, listing, site.release(site.live),
                                                site.release(rid), links=links))  # fmt: skip
            if not links:
                reporter.warning(
                    "the server makes no hard links: the new release is uploaded whole"
                )

        async def go_live(report: Report) -> None:
            reporter.phase("going live")
            await swap(top, site, tmp)
            counts = {op.value: n for op, n in report.done.items() if n}
            await history.append(record("deploy", rid, rid, commit=state.commit, counts=counts,
                                        backup=True, release=True, linked=linked))  # fmt: skip
            live = dataclasses.replace(site, live=rid)
            if await prune(top, open_tree, live, history, options.keep):
                await history.save()
            report.release = live.release(rid)

        return await mirror(src, new, options, reporter, manifest_store=_manifest(new, rid),
                            manifest_side="dst", state=inner, after=go_live)  # fmt: skip
    finally:
        await drop_link(top, tmp)  # (gone once renamed: this is for a run that failed)
        await asyncio.shield(held.release_quietly())


def _manifest(release: Tree, rid: str) -> ManifestStore:
    """A release's manifest, beside the releases (what its files are, as deployed): one per
    release, so a release made live again by a rollback is known by its own."""
    return ManifestStore(release, f"../{MANIFESTS}/{rid}.json.gz", in_mirrored_tree=False)


async def _seed_manifest(top: Tree, site: Site, live: str, rid: str) -> None:
    """The new release starts as the live one (linked): so does its manifest. A hard link
    (the push then replaces it: the live one is untouched), or a copy where there are none;
    nothing where the live release has none (its files are then compared by hash)."""
    old, new = f"{site.manifests}/{live}.json.gz", f"{site.manifests}/{rid}.json.gz"
    if await top.file_type(new) == "file":  # a second try, after a reconnection
        return
    try:
        await top.link(old, new)
        return
    except NotFound:
        return
    except TreeError:
        pass
    data = await read_bounded(top, old, MAX_COMPRESSED)
    if data is not None:
        item = Entry(new, Kind.FILE, len(data), int(time.time()), 0o600)
        async with top.open_write(item, perms=True) as writer:
            await writer.write(data, 0)


async def _beating(held: DeployLock, work: Awaitable[T]) -> T:
    """``work`` with the lock's heartbeat beside it (a long clone keeps the lock)."""
    beat = asyncio.ensure_future(held.heartbeat())
    try:
        return await work
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await beat


async def rollback(
    top: Tree,
    name: str,
    to: str | None,
    reporter: Reporter,
    state: DeployState,
    *,
    dry_run: bool,
) -> tuple[str, Plan, Report]:
    """Make the release before the live one (or ``to``) live again: one link swap."""
    site = await find(top, name)
    if site.live is None:
        raise UsageError(f"{name} does not exist: no release to roll back")
    held: DeployLock | None = None
    if not dry_run:
        held = state.lock(top, reporter.warning, site.directory)
        await held.acquire()
    try:
        history = await History(top, site.directory).load()
        started = time.monotonic()
        target, was = await go_back(top, site, history, to, new_tag(), dry_run=dry_run)
        action = Action(Op.REPLACE, Entry(name, Kind.SYMLINK), f"{was} → {target}")
        the_plan = Plan((Phase("rollback", ((action,),)),))
        reporter.planned(the_plan)
        report = Report(dry_run=dry_run)
        if not dry_run:
            report.done[Op.REPLACE] += 1
            report.release = site.release(target)
            reporter.done(action, 0)
        report.elapsed = time.monotonic() - started
        return target, the_plan, report
    finally:
        if held is not None:
            await held.release_quietly()
