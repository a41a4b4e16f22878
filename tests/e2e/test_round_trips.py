"""A push with nothing to do, as the real OpenSSH sees it: what it asks, and what waits for
what. Round trips are counted from the order of requests and answers (``record_sftp``), never
timed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
from asyncssh.constants import (
    FXP_CLOSE,
    FXP_EXTENDED,
    FXP_HANDLE,
    FXP_LSTAT,
    FXP_MKDIR,
    FXP_OPEN,
    FXP_OPENDIR,
    FXP_READ,
    FXP_REMOVE,
    FXP_RMDIR,
)

from sftpmirror.transport._fastpath import surface
from tests.conftest import Target
from tests.e2e.helpers import Packet, record_sftp, run_cli, trips

DEEP = "a1/b1/c1/d1/e1"


def sent(events: list[Packet], pkttype: int, path: str) -> Packet:
    """The request of this type whose first field is ``path``."""
    field = len(path.encode()).to_bytes(4, "big") + path.encode()
    return next(
        p for p in events
        if p.kind == "send" and p.type == pkttype and p.payload.startswith(field)
    )  # fmt: skip


def answer_at(events: list[Packet], request: Packet) -> int:
    return next(i for i, p in enumerate(events) if p.kind == "recv" and p.id == request.id)


def deep_site(root: Path) -> Path:
    for level in range(1, 6):
        sub = root / "/".join(DEEP.split("/")[:level])
        sub.mkdir(parents=True, exist_ok=True)
        (sub / "index.html").write_text(f"level {level}\n")
    (root / "index.html").write_text("home\n")
    return root


def push_twice(
    openssh: Target,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    between: Callable[[], None] | None = None,
    wide: int = 0,
) -> list[Packet]:
    """The deep site (with ``wide`` more directories beside it) pushed, then pushed again with
    nothing to do: what the second one did. ``between`` runs before the second push."""
    site = deep_site(tmp_path / "public")
    for n in range(wide):
        (site / f"w{n}").mkdir()
        (site / f"w{n}" / "index.html").write_text(f"{n}\n")
    first = run_cli("push", str(site), openssh.url(), target=openssh)
    assert first.exit_code == 0, first.output
    events = record_sftp(monkeypatch)
    if between is not None:
        between()
    again = run_cli("push", "--json", str(site), openssh.url(), target=openssh)
    assert again.exit_code == 0, again.output
    summary, _ = json.JSONDecoder().raw_decode(again.output[again.output.index("{") :])
    assert summary["ok"], again.output
    assert summary["planned"] == summary["done"] == {}, again.output
    return events


def test_the_listing_goes_ahead_of_the_walk(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directories the local side has are listed at once, not one level per two round
    trips: the deepest one is asked for before its grandparent's listing is answered (the
    walk alone asks for a directory only once its parent's listing is in)."""
    events = push_twice(openssh, tmp_path, monkeypatch)
    root = openssh.path
    deepest = sent(events, FXP_OPENDIR, f"{root}/{DEEP}")
    grandparent = sent(events, FXP_OPENDIR, f"{root}/a1/b1/c1")
    assert events.index(deepest) < answer_at(events, grandparent)
    assert events[answer_at(events, deepest)].type == FXP_HANDLE


