"""LocalTree as a pull's destination: a file written in one piece is made, written, given its
mode and mtime and renamed into place in one thread call (each thread call takes the GIL from
the event loop reading the next answers); a file in pieces, and a directory, as few as they
need. What lands is the same either way."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from sftpmirror.engine.model import Entry, Kind
from sftpmirror.trees.local import LocalTree

MTIME = 1_700_000_000


def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    to_thread = asyncio.to_thread

    async def counting(func: Any, /, *args: Any) -> Any:
        calls.append(getattr(func, "__name__", repr(func)))
        return await to_thread(func, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    return calls


async def write(tree: LocalTree, name: str, pieces: list[bytes]) -> None:
    entry = Entry(name, Kind.FILE, sum(map(len, pieces)), MTIME, 0o640)
    async with tree.open_write(entry, perms=True) as writer:
        offset = 0
        for piece in pieces:
            await writer.write(piece, offset)
            offset += len(piece)


@pytest.mark.parametrize(
    ("pieces", "threads"),
    [([], 1), ([b"one piece"], 1), ([b"two ", b"pieces"], 3), ([b"a", b"b", b"c"], 4)],
)
def test_thread_calls_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pieces: list[bytes], threads: int
) -> None:
    calls = counted(monkeypatch)
    asyncio.run(write(LocalTree(tmp_path, follow_symlinks=False), "f.txt", pieces))
    assert len(calls) == threads, calls
    st = (tmp_path / "f.txt").stat()
    assert (tmp_path / "f.txt").read_bytes() == b"".join(pieces)
    assert (stat.S_IMODE(st.st_mode), int(st.st_mtime)) == (0o640, MTIME)
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary left


def test_a_directory_is_one_thread_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counted(monkeypatch)
    tree = LocalTree(tmp_path, follow_symlinks=False)
    asyncio.run(tree.mkdir(Entry("d", Kind.DIR, mtime=MTIME, mode=0o751), perms=True))
    assert len(calls) == 1
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o751


def test_a_failed_copy_leaves_nothing(tmp_path: Path) -> None:
    async def fail(pieces: list[bytes]) -> None:
        entry = Entry("f.txt", Kind.FILE, 9, MTIME, 0o644)
        tree = LocalTree(tmp_path, follow_symlinks=False)
        async with tree.open_write(entry, perms=True) as writer:
            for i, piece in enumerate(pieces):
                await writer.write(piece, i)
            raise OSError("the source went away")

    for pieces in ([], [b"x"], [b"x", b"y"]):
        with pytest.raises(OSError, match="went away"):
            asyncio.run(fail(pieces))
        assert os.listdir(tmp_path) == []
