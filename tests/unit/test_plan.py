"""Table tests of the pure plan() function: what is done, in which phase and step, and why."""

from __future__ import annotations

from collections import Counter

import pytest

from sftpmirror.engine.model import Action, Entry, Kind, Listing, Op, Phase, Plan
from sftpmirror.engine.plan import PAGE_SUFFIXES, ROOT, PlanOptions, describe, plan, same_file
from sftpmirror.engine.tree import Capabilities

from .planhelpers import d, f, listing, ln, render, steps

DELETE = PlanOptions(delete=True)
NO_PERMS = PlanOptions(perms=False)

# Each case: source listing, destination listing, options, expected (phase, op, path) in order.
CASES = [
    pytest.param(
        listing(f("a.txt")), listing(), PlanOptions(), [("assets", "copy", "a.txt")], id="new-file"
    ),
    pytest.param(
        listing(d("a"), f("a/b.txt")),
        listing(),
        PlanOptions(),
        [("mkdir", "mkdir", "a"), ("assets", "copy", "a/b.txt")],
        id="new-dir-before-its-file",
    ),
    pytest.param(
        listing(d("empty")),
        listing(),
        PlanOptions(),
        [("mkdir", "mkdir", "empty")],
        id="new-empty-dir",
    ),
    pytest.param(
        listing(f("a", mtime=1000)), listing(f("a", mtime=1000)), PlanOptions(), [], id="unchanged"
    ),
    pytest.param(
        listing(f("a", mtime=1001)),
        listing(f("a", mtime=1000)),
        PlanOptions(),
        [],
        id="mtime-1s-newer-within-window",
    ),
    pytest.param(
        listing(f("a", mtime=999)),
        listing(f("a", mtime=1000)),
        PlanOptions(),
        [],
        id="mtime-1s-older-within-window",
    ),
    pytest.param(
        listing(f("a", mtime=1002)),
        listing(f("a", mtime=1000)),
        PlanOptions(),
        [("assets", "replace", "a")],
        id="mtime-2s-newer",
    ),
    pytest.param(
        listing(f("a", mtime=998)),
        listing(f("a", mtime=1000)),
        PlanOptions(),
        [("assets", "replace", "a")],
        id="mtime-2s-older",
    ),
    pytest.param(
        listing(f("a", mtime=1004)),
        listing(f("a", mtime=1000)),
        PlanOptions(modify_window=5),
        [],
        id="mtime-4s-within-window-5",
    ),
    pytest.param(
        listing(f("a", size=11)),
        listing(f("a", size=10)),
        PlanOptions(),
        [("assets", "replace", "a")],
        id="size",
    ),
    pytest.param(
        listing(f("a", size=11, mode=0o600)),
        listing(f("a", size=10)),
        PlanOptions(),
        [("assets", "replace", "a")],
        id="size-and-mode-one-replace",
    ),
    pytest.param(
        listing(f("a", mode=0o600)),
        listing(f("a", mode=0o644)),
        PlanOptions(),
        [("attrs", "attrs", "a")],
        id="perms",
    ),
    pytest.param(
        listing(f("a", mode=0o600)), listing(f("a", mode=0o644)), NO_PERMS, [], id="perms-off"
    ),
    pytest.param(
        listing(f("a", mode=0o100644)),
        listing(f("a", mode=0o644)),
        PlanOptions(),
        [],
        id="only-permission-bits-count",
    ),
    pytest.param(
        listing(d("a", mode=0o700)),
        listing(d("a", mode=0o755)),
        PlanOptions(),
        [("attrs", "attrs", "a")],
        id="dir-mode",
    ),
    pytest.param(
        listing(d("a", mode=0o700)),
        listing(d("a", mode=0o755)),
        NO_PERMS,
        [],
        id="dir-mode-perms-off",
    ),
    pytest.param(
        listing(d("a", mtime=1)),
        listing(d("a", mtime=9999)),
        PlanOptions(),
        [],
        id="dir-mtime-ignored",
    ),
    pytest.param(
        listing(),
        listing(f("x"), d("old"), f("old/y")),
        PlanOptions(),
        [],
        id="dst-only-without-delete",
    ),
    pytest.param(
        listing(),
        listing(f("x"), d("old"), d("old/sub"), f("old/sub/y"), ln("link")),
        DELETE,
        [
            ("delete", "delete", "link"),
            ("delete", "delete", "old/sub/y"),
            ("delete", "delete", "x"),
            ("rmdir", "rmdir", "old/sub"),
            ("rmdir", "rmdir", "old"),
        ],
        id="dst-only-with-delete",
    ),
    pytest.param(
        listing(d("keep"), f("keep/a")),
        listing(d("keep"), f("keep/a"), f("keep/stale")),
        DELETE,
        [("delete", "delete", "keep/stale")],
        id="delete-inside-kept-dir",
    ),
    pytest.param(
        listing(),
        listing(d("old"), f("old/a"), d("old/sub"), f("old/sub/b"), excluded={"old/keep.txt"}),
        DELETE,
        [
            ("delete", "delete", "old/a"),
            ("delete", "delete", "old/sub/b"),
            ("rmdir", "rmdir", "old/sub"),
        ],
        id="excluded-holds-dir",
    ),
    pytest.param(
        listing(),
        listing(d("old"), d("old/sub"), f("old/sub/b"), excluded={"old/sub/deep/keep"}),
        DELETE,
        [("delete", "delete", "old/sub/b")],
        id="excluded-deep-holds-every-ancestor",
    ),
    pytest.param(
        listing(),
        listing(d("old"), f("old/a"), excluded={"old-keep.txt", "oldx/keep"}),
        DELETE,
        [("delete", "delete", "old/a"), ("rmdir", "rmdir", "old")],
        id="excluded-sibling-with-same-prefix-does-not-hold",
    ),
    pytest.param(
        listing(f("x")),
        listing(d("x"), f("x/a")),
        PlanOptions(),
        [],
        id="file-over-dir-without-delete-conflict",
    ),
    pytest.param(
        listing(f("x")),
        listing(d("x"), d("x/sub"), f("x/sub/a"), f("x/b")),
        DELETE,
        [
            ("clear", "clear", "x/sub/a"),
            ("clear", "clear", "x/b"),
            ("clear", "clear", "x/sub"),
            ("clear", "clear", "x"),
            ("assets", "copy", "x"),
        ],
        id="file-over-dir-with-delete",
    ),
    pytest.param(
        listing(f("x")),
        listing(d("x"), f("x/a"), excluded={"x/keep"}),
        DELETE,
        [("delete", "delete", "x/a")],
        id="file-over-dir-holding-excluded-conflict",
    ),
    pytest.param(
        listing(d("x"), f("x/a")),
        listing(f("x")),
        PlanOptions(),
        [("clear", "clear", "x"), ("mkdir", "mkdir", "x"), ("assets", "copy", "x/a")],
        id="dir-over-file-without-delete",
    ),
    pytest.param(
        listing(d("x")),
        listing(ln("x")),
        PlanOptions(),
        [("clear", "clear", "x"), ("mkdir", "mkdir", "x")],
        id="dir-over-symlink",
    ),
    pytest.param(
        listing(f("x")),
        listing(ln("x")),
        PlanOptions(),
        # the link removed first: some servers (ProFTPD) follow a link a rename lands on
        [("clear", "clear", "x"), ("assets", "copy", "x")],
        id="file-over-symlink",
    ),
    pytest.param(listing(ln("x")), listing(), PlanOptions(), [], id="source-symlink-not-copied"),
    pytest.param(
        listing(ln("x")),
        listing(f("x")),
        DELETE,
        [],
        id="source-symlink-keeps-dst-file-even-with-delete",
    ),
    pytest.param(
        listing(d("a"), f("a/b.css")),
        listing(root_exists=False),
        PlanOptions(),
        [("mkdir", "mkdir", ""), ("mkdir", "mkdir", "a"), ("assets", "copy", "a/b.css")],
        id="missing-root",
    ),
    pytest.param(
        listing(),
        listing(root_exists=False),
        PlanOptions(),
        [("mkdir", "mkdir", "")],
        id="missing-root-empty-source",
    ),
    pytest.param(
        listing(f("a.css"), d("img"), f("img/x.png"), f("index.html"), f("feed.xml")),
        listing(),
        PlanOptions(),
        [
            ("mkdir", "mkdir", "img"),
            ("assets", "copy", "a.css"),
            ("assets", "copy", "img/x.png"),
            ("pages", "copy", "feed.xml"),
            ("pages", "copy", "index.html"),
        ],
        id="pages-after-assets",
    ),
    pytest.param(
        listing(f("a.css"), f("b.js"), f("index.html")),
        listing(),
        PlanOptions(page_suffixes=(".css",)),
        [("assets", "copy", "b.js"), ("assets", "copy", "index.html"), ("pages", "copy", "a.css")],
        id="page-suffixes-option",
    ),
    pytest.param(
        listing(f("INDEX.HTML"), f("a.Xml"), f("logo.svg")),
        listing(),
        PlanOptions(),
        [
            ("assets", "copy", "logo.svg"),
            ("pages", "copy", "INDEX.HTML"),
            ("pages", "copy", "a.Xml"),
        ],
        id="page-suffix-case-insensitive",
    ),
    pytest.param(
        listing(f("old.html", size=2), f("new.html"), f("s.css", mode=0o600)),
        listing(f("old.html", size=1), f("s.css"), f("gone.png")),
        DELETE,
        [
            ("pages", "copy", "new.html"),
            ("pages", "replace", "old.html"),
            ("attrs", "attrs", "s.css"),
            ("delete", "delete", "gone.png"),
        ],
        id="all-phases-in-deploy-order",
    ),
]


