"""Listing with less work per name (issue 19): SSH_FXP_NAME replies decoded straight into
tuples exactly as asyncssh decodes them, the remote scan's fast path for plain names giving what
``RemoteTree._entry`` gives, NFC normalisation and the name checks skipped only where they
cannot change anything, and the collector paused while the big structures are built."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import unicodedata
from typing import Any

import pytest
from asyncssh.packet import UInt32
from asyncssh.sftp import SFTPAttrs, SFTPBadMessage, SFTPName
from hypothesis import given, settings
from hypothesis import strategies as st

from sftpmirror.engine import mirror
from sftpmirror.engine.model import Entry, Kind, Listing
from sftpmirror.engine.tree import Excludes, Names, name_problem
from sftpmirror.transport._fastpath.pipeline import Listed, compact, decode_names
from sftpmirror.transport.session import Attrs
from sftpmirror.trees.remote import RemoteTree

# --- decode_names: asyncssh's decoding, without its objects ----------------------------------


def _reply(names: list[SFTPName]) -> bytes:
    """An SSH_FXP_NAME reply after its id, as a v3 server sends it."""
    return UInt32(len(names)) + b"".join(n.encode(3) for n in names)


def _asyncssh(data: bytes) -> list[Listed]:
    """What the public path keeps of the same reply: asyncssh's decoding, then ``compact``."""
    from asyncssh.packet import SSHPacket

    packet = SSHPacket(data)
    names = [SFTPName.decode(packet, 3) for _ in range(packet.get_uint32())]
    packet.check_end()
    return [compact(n) for n in names if n.filename not in (b".", b"..")]


def _name(filename: bytes, **attrs: Any) -> SFTPName:
    return SFTPName(filename, b"-rw-r--r-- 1 u g 0 Jan 1 2024 " + filename, SFTPAttrs(**attrs))


EVERY = dict(size=357, uid=1000, gid=1000, permissions=0o100644, atime=1, mtime=1_700_000_000)

names = st.builds(
    _name,
    st.one_of(
        st.sampled_from([b".", b"..", b"", b"a", "caf\u00e9".encode(), b"\xff\xfe", b"a\nb"]),
        st.binary(max_size=20),
    ),
    size=st.none() | st.integers(0, 2**64 - 1),
    uid=st.none() | st.integers(0, 2**32 - 1),
    gid=st.none() | st.integers(0, 2**32 - 1),
    permissions=st.none() | st.integers(0, 2**32 - 1),
    atime=st.none() | st.integers(0, 2**32 - 1),
    mtime=st.none() | st.integers(0, 2**32 - 1),
    extended=st.lists(st.tuples(st.binary(max_size=8), st.binary(max_size=8)), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(names, max_size=12))
def test_decode_names_is_asyncssh_decoding(listed: list[SFTPName]) -> None:
    for name in listed:  # asyncssh sends uid and gid together, atime and mtime together
        attrs = name.attrs
        if (attrs.uid is None) != (attrs.gid is None):
            attrs.uid = attrs.gid = None
        if (attrs.atime is None) != (attrs.mtime is None):
            attrs.atime = attrs.mtime = None
    data = _reply(listed)
    assert decode_names(data) == _asyncssh(data)


def test_names_as_openssh_sends_them() -> None:
    data = _reply(
        [
            _name(b".", **{**EVERY, "permissions": 0o040755}),
            _name(b"..", **{**EVERY, "permissions": 0o040755}),
            _name(b"index.html", **EVERY),
            _name("caf\u00e9".encode(), **EVERY),
            _name(b"\xffbad", **EVERY),
            _name(b"posts", **{**EVERY, "size": 4096, "permissions": 0o040755}),
        ]
    )
    assert decode_names(data) == [
        ("index.html", 0o100644, 357, 1_700_000_000),
        ("caf\u00e9", 0o100644, 357, 1_700_000_000),
        (b"\xffbad", 0o100644, 357, 1_700_000_000),  # not UTF-8: the bytes, as sent
        ("posts", 0o040755, 4096, 1_700_000_000),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(_reply([_name(b"x", **EVERY)])[:-3], "Incomplete packet", id="cut-short"),
        pytest.param(UInt32(2) + _name(b"x", **EVERY).encode(3), "Incomplete", id="count-lies"),
        pytest.param(_reply([_name(b"x", **EVERY)]) + b"\0", "Unexpected data", id="trailing"),
        pytest.param(
            UInt32(1) + b"\0\0\0\x01x\0\0\0\0" + UInt32(0x40), "Unsupported attribute flags"
        ),
    ],
)
def test_a_malformed_reply_is_a_bad_message(data: bytes, message: str) -> None:
    with pytest.raises(SFTPBadMessage, match=message):
        decode_names(data)


# --- names: checked and normalised only where it can change something ------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("index.html", None),
        ("with space ~!", None),
        ("caf\u00e9", None),
        ("\x85", None),  # a C1 control: not refused (only C0 and DEL are)
        ("a\nb", "contains control characters"),
        ("tab\t", "contains control characters"),
        ("del\x7f", "contains control characters"),
        ("caf\u00e9\n", "contains control characters"),
        ("bad\udcff", "is not valid UTF-8"),
    ],
)
def test_name_problem(name: str, problem: str | None) -> None:
    assert name_problem(name) == problem


