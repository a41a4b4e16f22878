"""Table tests of check_deletes(): the delete guards, checked on plans made by plan()."""

from __future__ import annotations

import pytest

from sftpmirror.engine.guards import MIN_FILES, DeleteLimits, check_deletes
from sftpmirror.engine.model import Entry, Listing, Op
from sftpmirror.engine.plan import PlanOptions, plan
from sftpmirror.errors import ExitStatus, SafetyError

from .planhelpers import d, f, listing, ln

DELETE = PlanOptions(delete=True)


def files(n: int, prefix: str = "f") -> list[Entry]:
    return [f(f"{prefix}{i:02d}") for i in range(n)]


def check(src: Listing, dst: Listing, limits: DeleteLimits) -> None:
    check_deletes(plan(src, dst, DELETE), src, dst, limits)


def test_min_files_is_ten() -> None:
    # The tables below are written for a percent rule that starts at ten files.
    assert MIN_FILES == 10


# Each case: source, destination, limits. None of them may raise.
ALLOWED = [
    pytest.param(listing(), listing(), DeleteLimits(), id="both-empty"),
    pytest.param(
        listing(*files(3)), listing(*files(3)), DeleteLimits(max_delete=0), id="no-deletes"
    ),
    pytest.param(
        listing(*files(3)), listing(), DeleteLimits(max_delete=0), id="only-copies-max-delete-0"
    ),
    pytest.param(
        listing(), listing(d("a"), d("a/b")), DeleteLimits(), id="empty-source-dirs-only-dst"
    ),
    pytest.param(
        listing(),
        listing(*files(3)),
        DeleteLimits(allow_empty_source=True),
        id="empty-source-allowed",
    ),
    pytest.param(
        listing(),
        listing(*files(20)),
        DeleteLimits(allow_empty_source=True),
        id="empty-source-allowed-beats-percent-rule",
    ),
    pytest.param(
        listing(f("keep")),
        listing(f("keep"), *files(2)),
        DeleteLimits(max_delete=2),
        id="max-delete-2-with-2",
    ),
    pytest.param(
        listing(*files(5)),
        listing(*files(10)),
        DeleteLimits(),
        id="10-files-lose-5-50pct",
    ),
    pytest.param(
        listing(*files(4)),
        listing(*files(10)),
        DeleteLimits(max_delete_percent=100),
        id="10-files-lose-6-percent-100",
    ),
    pytest.param(
        listing(*files(1)),
        listing(*files(9)),
        DeleteLimits(),
        id="9-files-lose-8-below-min-files",
    ),
    pytest.param(
        listing(*files(1)),
        listing(*files(1), *(d(f"dir{i:02d}") for i in range(20))),
        DeleteLimits(max_delete=0),
        id="rmdirs-do-not-count",
    ),
    pytest.param(
        listing(f("x")),
        listing(d("x"), f("x/a"), f("x/b")),
        DeleteLimits(max_delete=2),
        id="clear-of-a-dir-counts-only-its-files",
    ),
    pytest.param(
        listing(*files(10)),
        listing(*files(10), d("old"), d("old/sub")),
        DeleteLimits(max_delete=0, max_delete_percent=0),
        id="dirs-only-deleted-max-0-percent-0",
    ),
]


@pytest.mark.parametrize(("src", "dst", "limits"), ALLOWED)
def test_allowed(src: Listing, dst: Listing, limits: DeleteLimits) -> None:
    check(src, dst, limits)


