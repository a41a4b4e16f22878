"""Property tests of plan(): applying a plan to the destination, symbolically, yields the source.

The simulator executes the plan step by step and checks each action's precondition against the
state *before* its step (the actions of a step run concurrently): a file or directory is only
made inside an existing directory, a directory is only removed once it is empty (excluded paths
count as content that is never removed), nothing is removed that is not there.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftpmirror.engine.model import Entry, Kind, Listing, Op, Plan
from sftpmirror.engine.plan import PlanOptions, _case_collisions, plan, same_file

NAMES = ("a", "b", "c.html")
MAX_DEPTH = 3
PROPERTY = settings(
    max_examples=200, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@dataclass
class State:
    entries: dict[str, Entry]
    root: bool
    hidden: frozenset[str] = field(default_factory=frozenset)

    def is_dir(self, path: str) -> bool:
        if path == "":
            return self.root
        entry = self.entries.get(path)
        return entry is not None and entry.kind is Kind.DIR

    def has_children(self, path: str) -> bool:
        prefix = path + "/"
        return any(p.startswith(prefix) for p in (*self.entries, *self.hidden))


def _check(action_op: Op, entry: Entry, before: State) -> None:
    path = entry.path
    here = before.entries.get(path)
    where = f"{action_op.value} {path!r}"
    if action_op is Op.MKDIR and path == "":
        assert not before.root, f"{where}: root exists already"
        return
    if action_op in (Op.MKDIR, Op.COPY, Op.REPLACE):
        assert before.is_dir(entry.parent), f"{where}: parent is not a directory yet"
    if action_op in (Op.MKDIR, Op.COPY):
        assert here is None, f"{where}: something is there already"
    elif action_op is Op.REPLACE:
        assert here is not None, f"{where}: nothing to replace"
        assert here.kind is not Kind.DIR, f"{where}: replaces a directory"
    elif action_op is Op.ATTRS:
        assert here is not None, f"{where}: nothing there"
        assert here.kind is entry.kind, f"{where}: kind differs"
    elif action_op in (Op.CLEAR, Op.DELETE, Op.RMDIR):
        assert here is not None, f"{where}: nothing to remove"
        assert here == entry, f"{where}: removes something else than planned"
        if here.kind is Kind.DIR:
            assert action_op is not Op.DELETE, f"{where}: delete of a directory"
            assert not before.has_children(path), f"{where}: directory not empty"
        else:
            assert action_op is not Op.RMDIR, f"{where}: rmdir of a non-directory"


def simulate(dst: Listing, the_plan: Plan) -> State:
    state = State(dict(dst.entries), dst.root_exists, frozenset(dst.excluded))
    for phase in the_plan.phases:
        for step in phase.steps:
            paths = [a.path for a in step]
            assert len(paths) == len(set(paths)), f"{phase.name}: a path twice in one step"
            before = State(dict(state.entries), state.root, state.hidden)
            for action in step:
                _check(action.op, action.entry, before)
            for action in step:
                if action.op in (Op.CLEAR, Op.DELETE, Op.RMDIR):
                    del state.entries[action.path]
                elif action.op is Op.MKDIR and action.path == "":
                    state.root = True
                else:
                    state.entries[action.path] = action.entry
    return state


def assert_consistent(state: State) -> None:
    assert state.root
    for path, entry in state.entries.items():
        assert state.is_dir(entry.parent), f"{path!r} has no parent directory"


def assert_same(got: Entry, want: Entry, options: PlanOptions) -> None:
    assert got.kind is want.kind, got.path
    perms_ok = not options.perms or (got.mode & 0o777) == (want.mode & 0o777)
    assert perms_ok, f"{got.path}: mode {got.mode:o} != {want.mode:o}"
    if want.kind is Kind.FILE:
        assert same_file(want, got, options.modify_window) is None, got.path


# ---------------------------------------------------------------- strategies


def _fill(
    draw: st.DrawFn, listing: Listing, prefix: str, depth: int, kinds: tuple[str, ...]
) -> None:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    for name in names:
        path = f"{prefix}/{name}" if prefix else name
        kind = draw(st.sampled_from(kinds))
        mtime = draw(st.sampled_from((100, 101, 103)))
        if kind == "excluded":
            listing.excluded.add(path)
        elif kind == "symlink":
            listing.add(Entry(path, Kind.SYMLINK, mtime=mtime))
        elif kind == "file":
            size = draw(st.integers(0, 2))
            mode = draw(st.sampled_from((0o644, 0o600)))
            listing.add(Entry(path, Kind.FILE, size=size, mtime=mtime, mode=mode))
        else:
            mode = draw(st.sampled_from((0o755, 0o700)))
            listing.add(Entry(path, Kind.DIR, mtime=mtime, mode=mode))
            if depth < MAX_DEPTH:
                _fill(draw, listing, path, depth + 1, kinds)


@st.composite
def trees(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("file", "dir"), may_be_missing: bool = False
) -> Listing:
    listing = Listing()
    if may_be_missing and draw(st.booleans()):
        listing.root_exists = False
        return listing
    _fill(draw, listing, "", 1, kinds)
    return listing


def _tree_ok(listing: Listing) -> bool:
    for path in (*listing.entries, *listing.excluded):
        parent = path.rpartition("/")[0]
        if parent and listing.entries[parent].kind is not Kind.DIR:
            return False
    return True


SRC = trees()
SRC_WITH_LINKS = trees(kinds=("file", "dir", "dir", "symlink"))
DST = trees(kinds=("file", "dir", "symlink"), may_be_missing=True)
DST_WITH_EXCLUDED = trees(kinds=("file", "dir", "dir", "symlink", "excluded"), may_be_missing=True)
OPTIONS = st.builds(PlanOptions, perms=st.booleans(), modify_window=st.sampled_from((0, 1, 5)))


# ---------------------------------------------------------------- properties


@PROPERTY
@given(SRC, st.booleans())
def test_generated_trees_are_consistent(src: Listing, delete: bool) -> None:
    assert _tree_ok(src)
    assert plan(src, src, PlanOptions(delete=delete)).conflicts == ()


@PROPERTY
@given(SRC_WITH_LINKS, st.booleans(), OPTIONS)
def test_plan_against_itself_is_empty(src: Listing, delete: bool, options: PlanOptions) -> None:
    options = PlanOptions(delete=delete, perms=options.perms, modify_window=options.modify_window)
    result = plan(src, src, options)
    assert not result
    assert result.actions() == []
    links = [e for e in src.entries.values() if e.kind is Kind.SYMLINK]
    assert len(result.warnings) == len(links)


@PROPERTY
@given(SRC, DST, OPTIONS)
def test_with_delete_the_result_is_the_source(
    src: Listing, dst: Listing, options: PlanOptions
) -> None:
    options = PlanOptions(delete=True, perms=options.perms, modify_window=options.modify_window)
    result = plan(src, dst, options)
    assert result.conflicts == ()
    state = simulate(dst, result)
    assert_consistent(state)
    assert set(state.entries) == set(src.entries)
    for path, want in src.entries.items():
        assert_same(state.entries[path], want, options)
    assert not plan(src, Listing(state.entries), options)


@PROPERTY
@given(SRC, DST, OPTIONS)
def test_without_delete_the_result_is_a_superset(
    src: Listing, dst: Listing, options: PlanOptions
) -> None:
    options = PlanOptions(delete=False, perms=options.perms, modify_window=options.modify_window)
    result = plan(src, dst, options)
    expected_conflicts = {
        p
        for p, e in src.entries.items()
        if e.kind is Kind.FILE and p in dst.entries and dst.entries[p].kind is Kind.DIR
    }
    assert {c.path for c in result.conflicts} == expected_conflicts
    assert not any(a.op in (Op.DELETE, Op.RMDIR) for a in result.actions())
    state = simulate(dst, result)
    assert_consistent(state)
    for path, want in src.entries.items():
        if path in expected_conflicts:
            assert state.entries[path] == dst.entries[path]
        else:
            assert_same(state.entries[path], want, options)
    for path, entry in dst.entries.items():
        if path not in src.entries:
            assert state.entries[path] == entry, f"{path}: destination-only entry changed"
    assert set(state.entries) >= set(src.entries)


@PROPERTY
@given(SRC_WITH_LINKS, DST_WITH_EXCLUDED, st.booleans())
def test_excluded_paths_and_source_links_are_respected(
    src: Listing, dst: Listing, delete: bool
) -> None:
    options = PlanOptions(delete=delete)
    result = plan(src, dst, options)
    state = simulate(dst, result)  # checks no directory holding excluded paths is removed
    assert_consistent(state)
    conflicts = {c.path for c in result.conflicts}
    links = {p for p, e in src.entries.items() if e.kind is Kind.SYMLINK}
    assert not any(a.path in links for a in result.actions())
    assert sum("symbolic link on the source side" in w for w in result.warnings) == len(links)
    for path, want in src.entries.items():
        if path in links:
            assert state.entries.get(path) == dst.entries.get(path)
        elif path in conflicts:
            assert want.kind is Kind.FILE
            assert state.entries[path] == dst.entries[path]
        else:
            assert_same(state.entries[path], want, options)
    if delete:
        for path, entry in state.entries.items():
            if path not in src.entries and not any(
                path == link or path.startswith(link + "/") for link in links
            ):
                prefix = path + "/"
                assert entry.kind is Kind.DIR, f"{path}: left behind by --delete"
                assert any(x.startswith(prefix) for x in dst.excluded), path


# Letters whose folds meet: ß and ẞ (ss), long s, the Kelvin sign (k), dotted capital I.
FOLDING = "aAbBß/\u1e9e\u017fsSK\u212ak\u0130i"


@given(st.lists(st.text(alphabet=FOLDING, min_size=1, max_size=4), unique=True, max_size=8))
def test_case_collisions_are_found_as_by_folding_every_path(paths: list[str]) -> None:
    listing = Listing()
    for path in paths:
        listing.add(Entry(path, Kind.FILE))
    alike = len({p.casefold() for p in paths}) != len(paths)
    assert bool(_case_collisions(listing)) == alike


def test_case_collisions_fold_only_the_paths_that_change() -> None:
    listing = Listing()
    for n in range(100_000):
        listing.add(Entry(f"d{n // 100:04d}/page-{n:06d}.html", Kind.FILE))
    tracemalloc.start()
    try:
        found = _case_collisions(listing)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == []
    assert peak < 1 << 20  # (a fold of each path was 10 MB)
