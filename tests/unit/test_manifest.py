"""The manifest: its file format, how it vouches for remote files, how it is rewritten after a
run, where it is stored; same_file()/plan() with content hashes; fill_hashes()."""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import hashlib
import json
import os
import re
import stat
import tracemalloc
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.api import MirrorOptions, Result, fill_hashes, mirror
from sftpmirror.engine.hashing import HASH_CHUNK, sha256_file
from sftpmirror.engine.manifest import (
    DEFAULT_NAME,
    FORMAT,
    MAX_COMPRESSED,
    MAX_DECOMPRESSED,
    VERSION,
    Manifest,
    ManifestStore,
    Record,
    after_run,
    apply,
    touched,
    without,
)
from sftpmirror.engine.model import Entry, Failure, Listing, Op, Report
from sftpmirror.engine.plan import PlanOptions, plan, same_file
from sftpmirror.engine.tree import TEMP_PREFIX, Excludes
from sftpmirror.errors import ExitStatus, RemoteError
from sftpmirror.reporting.text import NullReporter
from sftpmirror.trees.local import LocalTree

from .planhelpers import d, f, listing, ln, render


def hx(char: str) -> str:
    """A well-formed (64 hex digit) stand-in for a SHA-256."""
    return char * 64


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed(entry: Entry, digest: str | None) -> Entry:
    return dataclasses.replace(entry, sha256=digest)


def known(*entries: Entry) -> Listing:
    """A destination listing the manifest vouched for."""
    result = listing(*entries)
    result.hashes_known = True
    return result


def gz_json(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc).encode(), mtime=0)


def doc_with(files: Any, *, version: Any = VERSION, fmt: Any = FORMAT) -> dict[str, Any]:
    return {"format": fmt, "version": version, "files": files}


# --- encode / decode ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "files",
    [
        pytest.param({}, id="empty"),
        pytest.param({"index.html": Record(10, 1_000, hx("a"))}, id="one"),
        pytest.param(
            {
                "café/naïve.html": Record(1, 2, hx("b")),
                "日本語/ページ.html": Record(3, 4, hx("c")),
                "emoji 😀.txt": Record(5, 6, hx("d")),
                'quote"and\\backslash': Record(7, 8, hx("e")),
            },
            id="non-ascii-and-escapes",
        ),
        pytest.param(
            {
                "big.iso": Record(5 * 1024**3, 4_102_444_800, hx("f")),
                "epoch": Record(0, 0, hx("0")),
            },
            id="large-and-zero-numbers",
        ),
        pytest.param({"a/b/c/d.txt": Record(1, -1, hx("1"))}, id="negative-mtime"),
    ],
)
def test_round_trip(files: dict[str, Record]) -> None:
    data = Manifest(dict(files)).encode()
    assert Manifest.decode(data).files == files


def test_encode_is_deterministic() -> None:
    records = {f"p{i}": Record(i, 1_000 + i, hx("abcdef"[i % 6])) for i in range(20)}
    forward = Manifest(dict(records))
    backward = Manifest(dict(reversed(list(records.items()))))
    first = forward.encode()
    assert first == forward.encode()
    assert first == backward.encode()  # sorted by path, whatever the insertion order
    assert first[:2] == b"\x1f\x8b"  # gzip
    assert first[4:8] == b"\0\0\0\0"  # gzip header mtime 0: same bytes at any time


def test_encode_format() -> None:
    doc = json.loads(gzip.decompress(Manifest({"a": Record(1, 2, hx("a"))}).encode()))
    assert doc == {"format": "sftpmirror-manifest", "version": 2, "files": {"a": [1, 2, hx("a")]}}


def _corrupt_body() -> bytes:
    data = bytearray(Manifest({f"f{i}": Record(i, i, hx("a")) for i in range(200)}).encode())
    for i in range(12, 40):
        data[i] ^= 0xFF
    return bytes(data)


