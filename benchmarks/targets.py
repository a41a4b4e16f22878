"""Issue 19's performance targets, checked against one invocation's figures (``--targets``).

Nothing here is asserted: the verdicts are printed after the tables, for the README. A target
is *met* or *missed* only when this run measured it under the target's own conditions (site
size, round trip, tree size); otherwise the nearest figure this run has is shown with ``n/a``
and the conditions it was measured under.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from benchmarks.results import TIMES, Cell, StartupResult, fmt_ratio, fmt_seconds, markdown_table

__all__ = ["Verdict", "evaluate", "targets_table"]

BASELINE = "sftpmirror"
MEDIUM_POSTS = 500
SMALL_POSTS = 200
TARGET_RTT = 20.0
BIG_TREE = 100_000
MID_TREE = 10_000

SiteCells = Mapping[tuple[str, float, str], Cell]
ScaleCells = Mapping[tuple[int, float, str, str], Cell]


@dataclass(frozen=True)
class Verdict:
    target: str
    conditions: str
    measured: str
    verdict: str  # met | missed | n/a: ... | not measured: ...


def _speedup(base: Cell | None, peer: Cell | None) -> float | None:
    """peer's median / sftpmirror's median: how many times faster sftpmirror was."""
    if base is None or peer is None or base.median is None or peer.median is None:
        return None
    return peer.median / base.median if base.median > 0 else None


def _site_target(
    cells: SiteCells, posts: int | None, scenario: str, peer: str, want: float, site: int
) -> Verdict:
    label = {"pull-initial": "pull (initial)", "nochange": "no change"}.get(scenario, scenario)
    peer_label = "rclone -T32" if peer == "rclone-t32" else peer
    name = f"{site}-post site, {label}: {TIMES}{want:g} {peer_label} or more"
    conditions = f"--posts {site}, {TARGET_RTT:g} ms"
    rtts = sorted({rtt for (s, rtt, t) in cells if s == scenario and t == BASELINE}, reverse=True)
    for rtt in ([TARGET_RTT] if TARGET_RTT in rtts else []) + [r for r in rtts if r != TARGET_RTT]:
        ratio = _speedup(cells.get((scenario, rtt, BASELINE)), cells.get((scenario, rtt, peer)))
        if ratio is None:
            continue
        measured = fmt_ratio(ratio)
        if posts == site and rtt == TARGET_RTT:
            return Verdict(name, conditions, measured, "met" if ratio >= want else "missed")
        return Verdict(name, conditions, measured, f"n/a: measured on {posts} posts at {rtt:g} ms")
    return Verdict(name, conditions, "—", f"not measured: needs {scenario} with {peer}")


def _startup_target(startup: Sequence[StartupResult]) -> Verdict:
    name = "`sftpmirror --version`: 0.15 s wall or less"
    conditions = "median of the console script's runs"
    by_label = {s.label: s for s in startup}
    chosen = by_label.get("sftpmirror --version") or by_label.get("python -m sftpmirror --version")
    if chosen is None or chosen.median is None:
        return Verdict(name, conditions, "—", "not measured: needs --scenarios startup")
    median, best = chosen.median, chosen.best or chosen.median
    measured = f"{fmt_seconds(median)} (best {fmt_seconds(best)}; {chosen.label})"
    return Verdict(name, conditions, measured, "met" if median <= 0.15 else "missed")


def _largest(scale: ScaleCells, op: str, rtt: float) -> int | None:
    sizes = [n for (n, r, o, t), c in scale.items() if o == op and r == rtt and t == BASELINE]
    return max(sizes) if sizes else None


def _scale_verdict(
    name: str, conditions: str, files: int, want_files: int, ok: bool, text: str
) -> Verdict:
    if files == want_files:
        return Verdict(name, conditions, text, "met" if ok else "missed")
    return Verdict(name, conditions, text, f"n/a: measured at {files:,} files")


def _scale_speed_target(scale: ScaleCells, rtt: float, peer: str, want: float) -> Verdict:
    peer_label = "rclone -T32" if peer == "rclone-t32" else peer
    what = f"{TIMES}{want:g} {peer_label} or more" if want != 1 else f"as fast as {peer_label}"
    name = f"100k files, no change at {rtt:g} ms: {what}"
    conditions = f"--scale-files …,{BIG_TREE}, --scale-rtt-ms with {rtt:g}"
    sizes = sorted(
        (n for (n, r, o, t) in scale if o == "nochange" and r == rtt and t == BASELINE),
        reverse=True,
    )
    for n in sizes:
        ratio = _speedup(
            scale.get((n, rtt, "nochange", BASELINE)), scale.get((n, rtt, "nochange", peer))
        )
        if ratio is not None:
            return _scale_verdict(name, conditions, n, BIG_TREE, ratio >= want, fmt_ratio(ratio))
    return Verdict(name, conditions, "—", f"not measured: needs scaling at {rtt:g} ms with {peer}")


def _scale_rss_target(scale: ScaleCells, op: str, limit_mib: float) -> Verdict:
    label = {"push": "push", "nochange": "no change"}[op]
    name = f"100k files, {label}: peak RSS {limit_mib:g} MiB or less"
    conditions = f"--scale-files …,{BIG_TREE} (largest over the RTTs)"
    sizes = sorted({n for (n, r, o, t) in scale if o == op and t == BASELINE}, reverse=True)
    for n in sizes:
        peaks = [
            c.peak_rss_kib
            for (cn, r, o, t), c in scale.items()
            if cn == n and o == op and t == BASELINE and c.peak_rss_kib is not None
        ]
        if peaks:
            mib = max(peaks) / 1024
            return _scale_verdict(name, conditions, n, BIG_TREE, mib <= limit_mib, f"{mib:.1f} MiB")
    return Verdict(name, conditions, "—", "not measured: needs --scenarios scaling")


def _flat_target(scale: ScaleCells, op: str, rtt: float) -> Verdict:
    label = {"push": "push", "nochange": "no change", "pull": "pull"}[op]
    name = f"time per 1,000 files flat within 20% from 10k to 100k: {label}, {rtt:g} ms"
    conditions = f"--scale-files {MID_TREE},{BIG_TREE}"
    sizes = sorted(
        n
        for (n, r, o, t), c in scale.items()
        if o == op and r == rtt and t == BASELINE and c.per_1000 is not None
    )
    if len(sizes) < 2:
        return Verdict(name, conditions, "—", "not measured: needs two tree sizes")
    small, big = (MID_TREE, BIG_TREE) if {MID_TREE, BIG_TREE} <= set(sizes) else sizes[-2:]
    a = scale[(small, rtt, op, BASELINE)].per_1000
    b = scale[(big, rtt, op, BASELINE)].per_1000
    if a is None or b is None:  # filtered above
        return Verdict(name, conditions, "—", "not measured")
    change = b / a - 1
    text = f"{fmt_seconds(a)} → {fmt_seconds(b)} ({change:+.0%})"
    if (small, big) == (MID_TREE, BIG_TREE):
        return Verdict(name, conditions, text, "met" if abs(change) <= 0.20 else "missed")
    return Verdict(name, conditions, text, f"n/a: measured from {small:,} to {big:,} files")


def evaluate(
    cells: SiteCells,
    posts: int | None,
    scale: ScaleCells,
    scale_rtts: Sequence[float],
    startup: Sequence[StartupResult],
) -> list[Verdict]:
    """Every target of issue 19, with this run's figure and verdict."""
    site: list[Callable[[], Verdict]] = [
        lambda: _site_target(cells, posts, "nochange", "rclone", 15, MEDIUM_POSTS),
        lambda: _site_target(cells, posts, "initial", "rclone", 15, MEDIUM_POSTS),
        lambda: _site_target(cells, posts, "initial", "rclone-t32", 5, MEDIUM_POSTS),
        lambda: _site_target(cells, posts, "rebuild", "rclone", 25, MEDIUM_POSTS),
        lambda: _site_target(cells, posts, "pull-initial", "rclone", 10, MEDIUM_POSTS),
        lambda: _site_target(cells, posts, "initial", "rclone", 10, SMALL_POSTS),
        lambda: _site_target(cells, posts, "nochange", "rclone", 10, SMALL_POSTS),
    ]
    verdicts = [make() for make in site]
    verdicts.append(_startup_target(startup))
    verdicts.append(_scale_speed_target(scale, TARGET_RTT, "rclone-t32", 3))
    verdicts.append(_scale_speed_target(scale, 0.0, "rclone", 1))
    verdicts.append(_scale_rss_target(scale, "push", 120))
    verdicts.append(_scale_rss_target(scale, "nochange", 120))
    measured_rtts = sorted({rtt for (_n, rtt, _o, _t) in scale})
    for op in ("push", "nochange", "pull"):
        for rtt in measured_rtts or scale_rtts[:1]:
            verdicts.append(_flat_target(scale, op, rtt))
    return verdicts


def targets_table(verdicts: Sequence[Verdict]) -> str:
    rows = [[v.target, v.conditions, v.measured, v.verdict] for v in verdicts]
    return markdown_table(["target (issue 19)", "conditions", "this run", "verdict"], rows)
