"""Excludes (gitignore semantics) and temp_name (hidden, unique, within NAME_MAX)."""

from __future__ import annotations

import asyncio
import json

import pytest

from sftpmirror.engine import history
from sftpmirror.engine.history import Backup
from sftpmirror.engine.tree import (
    TEMP_PREFIX,
    TEMP_SUFFIX,
    Excludes,
    NotFound,
    read_bounded,
    temp_name,
)
from sftpmirror.trees.memory import MemoryTree


@pytest.mark.parametrize(
    ("patterns", "path", "is_dir", "expected"),
    [
        pytest.param((), "anything", False, False, id="no-patterns-file"),
        pytest.param((), "dir", True, False, id="no-patterns-dir"),
        pytest.param(("*.map",), "js/app.js.map", False, True, id="glob-any-depth"),
        pytest.param(("*.map",), "app.js.map", False, True, id="glob-top"),
        pytest.param(("*.map",), "js/app.js", False, False, id="glob-no-match"),
        pytest.param(("*.map",), "map", False, False, id="glob-needs-dot"),
        pytest.param(("drafts/",), "drafts", True, True, id="dir-pattern-dir"),
        pytest.param(("drafts/",), "blog/drafts", True, True, id="dir-pattern-nested-dir"),
        pytest.param(("drafts/",), "drafts", False, False, id="dir-pattern-not-file"),
        pytest.param(("drafts/",), "drafts/post.md", False, True, id="dir-pattern-inside"),
        pytest.param(("drafts",), "drafts", False, True, id="plain-pattern-file"),
        pytest.param(("drafts",), "drafts", True, True, id="plain-pattern-dir"),
        pytest.param(("/top.txt",), "top.txt", False, True, id="anchored-top"),
        pytest.param(("/top.txt",), "sub/top.txt", False, False, id="anchored-not-nested"),
        pytest.param(("sub/x",), "sub/x", False, True, id="slash-anchors"),
        pytest.param(("sub/x",), "a/sub/x", False, False, id="slash-anchors-not-nested"),
        pytest.param(("*.log", "!keep.log"), "debug.log", False, True, id="negation-other"),
        pytest.param(("*.log", "!keep.log"), "keep.log", False, False, id="negation-kept"),
        pytest.param(("*.log", "!keep.log"), "a/keep.log", False, False, id="negation-nested"),
        pytest.param(("!keep.log", "*.log"), "keep.log", False, True, id="negation-order-matters"),
        pytest.param(("**/cache/**",), "a/cache/b", False, True, id="double-star"),
        pytest.param(("# comment", ""), "# comment", False, False, id="comment-and-blank"),
        pytest.param((r"\#hash",), "#hash", False, True, id="escaped-hash"),
        pytest.param(("*.MAP",), "a.map", False, False, id="case-sensitive"),
    ],
)
def test_excludes(patterns: tuple[str, ...], path: str, is_dir: bool, expected: bool) -> None:
    assert Excludes(patterns)(path, is_dir) is expected


def test_excludes_keeps_patterns() -> None:
    assert Excludes(("a", "b/")).patterns == ("a", "b/")
    assert Excludes().patterns == ()


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("index.html", id="short"),
        pytest.param("a" * 250, id="250-ascii"),
        pytest.param("a" * 255, id="255-ascii"),
        pytest.param("é" * 127, id="254-bytes-2-byte-chars"),
        pytest.param("日本語" * 28, id="252-bytes-3-byte-chars"),
        pytest.param("😀" * 63, id="252-bytes-4-byte-chars"),
        pytest.param("x" + "😀" * 62, id="odd-offset-4-byte-chars"),
        pytest.param("", id="empty"),
    ],
)
def test_temp_name_fits_and_is_valid_utf8(name: str) -> None:
    temp = temp_name(name)
    raw = temp.encode("utf-8")  # a str that encodes has no lone surrogates
    assert len(raw) <= 255
    assert raw.decode("utf-8") == temp
    assert temp.startswith(".")
    assert temp.startswith(TEMP_PREFIX)
    assert temp.endswith(TEMP_SUFFIX)
    assert "/" not in temp
    assert "\ufffd" not in temp
    base = temp[len(TEMP_PREFIX) :].split(".", 1)[1][: -len(TEMP_SUFFIX)]
    assert name.startswith(base)
    if _utf8_len(name) <= 200:
        assert base == name
    else:
        room = 255 - len(TEMP_PREFIX) - 8 - 1 - len(TEMP_SUFFIX)
        assert room - 4 < _utf8_len(base) <= room  # cut only at a character boundary


def test_temp_name_contains_the_name_and_is_hidden() -> None:
    temp = temp_name("style.css")
    assert temp.startswith(".")
    assert "style.css" in temp
    assert temp != "style.css"


def test_temp_names_differ() -> None:
    names = {temp_name("a.html") for _ in range(50)}
    assert len(names) == 50


def test_read_bounded_stops_past_its_limit() -> None:
    tree = MemoryTree()
    tree.add_file("small.json", b"x" * 10)
    tree.add_file("big.json", b"x" * 11)
    assert asyncio.run(read_bounded(tree, "small.json", 10)) == b"x" * 10
    assert asyncio.run(read_bounded(tree, "big.json", 10)) is None
    with pytest.raises(NotFound):
        asyncio.run(read_bounded(tree, "missing.json", 10))


def test_a_backup_index_past_its_bound_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server serving a huge index.json cannot fill memory: it was read whole."""
    tree = MemoryTree()
    index = json.dumps({"kept": ["a.html"], "missing": []}).encode()
    tree.add_file("b/index.json", index)
    assert asyncio.run(Backup(tree, "b").index()) == (["a.html"], [])
    monkeypatch.setattr(history, "MAX_INDEX_BYTES", len(index) - 1)
    assert asyncio.run(Backup(tree, "b").index()) == ([], [])