@pytest.mark.parametrize(("src", "dst", "options", "expected"), CASES)
def test_plan_table(
    src: Listing, dst: Listing, options: PlanOptions, expected: list[tuple[str, str, str]]
) -> None:
    assert render(plan(src, dst, options)) == expected


# ---------------------------------------------------------------- reasons


@pytest.mark.parametrize(
    ("src", "dst", "op", "path", "needles"),
    [
        pytest.param(listing(f("a")), listing(), Op.COPY, "a", ("new file",), id="new-file"),
        pytest.param(listing(d("a")), listing(), Op.MKDIR, "a", ("new directory",), id="new-dir"),
        pytest.param(
            listing(f("a", mtime=1002)),
            listing(f("a", mtime=1000)),
            Op.REPLACE,
            "a",
            ("modification time changed",),
            id="mtime",
        ),
        pytest.param(
            listing(f("a", size=1234)),
            listing(f("a", size=99)),
            Op.REPLACE,
            "a",
            ("size", "99", "1234"),
            id="size-mentions-both",
        ),
        pytest.param(
            listing(f("a", mode=0o600)),
            listing(f("a", mode=0o644)),
            Op.ATTRS,
            "a",
            ("644", "600"),
            id="file-perms",
        ),
        pytest.param(
            listing(d("a", mode=0o700)),
            listing(d("a", mode=0o755)),
            Op.ATTRS,
            "a",
            ("755", "700"),
            id="dir-perms",
        ),
        pytest.param(
            listing(f("a")),
            listing(ln("a")),
            Op.COPY,
            "a",
            ("symbolic link",),
            id="over-symlink",
        ),
        pytest.param(listing(), listing(f("a")), Op.DELETE, "a", ("not in source",), id="delete"),
        pytest.param(listing(), listing(d("a")), Op.RMDIR, "a", ("not in source",), id="rmdir"),
        pytest.param(
            listing(d("a")),
            listing(f("a")),
            Op.CLEAR,
            "a",
            ("directory replaces",),
            id="clear-file",
        ),
        pytest.param(
            listing(f("a")), listing(d("a")), Op.CLEAR, "a", ("file replaces",), id="clear-dir"
        ),
        pytest.param(
            listing(), listing(root_exists=False), Op.MKDIR, "", ("does not exist",), id="root"
        ),
    ],
)
def test_reasons(src: Listing, dst: Listing, op: Op, path: str, needles: tuple[str, ...]) -> None:
    actions = [a for a in plan(src, dst, DELETE).actions() if a.path == path and a.op is op]
    assert len(actions) == 1
    for needle in needles:
        assert needle in actions[0].reason


