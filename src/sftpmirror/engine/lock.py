"""One deploy at a time per destination: a lock on the server, taken atomically, naming its
holder, kept alive by a heartbeat, recovered when its holder is gone (issue 18, F5).

The lock is a directory, ``.sftpmirror-lock`` beside the manifest: SFTP's MKDIR fails when it
exists, so two runs cannot both take it. It holds ``holder.json``: host, user, pid, start time,
the CI run when there is one, a token (this run's), and ``heartbeat``, the holder's clock,
rewritten every ``HEARTBEAT`` seconds. A lock whose heartbeat is older than ``STALE`` seconds
is a dead run's (``kill -9``, a lost machine), and so is one whose holder ran on this machine
in a process that is gone: the next run moves it aside (a rename: one run wins) and takes it.
The heartbeat's age reads two clocks, the holder's and ours: they must agree within a minute
or so (NTP does better). As a safety net, the holder checks at each heartbeat that
the lock is still its own, and stops its run if it is not.

A second run waits for the lock up to ``wait`` seconds (``--lock-wait``, default 0), then
stops with ``LockError`` (exit 7), naming the holder. ``--break-lock`` takes it regardless,
for a human who knows the holder is gone. ``--dry-run`` takes no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import posixpath
import socket
import time
from typing import Any

from sftpmirror.engine.model import Entry, Kind
from sftpmirror.engine.tree import NotFound, Tree, TreeError, read_bounded, temp_name
from sftpmirror.errors import LockError, RemoteError, SftpMirrorError

NAME = ".sftpmirror-lock"
HOLDER = "holder.json"
HEARTBEAT = 10.0  # seconds between heartbeats
STALE = 60.0  # a heartbeat older than this: the holder is gone
POLL = 1.0  # seconds between tries while waiting for the lock
HOLDERLESS = 5.0  # a lock with no holder written for this long was made by a run that died
MAX_TAKEOVERS = 3  # a lock taken over this often in one acquire and still not ours: stop
MAX_HOLDER_BYTES = 64 << 10
# The holder is written at a temporary name first: the same in every lock, so a run cut
# between the two leaves a name the run that takes the lock over knows to remove.
HOLDER_TAG = "0000000a"
_RUNNING: set[str] = set()  # tokens of the runs of this process that hold a lock now
CI_RUN_VARIABLES = ("GITHUB_RUN_ID", "CI_JOB_ID", "BUILD_ID", "CIRCLE_WORKFLOW_ID")


def holder_info(token: str) -> dict[str, Any]:
    """Who we are, for whoever finds the lock taken."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    ci = next((f"{v}={os.environ[v]}" for v in CI_RUN_VARIABLES if os.environ.get(v)), None)
    now = int(time.time())
    return {
        "token": token,
        "host": socket.gethostname(),
        "user": user,
        "pid": os.getpid(),
        "started": now,
        "heartbeat": now,
        "ci": ci,
    }


def _alive(pid: object) -> bool:
    """Is there a process ``pid`` on this machine (one we may not signal counts)?"""
    if not isinstance(pid, int) or pid <= 0:
        return True  # cannot tell: assume it is
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def describe(holder: dict[str, Any] | None) -> str:
    if not holder or holder.get("holderless"):
        return "a run that never said who it is"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    who = f"{holder.get('user', '?')}@{holder.get('host', '?')} pid {holder.get('pid', '?')}"
    ci = f", {holder['ci']}" if holder.get("ci") else ""
    return f"{who}{ci}, since {when}"