DECODE_ERRORS = [
    pytest.param(b"not gzip at all", "not a gzip JSON file", id="not-gzip"),
    pytest.param(b"", "not a gzip JSON file", id="empty"),
    pytest.param(gzip.compress(b"not json {"), "not a gzip JSON file", id="gzip-of-non-json"),
    pytest.param(gzip.compress(b"\xff\xfe\xfd"), "not a gzip JSON file", id="gzip-of-non-utf8"),
    pytest.param(gz_json(doc_with({}))[:-4], "not a gzip JSON file", id="truncated-gzip"),
    pytest.param(gz_json([1, 2, 3]), "not an sftpmirror manifest", id="json-list"),
    pytest.param(gz_json("x"), "not an sftpmirror manifest", id="json-string"),
    pytest.param(gz_json({"files": {}}), "not an sftpmirror manifest", id="no-format"),
    pytest.param(
        gz_json(doc_with({}, fmt="other-tool")), "not an sftpmirror manifest", id="other-format"
    ),
    pytest.param(gz_json(doc_with({}, version=3)), "manifest version 3 is not 1 or 2", id="v3"),
    pytest.param(gz_json(doc_with({}, version=0)), "manifest version 0 is not 1 or 2", id="v0"),
    pytest.param(
        gz_json(doc_with({}, version="1")), "manifest version '1' is not 1 or 2", id="version-str"
    ),
    pytest.param(
        gz_json({"format": FORMAT, "files": {}}),
        "manifest version None is not 1 or 2",
        id="no-version",
    ),
    pytest.param(
        gz_json({"format": FORMAT, "version": 1}), "manifest has no file table", id="no-files"
    ),
    pytest.param(gz_json(doc_with([])), "manifest has no file table", id="files-list"),
    pytest.param(gz_json(doc_with(None)), "manifest has no file table", id="files-null"),
    pytest.param(gz_json(doc_with({"a": [1, 2]})), "bad manifest entry for 'a'", id="arity-2"),
    pytest.param(
        gz_json(doc_with({"a": [1, 2, hx("a"), 4]})), "bad manifest entry for 'a'", id="arity-4"
    ),
    pytest.param(
        gz_json(doc_with({"a": {"size": 1}})), "bad manifest entry for 'a'", id="entry-dict"
    ),
    pytest.param(gz_json(doc_with({"a": None})), "bad manifest entry for 'a'", id="entry-null"),
    pytest.param(
        gz_json(doc_with({"a": ["1", 2, hx("a")]})), "bad manifest entry for 'a'", id="size-str"
    ),
    pytest.param(
        gz_json(doc_with({"a": [1, 2.5, hx("a")]})), "bad manifest entry for 'a'", id="mtime-float"
    ),
    pytest.param(
        gz_json(doc_with({"a": [1, None, hx("a")]})), "bad manifest entry for 'a'", id="mtime-null"
    ),
    pytest.param(gz_json(doc_with({"a": [1, 2, 3]})), "bad manifest entry for 'a'", id="hash-int"),
    pytest.param(
        gz_json(doc_with({"a": [1, 2, "a" * 63]})), "bad manifest entry for 'a'", id="hash-63"
    ),
    pytest.param(
        gz_json(doc_with({"a": [1, 2, "a" * 65]})), "bad manifest entry for 'a'", id="hash-65"
    ),
    pytest.param(gz_json(doc_with({"a": [1, 2, ""]})), "bad manifest entry for 'a'", id="hash-0"),
    pytest.param(
        gz_json(doc_with({"ok": [1, 2, hx("a")], "bad/ñ": [1, 2, "x"]})),
        "bad manifest entry for 'bad/ñ'",
        id="one-bad-among-good",
    ),
]