def test_the_lock_costs_its_mkdir_before_the_scan_and_two_round_trips_after(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deploy lock is taken (its MKDIR answered) before the listing starts, and its holder
    is written while the trees are scanned; at the end, the holder is read at the size this run
    wrote (its open, then its reads and close at once) and the lock removed; a run that had no
    journal to repair and wrote none removes none."""
    events = push_twice(openssh, tmp_path, monkeypatch)
    root = openssh.path
    lock = f"{root}/.sftpmirror-lock"
    made = sent(events, FXP_MKDIR, lock)
    listing = sent(events, FXP_OPENDIR, root)
    assert answer_at(events, made) < events.index(listing)
    holder = f"{lock}/holder.json".encode()
    holder_renamed = next(  # (posix-rename of the holder's temporary)
        p for p in events
        if p.kind == "send" and p.type == FXP_EXTENDED and p.payload.endswith(holder)
    )  # fmt: skip
    assert events.index(listing) < answer_at(events, holder_renamed)
    opens = [i for i, p in enumerate(events) if p.kind == "send" and p.type == FXP_OPEN
             and p.payload[4 : 4 + len(holder)] == holder]  # fmt: skip
    release = opens[-1]
    removed = sent(events, FXP_RMDIR, lock)
    # (the holder, a temporary of it a cut could have left, the lock)
    assert trips(events, release, events.index(removed) + 1) == [
        [FXP_OPEN],
        [FXP_READ, FXP_READ, FXP_CLOSE],
        [FXP_REMOVE, FXP_REMOVE, FXP_RMDIR],
    ]
    journal = f"{root}/.sftpmirror-journal".encode()
    assert not [p for p in events if p.type == FXP_REMOVE and journal in p.payload]


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "one-each"])
def test_the_requests_of_a_turn_share_ssh_packets(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packing: bool
) -> None:
    """The SFTP requests written in one turn of the event loop go out in as few SSH packets as
    they fit in (``_fastpath/packing.py``): a no-change push of the deep site sends a handful
    of packets for its listing's requests, where asyncssh alone sends one SSH packet per
    request (the second case, with the fast path switched off, shows that count)."""
    if not packing:
        monkeypatch.setenv(surface.SWITCH, "packing")
    count = {"packets": 0}
    send = asyncssh.connection.SSHConnection._send

    def counting(self: asyncssh.connection.SSHConnection, data: bytes) -> None:
        count["packets"] += 1
        send(self, data)

    monkeypatch.setattr(asyncssh.connection.SSHConnection, "_send", counting)
    events = push_twice(openssh, tmp_path, monkeypatch, lambda: count.update(packets=0), wide=60)
    requests = sum(p.kind == "send" for p in events)
    assert requests > 250  # (65 directories: OPENDIR, two READDIRs, CLOSE each)
    if packing:  # (the login's packets, and about one per round trip)
        assert count["packets"] < requests / 4, (count, requests)
    else:
        assert count["packets"] > requests, (count, requests)


def test_the_manifest_is_read_ahead_at_its_listed_size(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest is read at the size its LSTAT gave: its two READs (the data, the end) go
    out together, where asyncssh's read asked for 1 MiB in four READs, then for the rest of
    the short answer, then for the end. With the holder's two, a no-change push reads four
    times in all."""
    events = push_twice(openssh, tmp_path, monkeypatch)
    manifest = f"{openssh.path}/.sftpmirror-manifest.json.gz"
    looked = sent(events, FXP_LSTAT, manifest)
    opened = sent(events, FXP_OPEN, manifest)
    assert answer_at(events, looked) < events.index(opened)
    reads = [i for i, p in enumerate(events) if p.kind == "send" and p.type == FXP_READ]
    assert len(reads) == 4, [events[i] for i in reads]
    first, second = reads[:2]  # the manifest's (the holder's come at the end)
    assert answer_at(events, opened) < first
    assert not [p for p in events[first:second] if p.kind == "recv"]  # sent together


def test_the_backup_area_is_made_in_one_round_trip(
    openssh: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deploy that replaces a file five directories deep keeps the old one in its backup
    area, whose directories (``files/a1``, ``files/a1/b1``, … ``files/a1/b1/c1/d1/e1``) are all
    asked for at once, parents first (OpenSSH answers in order), not one level per round
    trip; the backup's copy of the manifest is written meanwhile."""
    site = deep_site(tmp_path / "public")
    first = run_cli("push", str(site), openssh.url(), target=openssh)
    assert first.exit_code == 0, first.output
    (site / DEEP / "index.html").write_text("level 5, edited\n")
    events = record_sftp(monkeypatch)
    again = run_cli("push", str(site), openssh.url(), target=openssh)
    assert again.exit_code == 0, again.output
    backups = f"{openssh.path}/.sftpmirror-backups/".encode()
    made = [p for p in events if p.kind == "send" and p.type == FXP_MKDIR and backups in p.payload
            and b"/files/" in p.payload]  # fmt: skip
    assert len(made) == 5, made  # files/a1 … files/a1/b1/c1/d1/e1 (files/ made with the area)
    first_answer = min(answer_at(events, p) for p in made)
    assert all(events.index(p) < first_answer for p in made)
    kept = openssh.disk / ".sftpmirror-backups"
    assert [p.read_text() for p in kept.glob(f"*/files/{DEEP}/index.html")] == ["level 5\n"]