def test_size_reason_order_is_old_then_new() -> None:
    (action,) = plan(listing(f("a", size=20)), listing(f("a", size=10))).actions()
    assert action.reason.index("10") < action.reason.index("20")


def test_removals_carry_the_destination_entry() -> None:
    gone = f("gone", size=77, mode=0o600)
    (action,) = plan(listing(), listing(gone), DELETE).actions()
    assert action.entry == gone


def test_copies_carry_the_source_entry() -> None:
    new = f("a", size=5, mtime=2000, mode=0o640)
    (action,) = plan(listing(new), listing(f("a", size=4))).actions()
    assert action.entry == new


# ---------------------------------------------------------------- same_file


@pytest.mark.parametrize(
    ("src", "dst", "window", "expected"),
    [
        pytest.param(f("a"), f("a"), 1, None, id="same"),
        pytest.param(f("a", mtime=5), f("a", mtime=4), 1, None, id="1s"),
        pytest.param(f("a", mtime=5), f("a", mtime=3), 1, "modification time changed", id="2s"),
        pytest.param(f("a", mtime=5), f("a", mtime=3), 2, None, id="2s-window-2"),
        pytest.param(f("a", mtime=5), f("a", mtime=5), 0, None, id="window-0-same"),
        pytest.param(
            f("a", mtime=5), f("a", mtime=4), 0, "modification time changed", id="window-0"
        ),
        pytest.param(f("a", size=2), f("a", size=1), 1, "size changed (1 → 2 bytes)", id="size"),
        pytest.param(
            f("a", size=2, mtime=9),
            f("a", size=1),
            1,
            "size changed (1 → 2 bytes)",
            id="size-first",
        ),
        pytest.param(f("a", mode=0o600), f("a"), 1, None, id="mode-not-content"),
    ],
)
def test_same_file(src: Entry, dst: Entry, window: int, expected: str | None) -> None:
    assert same_file(src, dst, window) == expected