def test_names_normalise_and_remember_real_names() -> None:
    names = Names()
    assert names.child("", "plain") == "plain"
    assert names.real("plain/deeper/x") == "plain/deeper/x"  # nothing recorded yet
    nfd = unicodedata.normalize("NFD", "caf\u00e9")
    assert names.child("", nfd) == "caf\u00e9"
    assert names.real("caf\u00e9") == nfd
    # An ASCII name under a directory whose real name differs: its real path is recorded.
    assert names.child("caf\u00e9", "index.html") == "caf\u00e9/index.html"
    assert names.real("caf\u00e9/index.html") == f"{nfd}/index.html"
    assert names.real("caf\u00e9/sub/x") == f"{nfd}/sub/x"
    assert names.child("plain", "y") == "plain/y"
    assert names.real("plain/y") == "plain/y"


def test_with_sha256_is_replace() -> None:
    entry = Entry("a/b.html", Kind.FILE, 12, 1_700_000_000, 0o644)
    assert entry.with_sha256("ab" * 32) == dataclasses.replace(entry, sha256="ab" * 32)
    assert entry.with_sha256(None) == entry


# --- the remote scan's fast path gives what _entry gives --------------------------------------


class _Session:
    """A server holding ``tree`` (directory → its names), for RemoteTree.scan."""

    class profile:
        max_handles = 8

    def __init__(self, tree: dict[str, list[Listed]]) -> None:
        self.tree = tree

    async def stat(self, path: str) -> Attrs:
        return Attrs(0o040755, 4096, 0)

    lstat = stat

    async def listdir(self, path: str) -> list[Listed]:
        return list(self.tree[path])


def _reference(tree: RemoteTree, server: dict[str, list[Listed]], excludes: Excludes) -> Listing:
    """The scan as it was before its fast path: every name through ``_entry``."""
    listing = Listing()
    todo = [""]
    while todo:
        rel_dir = todo.pop(0)
        seen: set[str] = set()
        for filename, mode, size, mtime in server[tree._full(rel_dir)]:
            child = tree._entry(rel_dir, filename, mode, size, mtime, seen, listing)
            if child is None:
                continue
            if excludes(child.path, child.kind is Kind.DIR):
                listing.excluded.add(child.path)
                continue
            listing.add(child)
            if child.kind is Kind.DIR:
                todo.append(child.path)
    return listing


FILE, DIR, LINK, FIFO = 0o100644, 0o040755, 0o120777, 0o010644
T = 1_700_000_000
NFD = unicodedata.normalize("NFD", "caf\u00e9")


def test_the_fast_path_lists_as_entry_does() -> None:
    server: dict[str, list[Listed]] = {
        "site": [
            ("index.html", FILE, 10, T),
            ("posts", DIR, 4096, T),
            (NFD, DIR, 4096, T),
            ("caf\u00e9", FILE, 3, T),  # its NFC twin: skipped, with a warning
            ("a\nb", FILE, 1, T),  # refused
            (b"\xffbad", FILE, 1, T),  # not UTF-8: refused
            ("link", LINK, 4, T),
            ("fifo", FIFO, 0, T),
            ("drafts", DIR, 4096, T),  # excluded
            ("x.map", FILE, 5, T),  # excluded
        ],
        "site/posts": [("p1.html", FILE, 100, T), ("P1.html", FILE, 101, T + 1)],
        f"site/{NFD}": [("menu.html", FILE, 7, T), ("sub", DIR, 4096, T)],
        f"site/{NFD}/sub": [("deep.css", FILE, 8, T)],
        "site/drafts": [("secret.html", FILE, 1, T)],
    }
    excludes = Excludes(("drafts/", "*.map"))
    fast = RemoteTree(_Session(server), "site", "site")  # type: ignore[arg-type]
    got = asyncio.run(fast.scan(excludes))
    slow = RemoteTree(_Session(server), "site", "site")  # type: ignore[arg-type]
    expected = _reference(slow, server, excludes)
    assert got.entries == expected.entries
    assert got.excluded == expected.excluded
    assert got.refused == expected.refused
    assert sorted(got.warnings) == sorted(expected.warnings)
    assert fast.names.real("caf\u00e9/sub/deep.css") == f"{NFD}/sub/deep.css"
    menu = "caf\u00e9/menu.html"
    assert got.entries[menu] == Entry(menu, Kind.FILE, 7, T, 0o644)


@pytest.mark.parametrize(
    ("listed", "error"),
    [
        pytest.param([("..", DIR, 0, T)], "unsafe name", id="dot-dot"),
        pytest.param([("", FILE, 0, T)], "unsafe name", id="empty"),
        pytest.param([("a/b", FILE, 0, T)], "unsafe name", id="slash"),
        pytest.param([("a", FILE, 0, T), ("a", FILE, 0, T)], "twice", id="twice"),
    ],
)
def test_a_name_no_server_should_list_stops_the_scan(listed: list[Listed], error: str) -> None:
    from sftpmirror.errors import RemoteError

    tree = RemoteTree(_Session({"site": listed}), "site", "site")  # type: ignore[arg-type]
    with pytest.raises(RemoteError, match=error):
        asyncio.run(tree.scan(Excludes()))


# --- the collector ---------------------------------------------------------------------------


def test_the_collector_is_paused_and_put_back() -> None:
    assert gc.isenabled()
    with mirror._collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(KeyError), mirror._collector_paused():
        raise KeyError("x")
    assert gc.isenabled()
    gc.disable()  # off already (a host that manages it): left off
    try:
        with mirror._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