@pytest.mark.parametrize(("data", "message"), DECODE_ERRORS)
def test_decode_rejects(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Manifest.decode(data)


def test_decode_corrupt_deflate_stream_is_a_value_error() -> None:
    # Regression: a valid gzip header over a corrupt deflate stream raised zlib.error.
    with pytest.raises(ValueError, match="not a gzip JSON file"):
        Manifest.decode(_corrupt_body())


# --- apply -------------------------------------------------------------------------------------

# Each case: the listing's entry, the manifest's record for its path (or None), the sha256 the
# entry has afterwards, whether it counts as drifted.
APPLY = [
    pytest.param(f("a", 10, 1_000), Record(10, 1_000, hx("a")), hx("a"), False, id="match"),
    pytest.param(f("a", 11, 1_000), Record(10, 1_000, hx("a")), None, True, id="size-drift"),
    pytest.param(f("a", 10, 1_001), Record(10, 1_000, hx("a")), None, True, id="mtime-drift-1s"),
    pytest.param(f("a", 10, 999), Record(10, 1_000, hx("a")), None, True, id="mtime-drift-older"),
    pytest.param(f("a", 10, 1_000), None, None, False, id="not-in-manifest"),
    pytest.param(d("a"), Record(10, 1_000, hx("a")), None, False, id="dir-untouched"),
    pytest.param(ln("a"), Record(0, 1_000, hx("a")), None, False, id="symlink-untouched"),
]


@pytest.mark.parametrize(("entry", "record", "sha256", "drifted"), APPLY)
def test_apply(entry: Entry, record: Record | None, sha256: str | None, drifted: bool) -> None:
    dst = listing(entry, f("other", 1, 1))
    files = {entry.path: record} if record else {}
    assert dst.hashes_known is False
    assert apply(dst, Manifest(files)) == int(drifted)
    assert dst.hashes_known is True
    after = dst.entries[entry.path]
    assert after.sha256 == sha256
    assert dataclasses.replace(after, sha256=None) == entry  # nothing else changed
    assert dst.entries["other"].sha256 is None


def test_apply_counts_every_drift() -> None:
    dst = listing(f("same", 1, 5), f("size", 2, 5), f("mtime", 3, 6), f("new", 4, 5), d("dir"))
    old = Manifest(
        {
            "same": Record(1, 5, hx("1")),
            "size": Record(9, 5, hx("2")),
            "mtime": Record(3, 5, hx("3")),
            "dir": Record(0, 0, hx("4")),
            "gone": Record(1, 1, hx("5")),
        }
    )
    assert apply(dst, old) == 2
    assert {p: e.sha256 for p, e in dst.entries.items() if e.sha256} == {"same": hx("1")}


def test_apply_empty_manifest_still_marks_hashes_known() -> None:
    dst = listing(f("a"))
    assert apply(dst, Manifest()) == 0
    assert dst.hashes_known is True
    # so an unvouched file is now replaced, whatever its mtime says
    assert render(plan(listing(f("a")), dst)) == [("assets", "replace", "a")]


# --- same_file ---------------------------------------------------------------------------------

# Each case: source entry, destination entry, hashes_known, expected reason (None: keep it).
SAME_FILE = [
    pytest.param(
        hashed(f("a", 12), hx("a")),
        hashed(f("a", 10), hx("a")),
        True,
        "size changed (10 → 12 bytes)",
        id="size-first-even-with-equal-hashes",
    ),
    pytest.param(f("a", 12), f("a", 10), False, "size changed (10 → 12 bytes)", id="size-no-hash"),
    pytest.param(
        hashed(f("a", mtime=5_000), hx("a")),
        hashed(f("a", mtime=1_000), hx("a")),
        True,
        None,
        id="equal-hashes-other-mtime",
    ),
    pytest.param(
        hashed(f("a", mtime=5_000), hx("a")),
        hashed(f("a", mtime=1_000), hx("a")),
        False,
        None,
        id="equal-hashes-other-mtime-verify",
    ),
    pytest.param(
        hashed(f("a"), hx("a")),
        hashed(f("a"), hx("b")),
        True,
        "content changed (same size)",
        id="hashes-differ-same-size-and-mtime",
    ),
    pytest.param(
        hashed(f("a"), hx("a")),
        hashed(f("a"), hx("b")),
        False,
        "content changed (same size)",
        id="hashes-differ-verify",
    ),
    pytest.param(
        hashed(f("a"), hx("a")),
        f("a"),
        True,
        "changed on the server since the last deploy (or not in the manifest)",
        id="dst-unknown-hashes-known",
    ),
    pytest.param(
        f("a"),
        f("a"),
        True,
        "changed on the server since the last deploy (or not in the manifest)",
        id="both-unknown-hashes-known",
    ),
    pytest.param(
        hashed(f("a", mtime=1_001), hx("a")),
        f("a", mtime=1_000),
        False,
        None,
        id="dst-unknown-fallback-within-1s",
    ),
    pytest.param(
        hashed(f("a", mtime=999), hx("a")),
        f("a", mtime=1_000),
        False,
        None,
        id="dst-unknown-fallback-1s-older",
    ),
    pytest.param(
        hashed(f("a", mtime=1_002), hx("a")),
        f("a", mtime=1_000),
        False,
        "modification time changed",
        id="dst-unknown-fallback-2s",
    ),
    pytest.param(
        f("a", mtime=1_000),
        hashed(f("a", mtime=1_000), hx("a")),
        True,
        None,
        id="src-unknown-dst-known-same-mtime",
    ),
    pytest.param(
        f("a", mtime=1_002),
        hashed(f("a", mtime=1_000), hx("a")),
        True,
        "modification time changed",
        id="src-unknown-dst-known-2s",
    ),
]


@pytest.mark.parametrize(("src", "dst", "hashes_known", "reason"), SAME_FILE)
def test_same_file(src: Entry, dst: Entry, hashes_known: bool, reason: str | None) -> None:
    assert same_file(src, dst, 1, hashes_known) == reason


def test_same_file_window_is_a_parameter() -> None:
    src, dst = f("a", mtime=1_005), f("a", mtime=1_000)
    assert same_file(src, dst, 5) is None
    assert same_file(src, dst, 4) == "modification time changed"
    assert same_file(src, dst, 5, hashes_known=True) is not None  # no hash: replace anyway


# --- plan with hashes --------------------------------------------------------------------------


def test_rebuild_uploads_only_changed_content() -> None:
    """A site generator rebuilt everything (new mtimes); two files' content changed."""
    names = ["index.html", "a/page.html", "css/site.css", "js/app.js", "img/logo.png"]
    dirs = [d("a"), d("css"), d("js"), d("img")]
    old = {n: hx(str(i)) for i, n in enumerate(names)}
    new = dict(old, **{"css/site.css": hx("c"), "index.html": hx("e")})
    src = listing(*dirs, *(hashed(f(n, size=100, mtime=9_000), new[n]) for n in names))
    dst = known(*dirs, *(hashed(f(n, size=100, mtime=1_000), old[n]) for n in names))
    the_plan = plan(src, dst, PlanOptions(delete=True))
    assert render(the_plan) == [
        ("assets", "replace", "css/site.css"),
        ("pages", "replace", "index.html"),
    ]
    assert {a.reason for a in the_plan.actions()} == {"content changed (same size)"}
    assert the_plan.bytes_to_copy == 200


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(PlanOptions(), [("attrs", "attrs", "a.txt")], id="perms"),
        pytest.param(PlanOptions(perms=False), [], id="no-perms"),
    ],
)
def test_perms_differ_equal_hashes_is_attrs_only(
    options: PlanOptions, expected: list[tuple[str, str, str]]
) -> None:
    src = listing(hashed(f("a.txt", mode=0o600, mtime=9_000), hx("a")))
    dst = known(hashed(f("a.txt", mode=0o644, mtime=1_000), hx("a")))
    the_plan = plan(src, dst, options)
    assert render(the_plan) == expected
    assert the_plan.bytes_to_copy == 0


def test_drifted_file_is_replaced_even_with_same_mtime() -> None:
    src = listing(hashed(f("a.txt"), hx("a")), hashed(f("b.txt"), hx("b")))
    dst = known(f("a.txt"), hashed(f("b.txt"), hx("b")))  # a.txt drifted: no hash
    assert render(plan(src, dst)) == [("assets", "replace", "a.txt")]


# --- touched / without -------------------------------------------------------------------------