# ---------------------------------------------------------------- ordering and steps


def test_nested_dirs_one_step_per_depth_shallowest_first() -> None:
    src = listing(d("a"), d("a/b"), d("a/b/c"), d("z"), d("z/y"), f("a/b/c/x.css"), f("z/y/i.html"))
    assert steps(plan(src, listing())) == [
        ("mkdir", ("a", "z")),
        ("mkdir", ("a/b", "z/y")),
        ("mkdir", ("a/b/c",)),
        ("assets", ("a/b/c/x.css",)),
        ("pages", ("z/y/i.html",)),
    ]


def test_missing_root_is_its_own_first_step() -> None:
    result = plan(listing(d("a"), f("b")), listing(root_exists=False))
    assert result.phases[0].name == "mkdir"
    assert result.phases[0].steps[0] == (Action(Op.MKDIR, ROOT, result.actions()[0].reason),)
    assert steps(result)[:2] == [("mkdir", ("",)), ("mkdir", ("a",))]


def test_rmdir_deepest_first_one_step_per_depth() -> None:
    dst = listing(d("a"), d("a/b"), d("a/b/c"), d("q"), d("q/r"))
    assert steps(plan(listing(), dst, DELETE)) == [
        ("rmdir", ("a/b/c",)),
        ("rmdir", ("a/b", "q/r")),
        ("rmdir", ("a", "q")),
    ]


