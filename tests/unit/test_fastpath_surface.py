"""The fast paths' surface: every asyncssh private they lean on still has the fingerprint it
had when the code was written, and the switch and the fallbacks work (no server needed).

If ``test_every_private_matches_the_installed_asyncssh`` fails, asyncssh changed something a
fast path relies on: that fast path is off (slower, still right). Read the change, adapt the
module that uses it, then update the digest in ``surface.SURFACE``."""

from __future__ import annotations

import dataclasses

import asyncssh
import pytest
from asyncssh.sftp import SFTPClientHandler

from sftpmirror.transport._fastpath import surface


def test_every_private_matches_the_installed_asyncssh() -> None:
    assert not surface.changed(), f"asyncssh {asyncssh.__version__}: {surface.changed()}"
    assert all(state == "on" for state in surface.status().values())


def test_every_feature_has_entries_and_every_entry_a_known_feature() -> None:
    named = {p.feature for p in surface.SURFACE}
    assert named == set(surface.FEATURES)


def test_the_pinned_asyncssh_is_the_one_verified() -> None:
    major, minor = (int(part) for part in asyncssh.__version__.split(".")[:2])
    assert (major, minor) == (2, 24)


@pytest.mark.parametrize(
    ("value", "off"),
    [
        ("", set()),
        ("0", set()),
        ("1", set(surface.FEATURES)),
        ("all", set(surface.FEATURES)),
        ("pipeline, bulk", {"pipeline", "bulk"}),
    ],
)
def test_the_switch(monkeypatch: pytest.MonkeyPatch, value: str, off: set[str]) -> None:
    monkeypatch.setenv(surface.SWITCH, value)
    assert surface.switched_off() == off
    for feature in surface.FEATURES:
        assert surface.enabled(feature) == (feature not in off)
        assert surface.status()[feature].startswith("off" if feature in off else "on")


def test_a_replaced_private_turns_its_feature_off(monkeypatch: pytest.MonkeyPatch) -> None:
    async def readdir(self: SFTPClientHandler, handle: bytes) -> object:  # another source
        raise AssertionError("never called")

    monkeypatch.setattr(SFTPClientHandler, "readdir", readdir)
    assert not surface.enabled("pipeline")
    assert "SFTPClientHandler.readdir" in surface.status()["pipeline"]
    assert surface.enabled("bulk")  # the others are untouched


def test_a_vanished_private_turns_its_feature_off(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tuple(
        dataclasses.replace(p, name="asyncssh.sftp:SFTPClientHandler.no_such_method")
        if p.name.endswith("SFTPClientHandler.opendir")
        else p
        for p in surface.SURFACE
    )
    monkeypatch.setattr(surface, "SURFACE", gone)
    assert surface.fingerprint("asyncssh.sftp:SFTPClientHandler.no_such_method") is None
    assert not surface.enabled("pipeline")


def test_the_source_read_from_the_code_object_is_getsource_s() -> None:
    """The fingerprints read a function's source from its code object's lines (no tokenizing):
    the same text ``inspect.getsource`` gives, for every function of the table."""
    import inspect

    functions = [f for f in (surface.resolve(p.name) for p in surface.SURFACE) if callable(f)]
    assert len(functions) > 30
    for function in functions:
        assert surface._source_of(function) == inspect.getsource(function), function