def test_touched_lists_the_files_the_plan_changes() -> None:
    src = listing(
        d("newdir"),
        f("newdir/new.txt"),
        f("new.txt"),
        f("changed.txt", size=20),
        f("same.txt"),
        f("chmod.txt", mode=0o600),
        d("wasfile"),
        f("wasdir"),
        d("chmoddir", mode=0o700),
        f("overlink"),
    )
    dst = listing(
        f("changed.txt", size=10),
        f("same.txt"),
        f("chmod.txt", mode=0o644),
        f("wasfile"),
        d("wasdir"),
        f("wasdir/inner.txt"),
        d("chmoddir", mode=0o755),
        f("gone.txt"),
        d("gonedir"),
        f("gonedir/x.txt"),
        ln("link"),
        ln("overlink"),
    )
    the_plan = plan(src, dst, PlanOptions(delete=True))
    ops = {(a.op, a.path) for a in the_plan.actions()}
    # the premise: every kind of action is in the plan
    assert {op for op, _ in ops} >= {Op.MKDIR, Op.COPY, Op.REPLACE, Op.ATTRS, Op.DELETE, Op.CLEAR}
    assert (Op.ATTRS, "chmoddir") in ops
    assert (Op.RMDIR, "gonedir") in ops
    assert touched(the_plan) == {
        "newdir/new.txt",  # copy
        "new.txt",  # copy
        "changed.txt",  # replace
        "overlink",  # replace (of a link)
        "chmod.txt",  # attrs
        "wasdir",  # copy (a file replaces the dir)
        # not the cleared (wasfile, wasdir/inner.txt) or deleted (gone.txt, gonedir/x.txt):
        # until they go, they are as recorded, and still ours
    }


def test_touched_of_an_empty_plan() -> None:
    assert touched(plan(listing(f("a")), listing(f("a")))) == set()


@pytest.mark.parametrize(
    ("paths", "left"),
    [
        pytest.param(set(), {"a", "b", "c"}, id="nothing"),
        pytest.param({"b"}, {"a", "c"}, id="one"),
        pytest.param({"a", "b", "c"}, set(), id="all"),
        pytest.param({"zzz", "a"}, {"b", "c"}, id="unknown-path-ignored"),
    ],
)
def test_without(paths: set[str], left: set[str]) -> None:
    records = {p: Record(i, i, hx(str(i))) for i, p in enumerate("abc")}
    old = Manifest(dict(records))
    result = without(old, paths)
    assert result.files == {p: records[p] for p in left}
    assert old.files == records  # not modified
    assert result is not old


# --- after_run ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AfterRun:
    src: tuple[Entry, ...]
    dst: tuple[Entry, ...]
    expected: dict[str, Record]
    hashes_known: bool = False
    copied: dict[str, tuple[int, str, int]] = dataclasses.field(default_factory=dict)
    failed: tuple[str, ...] = ()


AFTER_RUN = [
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(),
            copied={"a": (11, hx("c"), 2_000)},
            expected={"a": Record(11, 2_000, hx("c"))},
        ),
        id="copied-size-and-hash-sent-src-mtime",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(),
            copied={"a": (10, hx("a"), 5_000)},
            expected={"a": Record(10, 5_000, hx("a"))},
        ),
        id="copied-to-a-server-that-ignores-mtimes-records-its-mtime",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(hashed(f("a", 8, 1_000), hx("b")),),
            hashes_known=True,
            copied={"a": (10, hx("a"), 2_000)},
            expected={"a": Record(10, 2_000, hx("a"))},
        ),
        id="replaced",
    ),
    pytest.param(
        AfterRun(
            src=(f("a", 10, 2_000),),
            dst=(ln("a"),),
            copied={"a": (10, hx("a"), 2_000)},
            expected={"a": Record(10, 2_000, hx("a"))},
        ),
        id="replaced-link-without-src-hash",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(hashed(f("a", 10, 1_000), hx("a")),),
            hashes_known=True,
            expected={"a": Record(10, 1_000, hx("a"))},
        ),
        id="untouched-keeps-dst-mtime",
    ),
    pytest.param(
        AfterRun(
            src=(f("a", 10, 1_000),),
            dst=(hashed(f("a", 10, 1_000), hx("b")),),
            hashes_known=True,
            expected={"a": Record(10, 1_000, hx("b"))},
        ),
        id="untouched-dst-hash-src-unknown",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 1_001), hx("s")),),
            dst=(f("a", 10, 1_000),),
            expected={"a": Record(10, 1_000, None)},  # F4: never the source's hash
        ),
        id="size-mtime-match-recorded-without-hash",
    ),
    pytest.param(
        AfterRun(
            src=(f("a", 10, 1_000),),
            dst=(f("a", 10, 1_000),),
            expected={"a": Record(10, 1_000, None)},
        ),
        id="no-hash-recorded-without-hash",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000, mode=0o600), hx("a")),),
            dst=(hashed(f("a", 10, 1_000, mode=0o644), hx("a")),),
            hashes_known=True,
            expected={"a": Record(10, 2_000, hx("a"))},
        ),
        id="attrs-gets-src-mtime",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(),
            failed=("a",),
            expected={},
        ),
        id="failed-copy-left-out",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000, mode=0o600), hx("a")),),
            dst=(hashed(f("a", 10, 1_000, mode=0o644), hx("a")),),
            hashes_known=True,
            failed=("a",),
            expected={},
        ),
        id="failed-attrs-left-out",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("a", 10, 2_000), hx("a")),),
            dst=(hashed(f("a", 8, 1_000), hx("b")),),
            hashes_known=True,
            failed=("a",),
            expected={},
        ),
        id="failed-replace-left-out",
    ),
    pytest.param(
        AfterRun(
            src=(d("dir"), d("dir/sub")),
            dst=(d("dir"),),
            expected={},
        ),
        id="dirs-never",
    ),
    pytest.param(
        AfterRun(
            src=(d("x"),),
            dst=(hashed(f("x", 10, 1_000), hx("a")),),
            hashes_known=True,
            expected={},
        ),
        id="dir-over-file-not-recorded",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("x", 10, 1_000), hx("a")),),
            dst=(d("x"),),
            failed=("x",),
            expected={},
        ),
        id="file-over-dir-conflict-not-recorded",
    ),
    pytest.param(
        AfterRun(
            src=(ln("l"),),
            dst=(ln("l"),),
            expected={},
        ),
        id="links-never",
    ),
    pytest.param(
        AfterRun(
            src=(hashed(f("keep", 1, 1_000), hx("1")),),
            dst=(hashed(f("keep", 1, 1_000), hx("1")), hashed(f("extra", 2, 1_000), hx("2"))),
            hashes_known=True,
            expected={"keep": Record(1, 1_000, hx("1"))},
        ),
        id="dst-only-file-not-recorded",
    ),
]