# Each case: source, destination, limits, words the message must hold.
REFUSED = [
    pytest.param(
        listing(),
        listing(*files(3)),
        DeleteLimits(),
        ("3 file(s)", "source is empty"),
        id="empty-source",
    ),
    pytest.param(
        listing(),
        listing(f("only")),
        DeleteLimits(max_delete_percent=100),
        ("1 file(s)", "source is empty"),
        id="empty-source-one-file-percent-100",
    ),
    pytest.param(
        listing(),
        listing(ln("link")),
        DeleteLimits(),
        ("source is empty",),
        id="empty-source-symlink-only",
    ),
    pytest.param(
        listing(),
        listing(*files(3)),
        DeleteLimits(allow_empty_source=True, max_delete=2),
        ("3 file(s)", "--max-delete 2"),
        id="empty-source-allowed-still-max-delete",
    ),
    pytest.param(
        listing(f("keep")),
        listing(f("keep"), *files(3)),
        DeleteLimits(max_delete=2),
        ("3 file(s)", "--max-delete 2"),
        id="max-delete-2-with-3",
    ),
    pytest.param(
        listing(f("keep")),
        listing(f("keep"), f("gone")),
        DeleteLimits(max_delete=0),
        ("1 file(s)", "--max-delete 0"),
        id="max-delete-0-with-1",
    ),
    pytest.param(
        listing(*files(4)),
        listing(*files(10)),
        DeleteLimits(),
        ("6 of the destination's 10 files", "60%", "more than 50%"),
        id="10-files-lose-6",
    ),
    pytest.param(
        listing(*files(1)),
        listing(*files(10)),
        DeleteLimits(max_delete_percent=80),
        ("9 of the destination's 10 files", "90%", "more than 80%"),
        id="10-files-lose-9-percent-80",
    ),
    pytest.param(
        listing(*files(7)),
        listing(*files(10)),
        DeleteLimits(max_delete_percent=25.5),
        ("3 of the destination's 10 files", "more than 25.5%"),
        id="fractional-percent",
    ),
    pytest.param(
        listing(d("x"), f("x/a")),
        listing(f("x"), f("y")),
        DeleteLimits(max_delete=1),
        ("2 file(s)", "--max-delete 1"),
        id="clear-of-a-file-counts",
    ),
    pytest.param(
        listing(d("x"), f("x/new")),
        listing(f("x")),
        DeleteLimits(max_delete=0),
        ("1 file(s)", "--max-delete 0"),
        id="clear-of-a-file-alone-counts",
    ),
    pytest.param(
        listing(f("x")),
        listing(d("x"), f("x/a"), f("x/b"), f("x/c")),
        DeleteLimits(max_delete=2),
        ("3 file(s)", "--max-delete 2"),
        id="clear-of-a-dir-counts-its-files",
    ),
]


@pytest.mark.parametrize(("src", "dst", "limits", "words"), REFUSED)
def test_refused(src: Listing, dst: Listing, limits: DeleteLimits, words: tuple[str, ...]) -> None:
    with pytest.raises(SafetyError) as caught:
        check(src, dst, limits)
    assert caught.value.exit_status is ExitStatus.SAFETY
    assert int(caught.value.exit_status) == 6
    for word in words:
        assert word in caught.value.message
    assert caught.value.hint


def test_clear_actions_are_what_is_counted() -> None:
    # The premise of the clear cases above: plan() turns a kind change into CLEAR, not DELETE.
    src, dst = listing(d("x")), listing(f("x"))
    ops = [(a.op, a.path) for a in plan(src, dst, DELETE).actions()]
    assert (Op.CLEAR, "x") in ops
    assert all(op is not Op.DELETE for op, _ in ops)


def test_without_delete_nothing_is_refused() -> None:
    # Without --delete the plan removes nothing, so even an empty source passes.
    src, dst = listing(), listing(*files(MIN_FILES))
    check_deletes(plan(src, dst, PlanOptions()), src, dst, DeleteLimits(max_delete=0))


def test_the_limits_are_independent() -> None:
    # max_delete passes (None) but the percent rule still applies, and vice versa.
    src, dst = listing(*files(4)), listing(*files(10))
    with pytest.raises(SafetyError, match="of the destination's 10 files"):
        check(src, dst, DeleteLimits(max_delete=None))
    with pytest.raises(SafetyError, match="--max-delete 5"):
        check(src, dst, DeleteLimits(max_delete=5, max_delete_percent=100))


def test_a_source_of_empty_directories_counts_as_empty() -> None:
    src = listing(d("posts"), d("posts/2024"))
    dst = listing(d("posts"), f("index.html"), f("posts/a.html"))
    with pytest.raises(SafetyError, match="source is empty"):
        check_deletes(plan(src, dst, PlanOptions(delete=True)), src, dst, DeleteLimits())
