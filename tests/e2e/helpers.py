"""Helpers for the end-to-end tests: run the CLI, build sites, snapshot trees on disk, log in
with plain asyncssh and read its log."""

from __future__ import annotations

import logging
import os
import random
import re
import shutil
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import asyncssh
import pytest
from click.testing import CliRunner, Result

from sftpmirror.cli.app import main
from sftpmirror.engine.chmod import DEFAULT_RULES, ChmodRules
from sftpmirror.engine.manifest import DEFAULT_NAME as MANIFEST
from tests.conftest import Target

STATE = (".sftpmirror-history.json", ".sftpmirror-backups")
_PROBE = re.compile(rb"/\.sftpmirror\.[0-9a-f]{8}\.(probe|probe2|none|link)\.part(\.x)?$")


def ours(path: bytes) -> bool:
    """sftpmirror's own state on a server, not the site: the deploy lock, the journal, the
    history, the backups, and the server profile's probe files."""
    return (
        _PROBE.search(path) is not None
        or b"/.sftpmirror-lock" in path
        or b"/.sftpmirror-backups" in path
        or b"/.sftpmirror-journal" in path
        or b"sftpmirror-history.json" in path  # and its temporary
    )


def run_cli(
    *args: str,
    target: Target | None = None,
    password: str | None = None,
    known_hosts: bool = True,
) -> Result:
    """``sftpmirror ARGS`` in-process; the password goes through the environment, never argv."""
    if password is None:
        password = target.password if target else ""
    env = {"SFTPMIRROR_PASSWORD": password}
    extra: list[str] = []
    if target is not None and known_hosts:
        extra = ["--known-hosts", str(target.known_hosts)]
    return CliRunner().invoke(main, [*args, *extra], env=env, catch_exceptions=False)


def make_site(root: Path, seed: int = 1) -> Path:
    """A small Hugo-like site: nested pages, assets, an empty file, odd names, a large file."""
    rng = random.Random(seed)
    files = {
        "index.html": b"<html>home</html>\n",
        "404.html": b"not found\n",
        "sitemap.xml": b"<urlset/>\n",
        "css/main.css": b"body { color: black }\n",
        "js/app.js": b"console.log(1)\n",
        "posts/hello-world/index.html": b"<p>hello</p>\n",
        "posts/hello-world/cover.jpg": rng.randbytes(3000),
        "posts/second post/index.html": b"<p>second</p>\n",
        "tags/\u65e5\u672c\u8a9e/index.html": "<p>\u65e5\u672c\u8a9e</p>\n".encode(),
        "empty.txt": b"",
        "big.bin": rng.randbytes(700_000),
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "js" / "app.js").chmod(0o600)
    (root / "empty-dir").mkdir()
    return root


def make_remote_site(target: Target, seed: int = 1) -> Path:
    """make_site() in the server's directory, owned by the login user as its uploads would be."""
    make_site(target.disk, seed)
    if target.kind == "openssh":
        for dirpath, dirnames, filenames in os.walk(target.disk):
            for name in [*dirnames, *filenames]:
                shutil.chown(Path(dirpath) / name, target.user, target.user)
    return target.disk


@dataclass(frozen=True)
class Node:
    kind: str
    data: bytes | None
    mode: int
    mtime: int | None


def snapshot(root: Path, *, with_dir_mtime: bool = False) -> dict[str, Node]:
    """Everything under ``root``: kind, bytes, permission bits, whole-second mtime of files."""
    nodes: dict[str, Node] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                nodes[rel] = Node("dir", None, mode, int(st.st_mtime) if with_dir_mtime else None)
            elif stat.S_ISLNK(st.st_mode):
                nodes[rel] = Node("link", os.readlink(path).encode(), 0, None)
            else:
                nodes[rel] = Node("file", path.read_bytes(), mode, int(st.st_mtime))
    return nodes