@pytest.mark.parametrize("case", AFTER_RUN)
def test_after_run(case: AfterRun) -> None:
    src, dst = listing(*case.src), listing(*case.dst)
    dst.hashes_known = case.hashes_known
    the_plan = plan(src, dst)
    # the premise: a failed path is one the plan acts on (or a conflict)
    acted = {a.path for a in the_plan.actions()} | {a.path for a in the_plan.conflicts}
    assert set(case.failed) <= acted
    assert set(case.copied) <= acted
    report = Report(
        copied=dict(case.copied),
        failures=[Failure(p, Op.COPY, "refused") for p in case.failed],
    )
    assert after_run(src, dst, the_plan, report).files == case.expected


def test_after_run_whole_site() -> None:
    """One run of every kind, checked as a whole."""
    src = listing(
        d("css"),
        hashed(f("css/new.css", 5, 3_000), hx("1")),
        hashed(f("index.html", 7, 3_000), hx("2")),
        hashed(f("same.txt", 3, 3_000), hx("3")),
        hashed(f("chmod.txt", 4, 3_000, mode=0o600), hx("4")),
        hashed(f("broken.txt", 6, 3_000), hx("5")),
    )
    dst = known(
        d("css"),
        hashed(f("index.html", 9, 1_000), hx("9")),
        hashed(f("same.txt", 3, 1_000), hx("3")),
        hashed(f("chmod.txt", 4, 1_000, mode=0o644), hx("4")),
        f("broken.txt", 6, 1_000),
        hashed(f("gone.txt", 1, 1_000), hx("8")),
    )
    the_plan = plan(src, dst, PlanOptions(delete=True))
    report = Report(
        copied={"css/new.css": (5, hx("1"), 3_000), "index.html": (7, hx("2"), 3_000)},
        failures=[Failure("broken.txt", Op.REPLACE, "permission denied")],
    )
    assert after_run(src, dst, the_plan, report).files == {
        "css/new.css": Record(5, 3_000, hx("1")),
        "index.html": Record(7, 3_000, hx("2")),
        "same.txt": Record(3, 1_000, hx("3")),
        "chmod.txt": Record(4, 3_000, hx("4")),
    }


@pytest.mark.parametrize("case", AFTER_RUN)
def test_after_run_reuses_the_records_that_say_the_same(case: AfterRun) -> None:
    """Given the manifest on the server, the result is the same manifest, its unchanged records
    the very objects it had (no new object per unchanged file; the comparison that decides
    whether to write it back is then cheap), and every other record a new one."""
    src, dst = listing(*case.src), listing(*case.dst)
    dst.hashes_known = case.hashes_known
    the_plan = plan(src, dst)
    report = Report(
        copied=dict(case.copied),
        failures=[Failure(p, Op.COPY, "refused") for p in case.failed],
    )
    fresh = after_run(src, dst, the_plan, report).files
    before = Manifest({p: Record(r.size, r.mtime, r.sha256) for p, r in fresh.items()})
    before.files["elsewhere.txt"] = Record(1, 1, None)  # a record the run does not keep
    for path, record in list(before.files.items())[:1]:  # and one that says something else
        before.files[path] = Record(record.size + 1, record.mtime, record.sha256)
    got = after_run(src, dst, the_plan, report, before).files
    assert got == fresh == case.expected
    for path, record in got.items():
        if path in report.copied:
            continue
        assert (record is before.files[path]) == (record == before.files[path])


# --- ManifestStore -----------------------------------------------------------------------------


def store_at(root: Path, path: str = DEFAULT_NAME) -> ManifestStore:
    return ManifestStore(LocalTree(root, follow_symlinks=False), path)


def load(store: ManifestStore) -> tuple[Manifest | None, str | None]:
    return asyncio.run(store.load())


def save(store: ManifestStore, manifest: Manifest) -> None:
    asyncio.run(store.save(manifest))


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob(f"{TEMP_PREFIX}*"))


SAMPLE = Manifest(
    {
        "index.html": Record(10, 1_000, hx("a")),
        "ünïcode/ページ.html": Record(20, 2_000, hx("b")),
    }
)


def test_load_missing(tmp_path: Path) -> None:
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert "no manifest yet" in why
    assert DEFAULT_NAME in why
    assert str(tmp_path) in why
    assert "--verify" in why


