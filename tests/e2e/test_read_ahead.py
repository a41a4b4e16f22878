"""A pull's downloads, as the real OpenSSH sees them: a file of up to ``READ_AHEAD`` bytes is
its OPEN and one more round trip (its READs, the READ that finds its end and the CLOSE, sent
before any of them is answered), where asyncssh's own read took five. Round trips are counted,
not timed: every SFTP request the client writes to the channel and every answer it gets is
recorded in order (on the session's own objects, so no fast path is switched off by it), and
with one file in flight at a time a round trip is a run of requests that no answer came
between."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asyncssh.constants import FXP_CLOSE, FXP_OPEN, FXP_READ

from sftpmirror.transport import session as session_module
from sftpmirror.transport._fastpath import surface
from tests.conftest import Target
from tests.e2e.helpers import Packet, record_sftp, run_cli, trips

FILES = {
    "empty.txt": b"",
    "page.html": os.urandom(5_000),
    "image.jpg": os.urandom(300_000),  # two READs: the server answers 255 KiB at most
    "font.woff2": os.urandom(session_module.READ_AHEAD),
}


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[Packet]:
    return record_sftp(monkeypatch)


def downloads(events: list[Packet], names: list[str]) -> dict[str, list[list[int]]]:
    """Per file: its requests, one list per round trip (from its OPEN to the next file's)."""
    opens = [
        next(i for i, (kind, pkttype, _, payload) in enumerate(events)
             if kind == "send" and pkttype == FXP_OPEN and name.encode() in payload)
        for name in names
    ]  # fmt: skip
    bounds = [*sorted(opens), len(events)]
    found: dict[str, list[list[int]]] = {}
    for name, start in zip(names, opens, strict=True):
        found[name] = trips(events, start, bounds[bounds.index(start) + 1])
    return found


def pull(openssh: Target, dest: Path) -> None:
    for name, data in FILES.items():
        (openssh.disk / name).write_bytes(data)
    result = run_cli("pull", "--jobs", "1", openssh.url(), str(dest), target=openssh)
    assert result.exit_code == 0, result.output
    for name, data in FILES.items():
        assert (dest / name).read_bytes() == data


def test_a_file_is_its_open_and_one_round_trip(
    openssh: Target, tmp_path: Path, recorded: list[Packet]
) -> None:
    pull(openssh, tmp_path / "pulled")
    trips = downloads(recorded, list(FILES))
    reads = {name: -(-len(data) // 261120) + 1 for name, data in FILES.items()}  # and the end
    for name in FILES:
        assert trips[name] == [[FXP_OPEN], [FXP_READ] * reads[name] + [FXP_CLOSE]], name


def test_asyncssh_s_read_took_five(
    openssh: Target, tmp_path: Path, recorded: list[Packet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pipeline off (SFTPMIRROR_NO_FASTPATH): what the test above would have counted
    before, so it measures what it says."""
    monkeypatch.setenv(surface.SWITCH, "pipeline")
    pull(openssh, tmp_path / "pulled")
    trips = downloads(recorded, list(FILES))
    assert len(trips["page.html"]) == 5  # open; reads; the rest of a short one; the end; close