def test_clear_deepest_first_one_step_per_depth() -> None:
    dst = listing(d("x"), d("x/a"), f("x/a/1"), f("x/2"))
    assert steps(plan(listing(f("x")), dst, DELETE)) == [
        ("clear", ("x/a/1",)),
        ("clear", ("x/2", "x/a")),
        ("clear", ("x",)),
        ("assets", ("x",)),
    ]


def test_copies_and_attrs_are_one_concurrent_step_each() -> None:
    src = listing(
        f("a.png"), f("b.png"), f("c.html"), f("d.html"), f("e", mode=0o600), f("g", mode=0o600)
    )
    dst = listing(f("e"), f("g"))
    assert steps(plan(src, dst)) == [
        ("assets", ("a.png", "b.png")),
        ("pages", ("c.html", "d.html")),
        ("attrs", ("e", "g")),
    ]


def test_default_page_suffixes() -> None:
    assert set(PAGE_SUFFIXES) >= {".html", ".htm", ".xml"}


def test_pages_phase_after_assets_phase() -> None:
    src = listing(
        f("a.css"),
        d("img"),
        f("img/x.png"),
        f("index.html"),
        f("feed.xml"),
        d("blog"),
        d("blog/post"),
        f("blog/post/index.html"),
    )
    result = plan(src, listing())
    names = [p.name for p in result.phases]
    assert names.index("assets") < names.index("pages")
    by_phase = {p.name: {a.path for a in p.actions()} for p in result.phases}
    assert by_phase["assets"] == {"a.css", "img/x.png"}
    assert by_phase["pages"] == {"index.html", "feed.xml", "blog/post/index.html"}

    css_is_page = plan(src, listing(), PlanOptions(page_suffixes=(".css",)))
    by_phase = {p.name: {a.path for a in p.actions()} for p in css_is_page.phases}
    assert by_phase["pages"] == {"a.css"}
    assert "a.css" not in by_phase["assets"]


@pytest.mark.parametrize(
    ("src", "dst", "destructive"),
    [
        pytest.param(listing(), listing(f("x")), {"delete"}, id="delete"),
        pytest.param(listing(), listing(d("x")), {"rmdir"}, id="rmdir"),
        pytest.param(listing(f("a")), listing(d("b"), f("c")), {"delete", "rmdir"}, id="both"),
    ],
)
def test_only_delete_phases_are_destructive(
    src: Listing, dst: Listing, destructive: set[str]
) -> None:
    result = plan(src, dst, DELETE)
    assert {p.name for p in result.phases if p.destructive} == destructive
    assert all(not p.destructive for p in result.phases if p.name not in destructive)


def test_empty_phases_are_left_out() -> None:
    result = plan(listing(f("a.css")), listing())
    assert [p.name for p in result.phases] == ["assets"]
    assert all(p.steps and all(p.steps) for p in result.phases)


# ---------------------------------------------------------------- conflicts, warnings


def test_file_over_dir_without_delete_is_a_conflict_and_untouched() -> None:
    src = listing(f("x"), f("other"))
    dst = listing(d("x"), f("x/a"))
    result = plan(src, dst)
    assert [c.path for c in result.conflicts] == ["x"]
    assert result.conflicts[0].entry == src.entries["x"]
    assert "--delete" in result.conflicts[0].reason
    assert not any(a.path == "x" or a.path.startswith("x/") for a in result.actions())
    assert render(result) == [("assets", "copy", "other")]


def test_file_over_dir_holding_excluded_is_a_conflict_even_with_delete() -> None:
    result = plan(listing(f("x")), listing(d("x"), f("x/a"), excluded={"x/keep"}), DELETE)
    assert [c.path for c in result.conflicts] == ["x"]
    assert "excluded" in result.conflicts[0].reason
    assert not any(a.path == "x" for a in result.actions())
    assert not any(a.op is Op.CLEAR for a in result.actions())