def test_load_missing_directory(tmp_path: Path) -> None:
    manifest, why = load(store_at(tmp_path / "absent"))
    assert manifest is None
    assert why is not None
    assert "no manifest yet" in why


def test_save_then_load(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    save(store, SAMPLE)
    assert load(store) == (SAMPLE, None)
    assert (tmp_path / DEFAULT_NAME).read_bytes() == SAMPLE.encode()


def test_save_replaces(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    save(store, SAMPLE)
    smaller = without(SAMPLE, {"index.html"})
    save(store, smaller)
    assert load(store) == (smaller, None)
    assert leftovers(tmp_path) == []


def test_save_is_atomic_and_private(tmp_path: Path) -> None:
    (tmp_path / "site.html").write_text("x")
    store = store_at(tmp_path)
    save(store, SAMPLE)
    save(store, SAMPLE)
    assert sorted(p.name for p in tmp_path.iterdir()) == [DEFAULT_NAME, "site.html"]
    assert leftovers(tmp_path) == []
    assert stat.S_IMODE((tmp_path / DEFAULT_NAME).stat().st_mode) == 0o600


def test_save_outside_the_tree(tmp_path: Path) -> None:
    root = tmp_path / "www"
    root.mkdir()
    store = store_at(root, "../" + DEFAULT_NAME)
    save(store, SAMPLE)
    assert (tmp_path / DEFAULT_NAME).is_file()
    assert list(root.iterdir()) == []
    assert load(store) == (SAMPLE, None)


def test_save_large_manifest_round_trip(tmp_path: Path) -> None:
    # More than one read chunk of compressed bytes: load must read at increasing offsets.
    big = Manifest(
        {f"dir{i % 97}/file{i}.html": Record(i, i, sha(b"%d" % i)) for i in range(40_000)}
    )
    store = store_at(tmp_path)
    save(store, big)
    assert (tmp_path / DEFAULT_NAME).stat().st_size > HASH_CHUNK
    manifest, why = load(store)
    assert why is None
    assert manifest == big


def test_save_failure_is_a_remote_error(tmp_path: Path) -> None:
    store = store_at(tmp_path, "no/such/dir/" + DEFAULT_NAME)
    with pytest.raises(RemoteError) as caught:
        save(store, SAMPLE)
    assert caught.value.exit_status is ExitStatus.REMOTE
    assert "cannot write the manifest no/such/dir/" in caught.value.message
    assert "No such file or directory" in caught.value.message


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(b"garbage", "not a gzip JSON file", id="not-gzip"),
        pytest.param(b"", "not a gzip JSON file", id="empty-file"),
        pytest.param(gz_json({"format": "x"}), "not an sftpmirror manifest", id="foreign"),
        pytest.param(
            gz_json(doc_with({}, version=3)), "manifest version 3 is not 1 or 2", id="version-3"
        ),
        pytest.param(gz_json(doc_with({"a": [1]})), "bad manifest entry for 'a'", id="bad-entry"),
    ],
)
def test_load_corrupt(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / DEFAULT_NAME).write_bytes(content)
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert why.startswith(f"manifest ignored: {reason}")
    assert "comparing by size and mtime" in why


def test_load_corrupt_deflate_stream(tmp_path: Path) -> None:
    # Regression: zlib.error escaped from load(), so mirror() crashed instead of falling back.
    (tmp_path / DEFAULT_NAME).write_bytes(_corrupt_body())
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert why.startswith("manifest ignored: ")


def test_load_unreadable(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_NAME).mkdir()  # a directory where the file should be
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert why.startswith("manifest ignored: it is a directory, not a regular file")


def test_load_refuses_a_fifo_without_opening_it(tmp_path: Path) -> None:
    """F7: opening a FIFO blocks until a writer comes (on a server: the whole session)."""
    os.mkfifo(tmp_path / DEFAULT_NAME)
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert why.startswith("manifest ignored: it is a FIFO or device, not a regular file")


def test_a_gzip_bomb_is_ignored_within_its_bound(tmp_path: Path) -> None:
    """F6: 1 GiB of JSON-ish zeros in a 1 MiB gzip file; read within the memory bound."""
    inflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    with open(tmp_path / DEFAULT_NAME, "wb") as f:
        for _ in range(1024):
            f.write(inflate.compress(zeros))
        f.write(inflate.flush())
    tracemalloc.start()
    try:
        manifest, why = load(store_at(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest is None
    assert why is not None
    assert f"more than {MAX_DECOMPRESSED >> 20} MiB inflated" in why
    assert peak < MAX_DECOMPRESSED + (16 << 20)


def test_an_oversized_manifest_is_not_read_past_its_bound(tmp_path: Path) -> None:
    with open(tmp_path / DEFAULT_NAME, "wb") as f:
        f.write(os.urandom(MAX_COMPRESSED + 1))
    manifest, why = load(store_at(tmp_path))
    assert manifest is None
    assert why is not None
    assert "manifest ignored" in why


@pytest.mark.parametrize(
    ("path", "in_tree", "inside"),
    [
        pytest.param("name", True, "name", id="name"),
        pytest.param("sub/name", True, "sub/name", id="sub-name"),
        pytest.param("..name", True, "..name", id="dotdot-prefixed-name"),
        pytest.param("../name", True, None, id="parent"),
        pytest.param("sub/../../name", True, None, id="up-twice"),
        pytest.param("/abs/name", True, None, id="absolute"),
        pytest.param("name", False, None, id="not-in-mirrored-tree"),
        pytest.param("/abs/name", False, None, id="absolute-not-in-tree"),
    ],
)
def test_inside(tmp_path: Path, path: str, in_tree: bool, inside: str | None) -> None:
    store = ManifestStore(
        LocalTree(tmp_path, follow_symlinks=False), path, in_mirrored_tree=in_tree
    )
    assert store.inside == inside


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        pytest.param("./name", "name", id="dot-slash"),
        pytest.param("a//name", "a/name", id="double-slash"),
        pytest.param("sub/../name", "name", id="up-and-back"),
        pytest.param("sub/./name", "sub/name", id="dot-inside"),
    ],
)
def test_inside_unnormalised(tmp_path: Path, path: str, inside: str) -> None:
    """Regression: ``inside`` must be the path a scan reports, or the manifest is mirrored
    (deleted by a --delete push, downloaded by a pull)."""
    store = ManifestStore(LocalTree(tmp_path, follow_symlinks=False), path)
    assert store.inside == inside