def assert_same_tree(source: Path, dest: Path, *, chmod: ChmodRules | None = DEFAULT_RULES) -> None:
    """Byte for byte, mtime for mtime, and the mode ``chmod`` makes of the source's (the
    default rules unless told; None: the source's own); the manifest is not part of the site."""
    a, b = snapshot(source), snapshot(dest)
    for tree in (a, b):  # the manifest, the history and the backups are not part of the site
        for rel in [r for r in tree if r == MANIFEST or r.startswith(STATE)]:
            del tree[rel]
    assert sorted(a) == sorted(b), (
        f"paths differ: only in source {set(a) - set(b)}, only in dest {set(b) - set(a)}"
    )
    for rel, node in a.items():
        if chmod is not None and node.kind != "link":
            node = replace(node, mode=chmod.apply(node.mode, is_dir=node.kind == "dir"))
        assert node == b[rel], f"{rel} differs: source {node!r:.200} dest {b[rel]!r:.200}"


@asynccontextmanager
async def plain_connect(
    target: Target, **options: Any
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """asyncssh as it comes (no lean_packets), logging in with the target's password."""
    async with asyncssh.connect(
        target.host,
        target.port,
        username=target.user,
        password=target.password,
        known_hosts=str(target.known_hosts),
        client_keys=None,
        agent_path=None,
        preferred_auth="password,keyboard-interactive",
        **options,
    ) as conn:
        yield conn


class Records(logging.Handler):
    """asyncssh's log lines from this thread: the client's (servers run in threads of their own)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())

    def sent(self, name: str, since: str = "") -> int:
        """Packets of this type sent (after the first ``since`` packet, when given)."""
        lines = self.lines
        if since:
            lines = lines[next(i for i, x in enumerate(lines) if f"] Sent {since} (" in x) :]
        return sum(1 for line in lines if f"] Sent {name} (" in line)


@contextmanager
def asyncssh_log(debug_level: int) -> Iterator[Records]:
    records = Records()
    log = logging.getLogger("asyncssh")
    old_level = log.level
    log.addHandler(records)
    log.setLevel(logging.DEBUG)
    asyncssh.set_debug_level(debug_level)
    try:
        yield records
    finally:
        asyncssh.set_debug_level(1)
        log.setLevel(old_level)
        log.removeHandler(records)


class Packet(NamedTuple):
    """An SFTP packet of a session: ``send`` (a request: its type, id and the rest of it) or
    ``recv`` (an answer: its type and the id of the request it answers)."""

    kind: str
    type: int
    id: int
    payload: bytes


def record_sftp(monkeypatch: pytest.MonkeyPatch) -> list[Packet]:
    """What every SFTP session started from now on sends and gets, in order (on the session's
    own objects, so no fast path is switched off by it)."""
    events: list[Packet] = []
    start = asyncssh.SSHClientConnection.start_sftp_client

    async def start_recorded(self: asyncssh.SSHClientConnection, *args: Any) -> Any:
        sftp = await start(self, *args)
        handler = sftp._handler
        writer, process = handler._writer, handler._process_packet
        assert writer is not None
        write = writer.write

        def writing(data: bytes) -> None:  # whole SFTP packets, one or more
            view = memoryview(data)
            while view:
                length = int.from_bytes(view[:4], "big")
                pktid = int.from_bytes(view[5:9], "big")
                events.append(Packet("send", view[4], pktid, bytes(view[9 : 4 + length])))
                view = view[4 + length :]
            write(data)

        async def processing(pkttype: int, pktid: int, packet: Any) -> None:
            events.append(Packet("recv", pkttype, pktid, b""))
            await process(pkttype, pktid, packet)

        setattr(writer, "write", writing)  # noqa: B010 - this session's channel only
        setattr(handler, "_process_packet", processing)  # noqa: B010
        return sftp

    monkeypatch.setattr(asyncssh.SSHClientConnection, "start_sftp_client", start_recorded)
    return events


def trips(events: list[Packet], start: int, end: int) -> list[list[int]]:
    """The requests from ``start`` to ``end``, one list per run no answer came between."""
    found: list[list[int]] = []
    answered = True
    for packet in events[start:end]:
        if packet.kind == "recv":
            answered = True
        elif answered:
            found.append([packet.type])
            answered = False
        else:
            found[-1].append(packet.type)
    return found