def test_file_over_dir_with_delete_is_no_conflict() -> None:
    result = plan(listing(f("x")), listing(d("x"), f("x/a")), DELETE)
    assert result.conflicts == ()
    assert result.counts() == Counter({Op.CLEAR: 2, Op.COPY: 1})


def test_cleared_paths_are_not_deleted_again() -> None:
    result = plan(listing(f("x")), listing(d("x"), d("x/s"), f("x/s/a")), DELETE)
    ops_by_path = Counter(a.path for a in result.actions())
    assert ops_by_path == Counter({"x": 2, "x/s": 1, "x/s/a": 1})
    assert not any(a.op in (Op.DELETE, Op.RMDIR) for a in result.actions())


def test_source_symlink_warns_and_does_nothing() -> None:
    result = plan(listing(ln("link"), f("a")), listing())
    assert render(result) == [("assets", "copy", "a")]
    assert len(result.warnings) == 1
    assert "link" in result.warnings[0]
    assert "symbolic link" in result.warnings[0]


def test_listing_warnings_are_carried_source_first() -> None:
    src = listing(warnings=["s1", "s2"])
    dst = listing(warnings=["d1"])
    assert plan(src, dst).warnings == ("s1", "s2", "d1")


def test_listing_warnings_come_before_plan_warnings() -> None:
    result = plan(listing(ln("l"), warnings=["s1"]), listing(warnings=["d1"]))
    assert result.warnings[:2] == ("s1", "d1")
    assert len(result.warnings) == 3


def test_plan_does_not_mutate_listings() -> None:
    src = listing(f("x"), d("n"), ln("l"), warnings=["w"])
    dst = listing(d("x"), f("x/a"), f("gone"), excluded={"e"}, warnings=["v"])
    before = (
        dict(src.entries),
        dict(dst.entries),
        set(dst.excluded),
        list(src.warnings),
        list(dst.warnings),
    )
    plan(src, dst, DELETE)
    assert (
        dict(src.entries),
        dict(dst.entries),
        set(dst.excluded),
        list(src.warnings),
        list(dst.warnings),
    ) == before


# ---------------------------------------------------------------- Plan helpers


def test_counts_and_bytes_to_copy() -> None:
    src = listing(f("new", size=10), f("changed", size=5), f("perm", size=7, mode=0o600), d("dir"))
    dst = listing(f("changed", size=4), f("perm", size=7), f("gone", size=100), d("olddir"))
    result = plan(src, dst, DELETE)
    assert result.counts() == Counter(
        {Op.COPY: 1, Op.REPLACE: 1, Op.ATTRS: 1, Op.MKDIR: 1, Op.DELETE: 1, Op.RMDIR: 1}
    )
    assert result.bytes_to_copy == 15


def test_empty_plan_is_false() -> None:
    result = plan(listing(f("a"), d("b")), listing(f("a"), d("b")))
    assert not result
    assert result.phases == ()
    assert result.counts() == Counter()
    assert result.bytes_to_copy == 0


def test_conflict_only_plan_is_true() -> None:
    result = plan(listing(f("x")), listing(d("x"), f("x/a")))
    assert result.actions() == []
    assert result.conflicts
    assert bool(result) is True


def test_plan_with_only_empty_phases_is_false() -> None:
    assert not Plan((Phase("assets", ()),))
    assert Plan((Phase("assets", ((Action(Op.COPY, f("a"), "new file"),),)),))


def test_warnings_alone_do_not_make_a_plan() -> None:
    assert not plan(listing(ln("l")), listing())