# --- sha256_file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(0, id="empty"),
        pytest.param(1, id="one-byte"),
        pytest.param(1000, id="small"),
        pytest.param(HASH_CHUNK, id="one-chunk"),
        pytest.param(HASH_CHUNK + 1, id="chunk-plus-one"),
        pytest.param(3 * 1024 * 1024, id="3mb"),
    ],
)
def test_sha256_file(tmp_path: Path, size: int) -> None:
    data = (b"0123456789abcdef\x00\xff" * (size // 18 + 1))[:size]
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(str(path)) == hashlib.sha256(data).hexdigest()


def test_sha256_file_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "absent")


# --- fill_hashes -------------------------------------------------------------------------------

SRC_FILES = {
    "same.txt": b"same content",
    "samesize.txt": b"aaaa",
    "bigger.txt": b"longer on the source",
    "only-src.txt": b"new",
    "sub/nested.txt": b"nested",
}
DST_FILES = {
    "same.txt": b"same content",
    "samesize.txt": b"bbbb",
    "bigger.txt": b"short",
    "only-dst.txt": b"old",
    "sub/nested.txt": b"nested",
}
SAME_SIZE = {"same.txt", "samesize.txt", "sub/nested.txt"}
PRESET = hx("f")  # a hash the manifest gave same.txt on the destination


def make_tree(root: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)


class CountingTree(LocalTree):
    """A LocalTree that records what it is asked to hash, optionally posing as a remote."""

    def __init__(self, root: Path, *, cheap: bool = True) -> None:
        super().__init__(root, follow_symlinks=False)
        self.cheap_hashes = cheap
        self.asked: list[str] = []

    async def hash_files(
        self, paths: Sequence[str], known: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        self.asked.extend(paths)
        return await super().hash_files(paths, known)


def run_fill(
    tmp_path: Path, *, all_source: bool, verify: bool, preset: bool, dst_cheap: bool = True
) -> tuple[Listing, Listing, CountingTree, CountingTree]:
    make_tree(tmp_path / "src", SRC_FILES)
    make_tree(tmp_path / "dst", DST_FILES)
    src = CountingTree(tmp_path / "src")
    dst = CountingTree(tmp_path / "dst", cheap=dst_cheap)

    async def go() -> tuple[Listing, Listing]:
        src_listing, dst_listing = await src.scan(Excludes()), await dst.scan(Excludes())
        if preset:
            dst_listing.entries["same.txt"] = hashed(dst_listing.entries["same.txt"], PRESET)
        await fill_hashes(src, src_listing, dst, dst_listing, all_source=all_source, verify=verify)
        return src_listing, dst_listing

    src_listing, dst_listing = asyncio.run(go())
    return src_listing, dst_listing, src, dst


def hashes_of(found: Listing) -> dict[str, str]:
    return {p: e.sha256 for p, e in found.entries.items() if e.sha256 is not None}


def real(files: dict[str, bytes], paths: set[str]) -> dict[str, str]:
    return {p: sha(files[p]) for p in paths}


# Each case: all_source, verify, preset, source paths hashed, destination paths hashed
# (the preset hash, when there is one, is kept on the destination as it was).
FILL = [
    pytest.param(True, False, False, SAME_SIZE, SAME_SIZE, id="all-source"),
    pytest.param(True, False, True, SAME_SIZE, SAME_SIZE, id="all-source-preset"),
    pytest.param(False, False, False, set(), set(), id="nothing-known-nothing-hashed"),
    pytest.param(False, False, True, {"same.txt"}, {"same.txt"}, id="only-where-other-known"),
    pytest.param(False, True, False, SAME_SIZE, SAME_SIZE, id="verify-same-size"),
    pytest.param(True, True, True, SAME_SIZE, SAME_SIZE, id="all-source-verify-preset"),
]


@pytest.mark.parametrize(("all_source", "verify", "preset", "src_hashed", "dst_hashed"), FILL)
def test_fill_hashes(
    tmp_path: Path,
    all_source: bool,
    verify: bool,
    preset: bool,
    src_hashed: set[str],
    dst_hashed: set[str],
) -> None:
    src_listing, dst_listing, _, dst = run_fill(
        tmp_path, all_source=all_source, verify=verify, preset=preset
    )
    assert hashes_of(src_listing) == real(SRC_FILES, src_hashed)
    expected_dst = real(DST_FILES, dst_hashed)
    if preset:
        expected_dst["same.txt"] = PRESET
        assert "same.txt" not in dst.asked  # a known hash is never recomputed
    assert hashes_of(dst_listing) == expected_dst
    # sizes differ: never hashed beforehand (it will be copied; the copy hashes what it sends)
    assert src_listing.entries["bigger.txt"].sha256 is None
    assert dst_listing.entries["bigger.txt"].sha256 is None
    assert "bigger.txt" not in dst.asked
    assert src_listing.entries["sub"].sha256 is None  # directories never
    assert dst_listing.entries["sub"].sha256 is None


@pytest.mark.parametrize(
    ("verify", "asked"),
    [
        pytest.param(False, [], id="remote-no-verify-no-download"),
        pytest.param(True, sorted(SAME_SIZE - {"same.txt"}), id="remote-verify-unvouched"),
    ],
)
def test_fill_hashes_remote_side(tmp_path: Path, verify: bool, asked: list[str]) -> None:
    """A destination without cheap hashes is hashed (downloaded) only with verify, and only
    the same-size files the manifest did not vouch for."""
    _, dst_listing, src, dst = run_fill(
        tmp_path, all_source=True, verify=verify, preset=True, dst_cheap=False
    )
    assert sorted(dst.asked) == asked
    assert sorted(src.asked) == sorted(SAME_SIZE)
    assert hashes_of(dst_listing) == {"same.txt": PRESET, **real(DST_FILES, set(asked))}


# --- the manifest through mirror() ------------------------------------------------------------

T0 = 1_600_000_000


def write(path: Path, data: bytes, mtime: int = T0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


def push(root: Path, *, delete: bool = False, name: str = DEFAULT_NAME) -> Result:
    src = LocalTree(root / "src", follow_symlinks=True)
    dst = LocalTree(root / "dst", follow_symlinks=False)
    store = ManifestStore(dst, name)
    options = MirrorOptions(delete=delete, jobs=2, chmod=None)  # the source's modes
    return asyncio.run(
        mirror(src, dst, options, NullReporter(), manifest_store=store, manifest_side="dst")
    )


def stored(root: Path, name: str = DEFAULT_NAME) -> dict[str, Record] | None:
    manifest, _ = load(store_at(root / "dst", name))
    return None if manifest is None else manifest.files


def ops(result: Result) -> list[tuple[str, str]]:
    return [(a.op.value, a.path) for a in result.plan.actions()]


def test_mirror_writes_the_manifest_and_skips_a_touch_only_rebuild(tmp_path: Path) -> None:
    write(tmp_path / "src/index.html", b"<h1>hi</h1>")
    write(tmp_path / "src/css/site.css", b"body{}")
    first = push(tmp_path)
    assert first.report.ok
    assert stored(tmp_path) == {
        "index.html": Record(11, T0, sha(b"<h1>hi</h1>")),
        "css/site.css": Record(6, T0, sha(b"body{}")),
    }
    # a rebuild: every mtime changes, one file's content (same size) too
    write(tmp_path / "src/index.html", b"<h1>HI</h1>", T0 + 500)
    write(tmp_path / "src/css/site.css", b"body{}", T0 + 500)
    second = push(tmp_path)
    assert ops(second) == [("replace", "index.html")]
    assert stored(tmp_path) == {
        "index.html": Record(11, T0 + 500, sha(b"<h1>HI</h1>")),
        "css/site.css": Record(6, T0, sha(b"body{}")),
    }
    assert ops(push(tmp_path)) == []
    assert (tmp_path / "dst/index.html").read_bytes() == b"<h1>HI</h1>"


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("attrs", id="chmod-only-same-mtime"),
        pytest.param("restore", id="server-copy-restored"),
    ],
)
def test_mirror_second_run_acts(tmp_path: Path, change: str) -> None:
    """The premise of the next test: each change makes one action, which succeeds."""
    assert _second_run(tmp_path, change) == [("attrs" if change == "attrs" else "replace", "a.txt")]


def _second_run(root: Path, change: str) -> list[tuple[str, str]]:
    write(root / "src/a.txt", b"hello")
    assert push(root).report.ok
    if change == "attrs":
        (root / "src/a.txt").chmod(0o600)  # the mtime stays T0
    else:
        write(root / "dst/a.txt", b"tampered on the server", T0 + 99)
    result = push(root)
    assert result.report.ok
    return ops(result)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("attrs", id="chmod-only-same-mtime"),
        pytest.param("restore", id="server-copy-restored"),
    ],
)
def test_mirror_manifest_after_a_run_that_restores_the_old_record(
    tmp_path: Path, change: str
) -> None:
    """Regression: the final manifest was saved only when it differed from the *old* one, so
    after the pre-write (without the touched records) a touched file that ended with the record
    it had before was left out, and the next run uploaded it again."""
    _second_run(tmp_path, change)
    assert stored(tmp_path) == {"a.txt": Record(5, T0, sha(b"hello"))}
    assert ops(push(tmp_path)) == []  # and so the next run does nothing


def test_mirror_delete_keeps_a_dot_slash_manifest(tmp_path: Path) -> None:
    # Regression: './NAME' was not excluded from the mirror, so a --delete push deleted it.
    write(tmp_path / "src/a.txt", b"hello")
    push(tmp_path, delete=True, name="./" + DEFAULT_NAME)
    assert stored(tmp_path) is not None
    push(tmp_path, delete=True, name="./" + DEFAULT_NAME)
    assert stored(tmp_path) == {"a.txt": Record(5, T0, sha(b"hello"))}