class DeployLock:
    def __init__(
        self,
        tree: Tree,
        directory: str,
        token: str,
        *,
        wait: float = 0.0,
        break_lock: bool = False,
        warn: Any = None,
    ) -> None:
        self.tree = tree
        self.directory = directory
        self.path = posixpath.join(directory, NAME) if directory else NAME
        self.holder_path = posixpath.join(self.path, HOLDER)
        self.token = token
        self.wait = wait
        self.break_lock = break_lock
        self.warn = warn
        self.info = holder_info(token)
        self.held = False
        self._writing: asyncio.Task[None] | None = None  # the holder, written once taken
        self._written = b""  # what this run last wrote there

    async def acquire(self, *, early: bool = False) -> None:
        """Take the lock (waiting up to ``wait`` seconds for it). ``early``: return once it is
        made, its holder still being written (two or three round trips less before the run's
        first request); ``written()`` then says it is, before the first change."""
        await self._acquire()
        if not early:
            await self.written()

    async def written(self) -> None:
        """The holder is written (its error raised, if writing it failed)."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        holderless_since: float | None = None
        taken_over = 0
        while True:
            if await self._try_take():
                return
            holder = await self._holder()
            if holder is None:
                # Made, and not written: its maker is one round trip from writing it, or died
                # right there (a cut at that moment). Seen so for HOLDERLESS seconds: dead.
                now = time.monotonic()
                holderless_since = holderless_since or now
                if now - holderless_since < HOLDERLESS:
                    await asyncio.sleep(POLL)
                    continue
                holder = {"holderless": True}
            if holder is not None and holder.get("token") == self.token:
                self.held = True  # ours, from before a reconnection
                _RUNNING.add(self.token)
                await self._write_holder()
                return
            if self.break_lock or self._stale(holder):
                if taken_over >= MAX_TAKEOVERS:
                    raise LockError(
                        f"the deploy lock was taken over {taken_over} times and is still not "
                        f"ours ({describe(holder)}): another deploy keeps making it, or the "
                        "server does not make it as asked",
                        hint="run with --debug to see each step; doctor checks the server",
                    )
                taken_over += 1
                holderless_since = None
                why = "--break-lock" if self.break_lock else "its holder stopped beating"
                if self.warn is not None:
                    self.warn(f"taking over the deploy lock of {describe(holder)} ({why})")
                await self._break()
                continue
            if time.monotonic() >= deadline:
                raise LockError(
                    f"another deploy holds the lock: {describe(holder)}",
                    hint=f"wait for it, or --lock-wait SECONDS; if it is gone, the lock is "
                    f"recovered {int(STALE)} s after its last heartbeat (or --break-lock)",
                )
            await asyncio.sleep(min(POLL, max(0.0, deadline - time.monotonic())))

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        """A heartbeat older than STALE, or a holder on this machine whose process is gone (a
        run killed, or one that lost its connection and could not release the lock), or a
        lock that stayed without a holder for HOLDERLESS seconds."""
        if holder is None:
            return False
        if holder.get("holderless"):
            return True
        if holder.get("host") == self.info["host"]:
            pid = holder.get("pid")
            if pid == os.getpid():  # this process: alive only while that run is
                return holder.get("token") not in _RUNNING
            if not _alive(pid):
                return True
        beat = holder.get("heartbeat")
        return isinstance(beat, int | float) and time.time() - beat > STALE

    async def _try_take(self, *, made_parent: bool = False) -> bool:
        try:
            await self.tree.mkdir(Entry(self.path, Kind.DIR, mode=0o700), perms=True)
        except TreeError as e:
            if await self.tree.file_type(self.path) is not None:
                return False  # taken
            if isinstance(e, NotFound) and not made_parent:
                await self._make_directory()  # a first deploy: the destination is not there yet
                return await self._try_take(made_parent=True)
            raise RemoteError(
                f"cannot take the deploy lock {self.tree.label}: {self.path}: {e}",
                hint="the account must be able to write in the destination directory",
            ) from None
        self.held = True
        _RUNNING.add(self.token)
        self._writing = asyncio.ensure_future(self._write_holder())
        return True

    async def _make_directory(self) -> None:
        """Make the directory the lock goes in (the destination's root, with its parents)."""
        kind = await self.tree.file_type(self.directory)
        if kind not in (None, "dir", "symlink"):
            where = f"{self.tree.label}" + (f" ({self.directory})" if self.directory else "")
            raise RemoteError(f"{where}: not a directory")
        try:
            await self.tree.mkdir(Entry(self.directory, Kind.DIR, mode=0o755), perms=True)
        except TreeError as e:
            raise RemoteError(
                f"cannot create {self.tree.label}"
                + (f" ({self.directory})" if self.directory else "")
                + f": {e}",
                hint="check the path, and that the account may write in its parent directory",
            ) from None

    async def _holder(self) -> dict[str, Any] | None:
        """Who holds the lock. Read at the size of what this run wrote last: where the holder
        is still that (the lock ours), its read is the open and one round trip."""
        try:
            size = len(self._written) or None
            data = await read_bounded(self.tree, self.holder_path, MAX_HOLDER_BYTES, size)
            holder = json.loads(data) if data is not None else None
        except (TreeError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    async def _write_holder(self) -> None:
        self.info["heartbeat"] = int(time.time())
        data = self._written = json.dumps(self.info).encode()
        entry = Entry(self.holder_path, Kind.FILE, len(data), int(time.time()), 0o600)
        # No mode of its own (the lock's directory is 0700): it is written before the server's
        # profile is known, and a server may refuse a mode given at creation.
        async with self.tree.open_write(entry, perms=False, tag=HOLDER_TAG) as writer:
            await writer.write(data, 0)

    async def _break(self) -> None:
        """Move the dead lock aside (a rename: of two runs breaking it, one wins) and remove it."""
        aside = f"{self.path}.broken.{self.token}"
        holder = await self._holder()
        try:
            await self.tree.rename(self.path, aside)
        except NotFound:
            return  # gone already
        except TreeError:
            return  # another run moved it first: try to take it again
        tokens = [self.token, str(holder.get("token", "")) if holder else ""]
        if not await _remove_tree(self.tree, aside, tokens) and self.warn is not None:
            self.warn(f"could not remove the old lock, moved aside to {aside}: remove it by hand")

    async def heartbeat(self) -> None:
        """Rewrite the heartbeat every ``HEARTBEAT`` seconds; LockError if the lock was taken
        over (then the run stops)."""
        while True:
            await asyncio.sleep(HEARTBEAT)
            holder = await self._holder()
            if holder is not None and holder.get("token") != self.token:
                self.held = False
                raise LockError(f"the deploy lock was taken over by {describe(holder)}")
            await self._write_holder()

    async def release(self) -> None:
        _RUNNING.discard(self.token)
        if not self.held:
            return
        self.held = False
        with contextlib.suppress(TreeError, SftpMirrorError):
            await self.written()  # (else the holder's rename could land after the removals)
        holder = await self._holder()
        if holder is not None and holder.get("token") != self.token:
            return  # not ours any more
        await _remove_tree(self.tree, self.path, [])

    async def release_quietly(self) -> None:
        """``release`` at the end of a run, whatever happened: if the connection is gone, the
        lock goes stale, and the next run takes it."""
        with contextlib.suppress(TreeError, SftpMirrorError):
            await self.release()


async def _remove_tree(tree: Tree, path: str, tokens: list[str]) -> bool:
    """Remove the lock directory and what can be in it: the holder, and a temporary of it
    that a holder killed while writing it left (``HOLDER_TAG``; tagged with its token by
    earlier versions)."""
    names = [HOLDER, temp_name(HOLDER, HOLDER_TAG)]
    names += [temp_name(HOLDER, t[:8]) for t in tokens if len(t) >= 8]
    # All at once, the directory last: a server answers a session's requests in order.
    done = await asyncio.gather(
        *(tree.remove(Entry(posixpath.join(path, name), Kind.FILE)) for name in names),
        tree.rmdir(Entry(path, Kind.DIR)),
        return_exceptions=True,
    )
    for result in done:
        if isinstance(result, BaseException) and not isinstance(result, TreeError):
            raise result
    return not isinstance(done[-1], BaseException)
