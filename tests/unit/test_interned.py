"""engine/interned.py: one object per value, and a table that stays bounded."""

from __future__ import annotations

import stat

from sftpmirror.engine import interned
from sftpmirror.engine.interned import PERMS, TIMES_KEPT, shared_mtime
from sftpmirror.engine.manifest import Manifest


def test_perms_is_s_imode() -> None:
    for mode in (0o100644, 0o40755, 0o104755, 0o120777, 0o7777, 0):
        assert PERMS[mode & 0o7777] == stat.S_IMODE(mode)


def test_equal_mtimes_made_apart_come_back_as_one_object() -> None:
    first, second = int("1600000007"), int("1600000007")  # two objects of equal value
    assert first is not second
    assert shared_mtime(first) is shared_mtime(second)
    assert shared_mtime(second) == 1600000007


def test_the_table_never_holds_more_than_its_bound() -> None:
    for value in range(10**9, 10**9 + 3 * TIMES_KEPT):
        shared_mtime(value)
        assert len(interned._times) <= TIMES_KEPT


def test_a_manifests_mtimes_are_shared() -> None:
    text = b'{"format": "sftpmirror-manifest", "version": 2, "files": ' \
        b'{"a": [1, 1600000009, null], "b": [2, 1600000009, null]}}'  # fmt: skip
    files = Manifest.decode_json(text).files
    assert files["a"].mtime is files["b"].mtime
