"""The journal: what a push has done so far, recorded on the server as it happens, so a rerun
or a reconnection resends only what did not land, sweeps only temporaries it knows are its
own, and repairs a swap a cut interrupted (issue 15: F5, F9, F14, F21).

One file beside the manifest (``.sftpmirror-journal``), JSON lines, written in place (never a
site file: its reader tolerates a last line cut short):

    {"journal": "sftpmirror", "version": 1, "tags": ["3fa9c2d1", …]}   the first line
    {"tag": "3fa9c2d1"}                                                  a later attempt's tag
    {"done": "css/site.css", "size": 812, "mtime": 1700000000, "sha256": "…"}
    {"swap": "index.html", "temp": ".sftpmirror.3fa9c2d1.index.html.part"}
    {"swap": "a.html", "temp": "….part", "aside": ".sftpmirror-backups/<id>/files/a.html"}

``tags`` name the runs whose temporaries (``.sftpmirror.<tag>.….part``, and ``….old`` for the
file a swap moved aside) may be on the server: those, and only those, are swept. ``done``
lines are files renamed into place, with the hash of the bytes sent: a rerun takes them over
the manifest. ``swap`` lines come before a replace that is not atomic (a server without
posix-rename, or a backup made by renames where the server has no hard links: ``aside`` is
where the old file went): a rerun that finds the final name missing puts the new file there
(or the old one back). The deploy lock (``lock.py``) makes sure the journal a run reads is a
dead run's, or its own from before a reconnection.

Bounds: at most ``MAX_BYTES`` are read; lines that are not ours are skipped. One write is in
flight at a time, and lines that come meanwhile go out together when it is answered: a file
that landed within one round trip of a cut may be sent again; never the other way round.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import re
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass, field
from typing import Any

from sftpmirror.engine.history import BACKUPS
from sftpmirror.engine.manifest import Record
from sftpmirror.engine.model import Entry, Kind
from sftpmirror.engine.tree import FileWriter, NotFound, Tree, TreeError, read_bounded

NAME = ".sftpmirror-journal"
FORMAT = "sftpmirror"
VERSION = 1
MAX_BYTES = 64 << 20
_TAG = re.compile(r"[0-9a-f]{8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(slots=True)
class Journaled:
    """What a journal says."""

    tags: set[str] = field(default_factory=set)
    done: dict[str, Record] = field(default_factory=dict)
    swaps: list[Swap] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Swap:
    """A replace that was not atomic: the new file at ``temp``, the old one at ``aside``."""

    path: str
    temp: str
    aside: str | None = None


def parse(data: bytes) -> Journaled | None:
    """The journal's content; None when the first line is not a journal's."""
    lines = data.split(b"\n")
    try:
        head = json.loads(lines[0])
    except ValueError:
        return None
    if not (isinstance(head, dict) and head.get("journal") == FORMAT):
        return None
    if head.get("version") != VERSION:
        return None
    found = Journaled()
    _take_tags(found, head.get("tags"))
    for raw in lines[1:]:
        try:
            line: Any = json.loads(raw)
        except ValueError:
            continue  # a line cut short by a crash, or not ours
        if not isinstance(line, dict):
            continue
        _take(found, line)
    return found


def _take_tags(found: Journaled, tags: object) -> None:
    if isinstance(tags, list):
        found.tags.update(t for t in tags if isinstance(t, str) and _TAG.fullmatch(t))


def _take(found: Journaled, line: dict[str, Any]) -> None:
    if isinstance(tag := line.get("tag"), str) and _TAG.fullmatch(tag):
        found.tags.add(tag)
    elif isinstance(path := line.get("done"), str):
        size, mtime, sha = line.get("size"), line.get("mtime"), line.get("sha256")
        if type(size) is int and type(mtime) is int and _is_sha256(sha):
            found.done[path] = Record(size, mtime, str(sha))
    elif isinstance(path := line.get("swap"), str):
        temp, aside = line.get("temp"), line.get("aside")
        if not isinstance(temp, str) or posixpath.dirname(temp) != posixpath.dirname(path):
            return
        if aside is None or (isinstance(aside, str) and _is_backup_of(aside, path)):
            found.swaps.append(Swap(path, temp, aside))


def _is_backup_of(aside: str, path: str) -> bool:
    """Is ``aside`` a backup area's place for ``path`` (``…/.sftpmirror-backups/<id>/files/
    <path>``)? A journal names no other file to rename."""
    head, files, tail = aside.rpartition("/files/")
    area = posixpath.basename(posixpath.dirname(head))
    return bool(files) and tail == path and area == BACKUPS and ".." not in aside.split("/")


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


async def read(tree: Tree, path: str) -> Journaled | None:
    """The journal at ``path``, None when there is none; bounded. A file there that is not a
    journal (or too large to be one) reads as an empty journal: nothing to repair, and the
    run that ends well removes it, as it removes its own."""
    try:
        there = await tree.kind_and_size(path)
        if there is None or there[0] != "file":
            return None
        data = await read_bounded(tree, path, MAX_BYTES, min(there[1], MAX_BYTES + 1))
    except NotFound:
        return None
    found = parse(data) if data is not None else None
    return found if found is not None else Journaled()


class Writer:
    """Appends lines to a new journal; call ``start`` first and ``close`` at the end."""

    def __init__(self, tree: Tree, path: str, *, records: bool = True) -> None:
        self.tree = tree
        self.path = path
        self.records = records  # False: no manifest to take "done" lines over
        self._opened: AbstractAsyncContextManager[FileWriter] | None = None
        self._file: FileWriter | None = None
        self._offset = 0
        self._pending: list[bytes] = []
        self._inflight: asyncio.Future[int] | None = None
        self._error: BaseException | None = None

    async def start(self, tags: list[str]) -> None:
        """Empty the journal and write its first line; awaited: from here on, a temporary of
        any of ``tags`` on the server is one the journal knows."""
        self._opened = self.tree.open_log(self.path)
        self._file = await self._opened.__aenter__()
        head = {"journal": FORMAT, "version": VERSION, "tags": tags}
        await self._write_now(_line(head))

    def done(self, path: str, size: int, mtime: int, sha256: str) -> None:
        """A file is in place (sent at once, or with the next write)."""
        if self.records:
            self._add(_line({"done": path, "size": size, "mtime": mtime, "sha256": sha256}))

    async def swap(self, path: str, temp: str, aside: str | None) -> None:
        """A replace that is not atomic is about to happen: written and awaited first."""
        line = {"swap": path, "temp": temp} | ({"aside": aside} if aside is not None else {})
        self._add(_line(line))
        await self.flush()

    def _add(self, line: bytes) -> None:
        self._pending.append(line)
        if self._inflight is None:
            self._send()

    def _send(self) -> None:
        """One write in flight at a time; what comes meanwhile goes out when it is answered
        (so a cut loses at most the lines of one round trip, in few requests)."""
        if not self._pending or self._file is None:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        task = asyncio.ensure_future(self._file.write(data, self._offset))
        self._offset += len(data)
        self._inflight = task
        task.add_done_callback(self._answered)

    def _answered(self, task: asyncio.Future[int]) -> None:
        self._inflight = None
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            self._error = self._error or error
            return
        self._send()

    async def _write_now(self, data: bytes) -> None:
        assert self._file is not None
        await self._file.write(data, self._offset)
        self._offset += len(data)

    async def flush(self) -> None:
        """Send what is gathered and wait for every write's answer (raising the first error)."""
        while self._error is None and (self._inflight is not None or self._pending):
            if self._inflight is None:
                self._send()
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            if self._opened is not None:
                opened, self._opened = self._opened, None
                await opened.__aexit__(None, None, None)

    async def abandon(self) -> None:
        """Stop writing (the run is ending on an error); what was sent stays."""
        self._pending.clear()
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            inflight.cancel()
            await asyncio.wait([inflight])
        if self._opened is not None:
            opened, self._opened = self._opened, None
            with suppress(TreeError, OSError):
                await opened.__aexit__(None, None, None)


async def remove(tree: Tree, path: str) -> None:
    """The run ended well: its journal is in the manifest now."""
    with suppress(TreeError):
        await tree.remove(Entry(path, Kind.FILE))


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
