"""With the fast paths off, by the switch or because asyncssh changed one of its privates, a
deploy takes asyncssh's public path and gives the same trees, against real OpenSSH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asyncssh.sftp import SFTPClientHandler

from sftpmirror.transport import session
from sftpmirror.transport._fastpath import surface
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site, run_cli


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a fast path was used while it was off")


def _push_pull_nochange(openssh: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    pushed = run_cli("push", "--delete", str(site), openssh.url(), target=openssh)
    assert pushed.exit_code == 0, pushed.output
    assert_same_tree(site, openssh.disk)
    again = run_cli("push", "--delete", str(site), openssh.url(), target=openssh)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    back = tmp_path / "back"
    pulled = run_cli("pull", openssh.url(), str(back), target=openssh)
    assert pulled.exit_code == 0, pulled.output
    assert_same_tree(openssh.disk, back, chmod=None)


def test_switched_off_push_and_pull_give_identical_trees(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(surface.SWITCH, "1")
    monkeypatch.setattr(session, "list_directory", _never)
    monkeypatch.setattr(session, "WriteAhead", _never)
    monkeypatch.setattr(session, "ReadAhead", _never)
    _push_pull_nochange(openssh, tmp_path)


def test_debug_says_which_fast_paths_are_on(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(surface.SWITCH, "bulk")
    site = make_site(tmp_path / "site")
    result = run_cli("push", "--debug", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert f"fast path bulk: off: {surface.SWITCH}" in result.output
    assert "fast path pipeline: on" in result.output


def test_a_changed_private_makes_the_listing_fall_back(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asyncssh's readdir replaced by one with another source (as an upgrade would): the
    pipelined listing turns itself off and scandir lists instead."""
    original = SFTPClientHandler.readdir
    calls: list[bytes] = []

    async def readdir(self: SFTPClientHandler, handle: bytes) -> Any:
        calls.append(handle)
        return await original(self, handle)

    monkeypatch.setattr(SFTPClientHandler, "readdir", readdir)
    monkeypatch.setattr(session, "list_directory", _never)
    assert not surface.enabled("pipeline")
    _push_pull_nochange(openssh, tmp_path)
    assert calls  # the listings went through asyncssh's own scandir
