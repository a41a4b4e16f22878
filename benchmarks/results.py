"""What the benchmark measured (runs, cells, start-up times) and how figures are written.

The tables are GitHub-flavoured Markdown, so the output can be pasted into a README as it is.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "TIMES",
    "Cell",
    "MemoryResult",
    "RunRecord",
    "StartupResult",
    "fmt_mib",
    "fmt_ratio",
    "fmt_seconds",
    "markdown_table",
]

TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass
class RunRecord:
    seconds: float
    returncode: int
    peak_rss_kib: int
    problem: str | None = None
    log_tail: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Cell:
    """The runs of one tool in one scenario at one RTT (and, in the scaling table, one size)."""

    scenario: str
    rtt_ms: float
    tool: str
    files: int | None = None  # the scaling table's tree size; None for the site scenarios
    status: str = "ok"  # ok | failed | absent | skipped
    runs: list[RunRecord] = field(default_factory=list)
    note: str | None = None

    def add(self, record: RunRecord) -> None:
        self.runs.append(record)
        if not record.ok:
            self.fail(record.problem or "failed")

    def fail(self, note: str) -> None:
        self.status = "failed"
        self.note = self.note or note

    def skip(self, note: str) -> None:
        self.status = "skipped"
        self.note = note

    @property
    def median(self) -> float | None:
        if self.status != "ok" or not self.runs:
            return None
        return statistics.median(r.seconds for r in self.runs)

    @property
    def peak_rss_kib(self) -> int | None:
        """The largest peak RSS of the cell's runs (None if it has no successful run)."""
        if self.status != "ok" or not self.runs:
            return None
        return max(r.peak_rss_kib for r in self.runs)

    @property
    def per_1000(self) -> float | None:
        """Median seconds per 1,000 files (scaling cells only)."""
        median = self.median
        if median is None or not self.files:
            return None
        return median / self.files * 1000


@dataclass
class MemoryResult:
    files: int
    bytes: int
    seconds: float
    peak_rss_kib: int
    problem: str | None

    @property
    def seconds_per_1000(self) -> float:
        return self.seconds / self.files * 1000


@dataclass
class StartupResult:
    """Repeated runs of one start-up command (``sftpmirror --version``)."""

    label: str
    command: str
    seconds: list[float] = field(default_factory=list)
    peak_rss_kib: list[int] = field(default_factory=list)
    problem: str | None = None

    @property
    def best(self) -> float | None:
        return min(self.seconds) if self.seconds and self.problem is None else None

    @property
    def median(self) -> float | None:
        if not self.seconds or self.problem is not None:
            return None
        return statistics.median(self.seconds)


def fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.3f} s"
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def fmt_ratio(ratio: float) -> str:
    if ratio >= 10:
        return f"{TIMES}{ratio:.0f}"
    if ratio >= 1:
        return f"{TIMES}{ratio:.1f}"
    return f"{TIMES}{ratio:.2f}"


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: int | None = None
) -> str:
    """A Markdown table padded to line up in a terminal; columns from index *right* on are
    aligned right (numbers), the others left."""
    right = len(header) if right is None else right
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    widths = [max(w, 3) for w in widths]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i >= right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [("-" * (w - 1) + ":") if i >= right else "-" * w for i, w in enumerate(widths)]
    return "\n".join([line(header), "| " + " | ".join(rule) + " |", *(line(r) for r in rows)])
