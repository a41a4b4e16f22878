"""The engine (mirror, execute, with_reconnects) between two MemoryTrees, with injected faults.

MemoryTree is a test double for the engine only; the trees' own behaviour is tested against
real servers in tests/tree/.
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from sftpmirror.engine import retry
from sftpmirror.engine.deploy import pick_stale
from sftpmirror.engine.mirror import MirrorOptions, mirror
from sftpmirror.engine.model import Action, Entry, Failure, Kind, Listing, Op, Plan, Report
from sftpmirror.engine.reporter import NullReporter
from sftpmirror.engine.retry import with_reconnects
from sftpmirror.engine.transfer import copy_file, execute
from sftpmirror.engine.tree import (
    Excludes,
    PermissionDenied,
    ServerFailure,
    is_temp,
)
from sftpmirror.errors import (
    AuthError,
    ConnectError,
    ConnectionLost,
    HostKeyError,
    RemoteError,
    SafetyError,
)
from sftpmirror.trees.memory import NOW, MemoryTree

MUTATING = {"mkdir", "set_attrs", "remove", "rmdir", "open_write", "write", "rename"}


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.phases: list[str] = []
        self.warnings: list[str] = []

    def phase(self, name: str) -> None:
        self.phases.append(name)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_WAIT", 0.0)


DEFAULTS = MirrorOptions()


def run_mirror(
    src: MemoryTree, dst: MemoryTree, options: MirrorOptions = DEFAULTS
) -> tuple[Plan, Report]:
    return asyncio.run(mirror(src, dst, options, NullReporter()))


def site() -> MemoryTree:
    """A small source: modes a build machine with umask 077 would make, distinct mtimes."""
    src = MemoryTree("src")
    src.add_dir("", mode=0o700)
    src.add_dir("css", mode=0o700)
    src.add_dir("js", mode=0o750)
    src.add_dir("empty", mode=0o700)
    src.add_file("index.html", b"<h1>hello</h1>", mode=0o600, mtime=1_000)
    src.add_file("css/site.css", b"body{}", mode=0o600, mtime=2_000)
    src.add_file("js/app.js", b"x" * 3000, mode=0o755, mtime=3_000)
    return src


def mutations(tree: MemoryTree) -> list[tuple[str, str]]:
    return [call for call in tree.calls if call[0] in MUTATING]


def final_files(tree: MemoryTree) -> dict[str, bytes]:
    """Contents at final names (not upload temporaries)."""
    return {
        path: data
        for path, (data, _, _) in tree.files.items()
        if not is_temp(posixpath.basename(path))
    }


# --- MemoryTree itself: the properties the engine tests below rely on --------------------------


def test_memory_tree_scan_lists_temporaries_as_files_and_the_engine_picks_them() -> None:
    """A scan classifies nothing: a temporary is a file like any other until the engine, which
    knows the tags of its runs from the journal, picks its own out (F21)."""
    tree = MemoryTree()
    tree.add_file("keep.txt", b"k")
    tree.add_file("drafts/a.md", b"a")
    tree.add_file("sub/.sftpmirror.0123abcd.x.html.part", b"partial")
    tree.add_file("sub/.sftpmirror.89abcdef.y.html.part", b"a site file named like one")

    async def scan_while_writing() -> Listing:
        entry = Entry("sub/new.txt", Kind.FILE, mode=0o644)
        async with tree.open_write(entry, perms=True, tag="0123abcd") as w:
            await w.write(b"new", 0)
            return await tree.scan(Excludes(("drafts/",)))

    listing = asyncio.run(scan_while_writing())
    assert "sub/new.txt" not in listing.entries  # the upload in progress is not at its final name
    assert "sub/.sftpmirror.0123abcd.new.txt.part" in listing.entries
    assert listing.excluded == {"drafts"}
    pick_stale(Listing(), listing, {"0123abcd"})
    assert sorted(e.path for e in listing.stale) == [
        "sub/.sftpmirror.0123abcd.new.txt.part",
        "sub/.sftpmirror.0123abcd.x.html.part",
    ]
    assert "sub/.sftpmirror.89abcdef.y.html.part" in listing.entries  # not a tag of ours
    assert tree.files["sub/new.txt"][0] == b"new"
    assert asyncio.run(MemoryTree(root_exists=False).scan(Excludes())).root_exists is False


def test_memory_tree_failed_write_removes_temporary_and_keeps_old_file() -> None:
    tree = MemoryTree()
    tree.add_file("a.txt", b"old")

    async def failing_write() -> None:
        async with tree.open_write(Entry("a.txt", Kind.FILE, mode=0o644), perms=True) as w:
            await w.write(b"new content", 0)
            raise ServerFailure("failure")

    with pytest.raises(ServerFailure):
        asyncio.run(failing_write())
    assert tree.files == {"a.txt": (b"old", 0o644, NOW)}
    assert tree.temps() == []


# --- mirror(): a plain run ------------------------------------------------------------------------


def test_plain_mirror_makes_destination_identical_then_plans_nothing() -> None:
    src = site()
    dst = MemoryTree("dst", root_exists=False)

    _, report = run_mirror(src, dst)

    assert report.ok, report.failures
    assert report.done == Counter({Op.MKDIR: 4, Op.COPY: 3})  # the root, css, js, empty
    # Contents and mtimes as the source's; modes by the default chmod rules D755,F644.
    assert dst.files == {
        "index.html": (b"<h1>hello</h1>", 0o644, 1_000),
        "css/site.css": (b"body{}", 0o644, 2_000),
        "js/app.js": (b"x" * 3000, 0o644, 3_000),
    }
    assert {path: mode for path, (mode, _) in dst.dirs.items() if path} == {
        "css": 0o755,
        "js": 0o755,
        "empty": 0o755,
    }
    assert "" in dst.dirs
    # The Report's record of each copy is the size and SHA-256 of the bytes sent.
    assert report.copied == {
        path: (len(data), hashlib.sha256(data).hexdigest(), mtime)
        for path, (data, _, mtime) in src.files.items()
    }
    assert report.bytes_copied == sum(len(data) for data, _, _ in src.files.values())
    # Pages go last: index.html is written after every asset.
    writes = [path for op, path in dst.calls if op == "rename"]
    assert writes[-1] == "index.html"

    dst.calls.clear()
    again, second = run_mirror(src, dst)
    assert not again, again.actions()
    assert second.done == Counter()
    assert mutations(dst) == []


def test_mirror_changes_only_what_differs() -> None:
    src = site()
    dst = MemoryTree("dst")
    run_mirror(src, dst)
    src.add_file("css/site.css", b"body{color:red}", mode=0o600, mtime=2_500)  # new size
    dst.files["js/app.js"] = (b"x" * 3000, 0o600, 3_000)  # mode drifted on the server
    dst.calls.clear()

    _, report = run_mirror(src, dst)

    assert report.ok
    assert report.done == Counter({Op.REPLACE: 1, Op.ATTRS: 1})
    assert dst.files["css/site.css"] == (b"body{color:red}", 0o644, 2_500)
    assert dst.files["js/app.js"] == (b"x" * 3000, 0o644, 3_000)
    assert ("open_write", "index.html") not in dst.calls
    assert ("open_write", "js/app.js") not in dst.calls


def test_dry_run_changes_nothing() -> None:
    src = site()
    dst = MemoryTree("dst")
    dst.add_file("old.txt", b"old")

    plan, report = run_mirror(
        src, dst, MirrorOptions(delete=True, delete_foreign=True, dry_run=True)
    )

    assert report.dry_run
    assert plan.counts()[Op.COPY] == 3
    assert plan.counts()[Op.DELETE] == 1
    assert mutations(dst) == []
    assert final_files(dst) == {"old.txt": b"old"}


def test_kind_changes_with_delete() -> None:
    src = MemoryTree("src")
    src.add_file("page", b"now a file")
    src.add_file("assets/a.css", b"a")
    dst = MemoryTree("dst")
    dst.add_file("page/index.html", b"was a directory")
    dst.add_file("page/sub/deep.txt", b"deep")
    dst.add_file("assets", b"was a file")

    _, report = run_mirror(src, dst, MirrorOptions(delete=True, delete_foreign=True))

    assert report.ok, report.failures
    assert final_files(dst) == {"page": b"now a file", "assets/a.css": b"a"}
    assert set(dst.dirs) == {"", "assets"}


def test_delete_guard_refuses_before_anything_changes() -> None:
    src = MemoryTree("src")  # an empty build
    dst = MemoryTree("dst")
    dst.add_file("index.html", b"live site")

    with pytest.raises(SafetyError):
        run_mirror(src, dst, MirrorOptions(delete=True, delete_foreign=True))
    assert mutations(dst) == []
    assert final_files(dst) == {"index.html": b"live site"}


# --- execute(): failures of one item ------------------------------------------------------------


def test_failed_upload_is_recorded_and_holds_back_deletes() -> None:
    src = MemoryTree("src")
    for name in ("a.txt", "b.txt", "c.txt"):
        src.add_file(name, name.encode() * 3)
    dst = MemoryTree("dst")
    dst.add_file("extra.txt", b"not in source")
    dst.add_file("old/x.txt", b"not in source either")
    dst.faults[("open_write", "b.txt")] = PermissionDenied("permission denied")

    plan, report = run_mirror(src, dst, MirrorOptions(delete=True, delete_foreign=True))

    assert plan.counts()[Op.DELETE] == 2
    assert plan.counts()[Op.RMDIR] == 1
    assert report.failures == [Failure("b.txt", Op.COPY, "permission denied")]
    assert not report.ok
    assert report.done[Op.COPY] == 2
    assert final_files(dst) == {
        "a.txt": b"a.txta.txta.txt",
        "c.txt": b"c.txtc.txtc.txt",
        "extra.txt": b"not in source",
        "old/x.txt": b"not in source either",
    }
    assert "old" in dst.dirs
    assert report.not_run == 3  # two deletes and one rmdir held back
    assert not any(op in ("remove", "rmdir") for op, _ in dst.calls)
    assert dst.temps() == []


def test_tree_errors_fail_their_items_and_the_run_goes_on() -> None:
    src = site()
    src.add_file("js/lib.js", b"lib", mtime=4_000)
    dst = MemoryTree("dst")
    dst.add_file("js/lib.js", b"old lib!", mtime=1)
    dst.faults[("mkdir", "css")] = PermissionDenied("permission denied")
    dst.faults[("write", "js/lib.js")] = ServerFailure("failure")

    _, report = run_mirror(src, dst)

    assert sorted(report.failures, key=lambda f: f.path) == [
        Failure("css", Op.MKDIR, "permission denied"),
        Failure("css/site.css", Op.COPY, "skipped: css/ could not be created"),
        Failure("js/lib.js", Op.REPLACE, "failure"),
    ]
    assert ("open_write", "css/site.css") not in dst.calls  # not even tried
    # Everything else landed; the failed replacement left the old file whole, no temporary.
    assert final_files(dst) == {
        "index.html": b"<h1>hello</h1>",
        "js/app.js": b"x" * 3000,
        "js/lib.js": b"old lib!",
    }
    assert dst.temps() == []
    assert report.done == Counter({Op.MKDIR: 1, Op.COPY: 2})  # js/ was there


def test_remote_error_stops_the_run() -> None:
    src = MemoryTree("src")
    for name in ("a.css", "b.css", "c.css", "index.html"):
        src.add_file(name, name.encode())
    dst = MemoryTree("dst")
    dst.faults[("write", "b.css")] = RemoteError("remote filesystem full")

    with pytest.raises(RemoteError, match="remote filesystem full"):
        run_mirror(src, dst, MirrorOptions(jobs=1))
    assert final_files(dst) == {"a.css": b"a.css"}  # neither c.css nor the page after it
    assert ("open_write", "c.css") not in dst.calls
    assert dst.temps() == []


def test_remote_error_from_execute_propagates_past_other_workers() -> None:
    src = MemoryTree("src")
    for i in range(10):
        src.add_file(f"f{i}.bin", bytes([i]) * 10)
    dst = MemoryTree("dst")
    dst.faults[("rename", "f3.bin")] = RemoteError("refused")

    async def go() -> Report:
        the_plan, _ = await mirror(src, dst, MirrorOptions(dry_run=True), NullReporter())
        return await execute(the_plan, src, dst, jobs=4, perms=True, reporter=NullReporter())

    with pytest.raises(RemoteError, match="refused"):
        asyncio.run(go())
    assert "f3.bin" not in dst.files
    assert dst.temps() == []


# --- a lost connection ----------------------------------------------------------------------------


def test_connection_lost_aborts_with_the_report_so_far() -> None:
    src = MemoryTree("src")
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        src.add_file(name, b"new " + name.encode(), mtime=5_000)
    dst = MemoryTree("dst")
    dst.add_file("c.txt", b"old c", mtime=1)
    dst.add_file("d.txt", b"old d", mtime=1)
    dst.lose_connection_after_writes = 2  # a.txt and b.txt are written, c.txt's write is lost

    with pytest.raises(ConnectionLost) as caught:
        run_mirror(src, dst, MirrorOptions(jobs=1, delete=True, delete_foreign=True))

    done = caught.value.done
    assert done is not None
    assert done.done == Counter({Op.COPY: 2})
    assert set(done.copied) == {"a.txt", "b.txt"}
    assert done.failures == []  # a lost connection is not a per-file failure
    assert done.bytes_copied == len(b"new a.txt") + len(b"new b.txt")
    # Every final name holds a whole file, old or new; the lost upload is only a temporary.
    assert final_files(dst) == {
        "a.txt": b"new a.txt",
        "b.txt": b"new b.txt",
        "c.txt": b"old c",
        "d.txt": b"old d",
    }
    assert len(dst.temps()) == 1
    assert dst.temps()[0].endswith(".c.txt.part")


def test_connection_lost_with_many_workers_reports_exactly_what_landed() -> None:
    src = MemoryTree("src")
    for i in range(40):
        src.add_file(f"d{i % 4}/f{i:02d}.bin", bytes([i]) * (100 + i), mtime=5_000)
    dst = MemoryTree("dst")
    for i in range(0, 40, 3):
        dst.add_file(f"d{i % 4}/f{i:02d}.bin", b"old", mtime=1)
    dst.lose_connection_after_writes = 17

    with pytest.raises(ConnectionLost) as caught:
        run_mirror(src, dst, MirrorOptions(jobs=8))

    done = caught.value.done
    assert done is not None
    landed = {
        path
        for path, data in final_files(dst).items()
        if path in src.files and data == src.files[path][0]
    }
    assert set(done.copied) == landed
    assert done.done[Op.COPY] + done.done[Op.REPLACE] == len(landed)
    assert 0 < len(landed) <= 17  # 17 writes went through; a file is done once renamed
    for path, data in final_files(dst).items():
        assert data in (b"old", src.files[path][0]), path


# --- with_reconnects() ----------------------------------------------------------------------------


def scripted(
    outcomes: list[BaseException | Report],
) -> tuple[Callable[[], Awaitable[Report]], list[int]]:
    """An attempt that raises or returns the next outcome; the list counts the calls."""
    calls: list[int] = []

    async def attempt() -> Report:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return attempt, calls


def lost(copies: int, nbytes: int, path: str) -> ConnectionLost:
    return ConnectionLost(
        "connection lost",
        done=Report(
            done=Counter({Op.COPY: copies}), bytes_copied=nbytes, copied={path: (nbytes, "h", 0)}
        ),
    )


def reconnecting(
    attempt: Callable[[], Awaitable[Report]], reconnects: int, reporter: Recorder | None = None
) -> Report:
    return asyncio.run(
        with_reconnects(
            attempt, lambda r: r, reconnects=reconnects, reporter=reporter or Recorder()
        )
    )


def test_with_reconnects_carries_counts_after_two_losses() -> None:
    final = Report(done=Counter({Op.COPY: 1, Op.DELETE: 1}), bytes_copied=5)
    final.copied["c"] = (5, "h", 0)
    attempt, calls = scripted([lost(2, 10, "a"), lost(3, 20, "b"), final])
    reporter = Recorder()

    result = reconnecting(attempt, 3, reporter)

    assert result is final
    assert len(calls) == 3
    assert result.reconnects == 2
    assert result.done == Counter({Op.COPY: 6, Op.DELETE: 1})
    assert result.bytes_copied == 35
    assert set(result.copied) == {"a", "b", "c"}
    assert reporter.phases == ["connecting", "reconnecting", "reconnecting"]
    assert len(reporter.warnings) == 2


def test_with_reconnects_waits_double(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "FIRST_WAIT", 0.001)
    attempt, _ = scripted([lost(0, 0, "a"), lost(0, 0, "b"), Report()])
    reporter = Recorder()

    reconnecting(attempt, 3, reporter)

    assert [w.split(" reconnecting in ")[1] for w in reporter.warnings] == [
        "0.001s (1 of 3)",
        "0.002s (2 of 3)",
    ]


def test_with_reconnects_gives_up_after_its_reconnections() -> None:
    attempt, calls = scripted([lost(1, 1, "a"), lost(1, 2, "b"), Report()])

    with pytest.raises(ConnectionLost, match=r"after 1 reconnection\(s\)") as caught:
        reconnecting(attempt, 1)

    assert len(calls) == 2
    assert caught.value.done is not None
    assert caught.value.done.done == Counter({Op.COPY: 2})
    assert caught.value.done.bytes_copied == 3


def test_with_reconnects_zero_reconnects_raises_the_first_loss() -> None:
    attempt, calls = scripted([lost(1, 1, "a"), Report()])

    with pytest.raises(ConnectionLost):
        reconnecting(attempt, 0)
    assert len(calls) == 1


def test_host_key_error_on_reconnection_stops_at_once() -> None:
    attempt, calls = scripted([lost(1, 1, "a"), HostKeyError("host key changed"), Report()])

    with pytest.raises(HostKeyError):
        reconnecting(attempt, 3)
    assert len(calls) == 2


def test_login_refused_on_reconnection_stops_at_once() -> None:
    attempt, calls = scripted([lost(1, 1, "a"), AuthError("refused"), Report()])

    with pytest.raises(AuthError):
        reconnecting(attempt, 3)
    assert len(calls) == 2


def test_connect_error_first_time_stops_but_on_reconnection_is_retried() -> None:
    attempt, calls = scripted([ConnectError("no route"), Report()])
    with pytest.raises(ConnectError, match="no route"):
        reconnecting(attempt, 3)
    assert len(calls) == 1

    attempt, calls = scripted([lost(1, 1, "a"), ConnectError("not back yet"), Report()])
    result = reconnecting(attempt, 3)
    assert len(calls) == 3
    assert result.reconnects == 2
    assert result.done == Counter({Op.COPY: 1})


def test_mirror_reconnects_finishes_and_sweeps_the_lost_temporary() -> None:
    src = MemoryTree("src")
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt", "index.html"):
        src.add_file(name, name.encode() * 2, mode=0o600, mtime=7_000)
    dst = MemoryTree("dst")
    dst.add_file("gone.txt", b"to delete")
    dst.lose_connection_after_writes = 2

    async def attempt() -> tuple[Plan, Report]:
        dst.reconnect()  # "connect"
        return await mirror(
            src, dst, MirrorOptions(jobs=1, delete=True, delete_foreign=True), NullReporter()
        )

    _, report = asyncio.run(
        with_reconnects(attempt, lambda r: r[1], reconnects=3, reporter=NullReporter())
    )

    assert report.ok, report.failures
    assert report.reconnects == 1
    assert report.done == Counter({Op.COPY: 6, Op.SWEEP: 1, Op.DELETE: 1})
    assert report.bytes_copied == sum(len(data) for data, _, _ in src.files.values())
    assert set(report.copied) == set(src.files)
    assert dst.files == {path: (data, 0o644, 7_000) for path, (data, _, _) in src.files.items()}
    # Nothing already in place was uploaded twice.
    assert sorted(path for op, path in dst.calls if op == "rename") == sorted(src.files)


def test_progress_counts_bytes_once_the_file_is_in_place() -> None:
    """F19: a small file's bytes were counted when its write was queued (59.5 MiB/s shown on a
    1 Mbit/s link); now they count once the server has acknowledged them."""
    src, dst = MemoryTree(), MemoryTree()
    src.add_file("page.html", b"x" * 5000)
    events: list[str] = []

    class Watched(MemoryTree):
        def open_write(self, *args: Any, **kwargs: Any) -> Any:
            inner = MemoryTree.open_write(self, *args, **kwargs)

            @asynccontextmanager
            async def watched() -> AsyncIterator[Any]:
                async with inner as writer:
                    yield writer
                events.append("in place")

            return watched()

    watched = Watched()
    watched.dirs.update(dst.dirs)
    entry = Entry("page.html", Kind.FILE, 5000, NOW, 0o644)
    asyncio.run(
        copy_file(
            src, watched, Action(Op.COPY, entry, "new"), perms=True,
            sent=lambda n: events.append(f"sent {n}"),
        )
    )  # fmt: skip
    assert events == ["in place", "sent 5000"]


def test_mirror_leaves_nothing_frozen_for_the_collector() -> None:
    """The listings and the plan are set aside from the cyclic collector while they are used
    (``gc.freeze()``: a pass over them cost 52 ms of a no-change push); a library caller's
    process gets them back as ``mirror()`` returns, on success and on an error."""
    import gc

    before = gc.get_freeze_count()
    run_mirror(site(), MemoryTree("dst"))
    assert gc.get_freeze_count() == before
    broken = site()
    broken.faults[("scan", "")] = RemoteError("the listing failed")
    with pytest.raises(RemoteError, match="the listing failed"):
        run_mirror(broken, MemoryTree("dst"))
    assert gc.get_freeze_count() == before
    assert gc.isenabled()