# ---------------------------------------------------------------- describe


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        pytest.param(
            Action(Op.MKDIR, d("img"), "new directory"), "mkdir    img/  (new directory)", id="dir"
        ),
        pytest.param(
            Action(Op.MKDIR, ROOT, "destination directory does not exist"),
            "mkdir    .  (destination directory does not exist)",
            id="root",
        ),
        pytest.param(
            Action(Op.COPY, f("a/b.css"), "new file"), "copy     a/b.css  (new file)", id="file"
        ),
        pytest.param(
            Action(Op.REPLACE, f("i.html"), "modification time changed"),
            "replace  i.html  (modification time changed)",
            id="replace",
        ),
        pytest.param(
            Action(Op.RMDIR, d("a/b"), "not in source"),
            "rmdir    a/b/  (not in source)",
            id="rmdir",
        ),
        pytest.param(
            Action(Op.DELETE, ln("l"), "not in source"), "delete   l  (not in source)", id="symlink"
        ),
    ],
)
def test_describe(action: Action, expected: str) -> None:
    assert describe(action) == expected


def test_entry_depth_and_parent() -> None:
    assert (ROOT.depth, d("a").depth, f("a/b/c").depth) == (0, 1, 3)
    assert (f("a").parent, f("a/b/c").parent) == ("", "a/b")
    assert ROOT.kind is Kind.DIR


def test_unreadable_paths_become_failures_and_hold_back_deletes() -> None:
    src = listing(d("a"), f("a/x"))
    src.unreadable["a"] = "cannot list directory: Permission denied"
    dst = listing(d("a"), f("a/x"), f("a/y"), f("z"))
    result = plan(src, dst, DELETE)
    assert [(c.path, c.reason) for c in result.conflicts] == [
        ("a", "source: cannot list directory: Permission denied")
    ]
    # The deletes are planned but destructive: execute() will not run them after a failure.
    assert all(p.destructive for p in result.phases if p.name in ("delete", "rmdir"))


# --- a destination whose server ignores chmod (its probed Capabilities) ---------------------

IGNORES_CHMOD = Capabilities(chmod=False, create_mode=True, default_mode=0o644)
ONLY_0644 = Capabilities(chmod=False, create_mode=False, default_mode=0o644)


def test_where_chmod_is_ignored_a_mode_change_is_an_upload() -> None:
    """ProFTPD's IgnoreSFTPSetPerms: a chmod is acknowledged and ignored, so a file whose mode
    differs is uploaded again (created with its mode); planned as ATTRS, it never settled."""
    the_plan = plan(
        listing(f("a.html", mode=0o644)),
        listing(f("a.html", mode=0o600)),
        PlanOptions(caps=IGNORES_CHMOD),
    )
    [action] = the_plan.actions()
    assert (action.op, action.path) == (Op.REPLACE, "a.html")
    assert "ignores chmod" in action.reason
    assert the_plan.conflicts == ()


def test_a_mode_the_server_cannot_make_is_a_conflict_not_an_upload() -> None:
    """rclone makes every file 0644, whatever is asked: 0600 cannot be had, and says so."""
    the_plan = plan(
        listing(f("new.html", mode=0o600), f("old.html", mode=0o600)),
        listing(f("old.html", mode=0o644)),
        PlanOptions(caps=ONLY_0644),
    )
    assert the_plan.actions() == []
    assert sorted(a.path for a in the_plan.conflicts) == ["new.html", "old.html"]
    assert all("cannot be made" in a.reason for a in the_plan.conflicts)
    assert plan(listing(f("new.html")), listing(), PlanOptions(caps=ONLY_0644)).conflicts == ()


def test_a_directory_mode_that_chmod_cannot_change_is_a_conflict() -> None:
    the_plan = plan(
        listing(d("css", mode=0o755)), listing(d("css", mode=0o700)), PlanOptions(caps=ONLY_0644)
    )
    assert the_plan.actions() == []
    [conflict] = the_plan.conflicts
    assert conflict.path == "css"
    assert "ignores chmod" in conflict.reason
