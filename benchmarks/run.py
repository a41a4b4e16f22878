"""Benchmark sftpmirror against lftp, rclone and OpenSSH sftp on a real, chrooted OpenSSH sshd.

Run from the repository root, as root::

    python -m benchmarks.run --quick          # tiny sizes, well under a minute
    python -m benchmarks.run                  # the full benchmark (long)

Progress goes to stderr, the table to stdout, everything to a JSON file
(default ``benchmarks/results/latest.json``).  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from tests.openssh import SshdInfo, running_sshd

from benchmarks.measure import run_measured, tail
from benchmarks.peers import TOOLS, Endpoint, Tool, install_peers, tool_version
from benchmarks.sitegen import (
    TreeStats,
    generate_site,
    hugo_rebuild,
    make_big_file,
    make_many_files,
)
from benchmarks.verify import compare_trees, copy_tree, empty_directory

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "latest.json"
SCENARIOS = ("initial", "nochange", "rebuild", "bigfile", "memory")
BASELINE = "sftpmirror"
TIMES = "\N{MULTIPLICATION SIGN}"

_DEFAULTS = {"posts": 2000, "runs": 3, "big_mb": 1024, "memory_files": 100_000}
_QUICK = {"posts": 20, "runs": 1, "big_mb": 20, "memory_files": 2000}
_DEFAULT_RTT, _QUICK_RTT = "20", "5"


# --------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    posts: int
    rtts_ms: list[float]
    runs: int
    scenarios: list[str]
    tools: list[str]
    big_mb: int
    memory_files: int
    json_path: Path
    timeout: float
    workdir_base: Path
    keep: bool
    install_peers: bool
    quick: bool

    @property
    def memory_sizes(self) -> list[int]:
        return sorted({max(1, self.memory_files // 10), self.memory_files})


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=(
            "Time sftpmirror, lftp, rclone and OpenSSH sftp pushing a generated Hugo-like "
            "site to a real chrooted OpenSSH sshd on 127.0.0.1, directly and through a "
            "latency-injecting proxy.  Needs root."
        ),
    )
    parser.add_argument("--posts", type=int, help="posts in the generated site (default 2000)")
    parser.add_argument(
        "--rtt-ms",
        help="added round trip(s) in ms, comma-separated; a 0 ms run is always added "
        f"(default {_DEFAULT_RTT}, with --quick {_QUICK_RTT})",
    )
    parser.add_argument("--runs", type=int, help="runs per cell; the median is shown (default 3)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help=f"comma-separated subset of {','.join(TOOLS)}; {BASELINE} always runs "
        "(it is the baseline of the ratios)",
    )
    parser.add_argument("--big-mb", type=int, help="size of the big file in MiB (default 1024)")
    parser.add_argument(
        "--memory-files",
        type=int,
        help="files in the memory scenario's larger tree; the smaller has a tenth (default 100000)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before one run is killed"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("/var/tmp"), help="where the temp trees go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, trees)")
    parser.add_argument(
        "--install-peers",
        action="store_true",
        help="apt-get install lftp and rclone if missing (otherwise they show as absent)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes for development: 20 posts, 1 run, 5 ms, 20 MiB big file, "
        "2000 memory files (explicit flags still win)",
    )
    args = parser.parse_args(argv)

    preset = _QUICK if args.quick else _DEFAULTS

    def pick(name: str) -> int:
        value = getattr(args, name)
        return int(preset[name] if value is None else value)

    rtt_text = args.rtt_ms or (_QUICK_RTT if args.quick else _DEFAULT_RTT)
    try:
        rtts = {float(v) for v in _csv(rtt_text)}
    except ValueError:
        parser.error(f"--rtt-ms: not a comma-separated list of numbers: {rtt_text!r}")
    if any(r < 0 for r in rtts):
        parser.error("--rtt-ms must be >= 0")
    scenarios = _csv(args.scenarios)
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {SCENARIOS}")
    tools = _csv(args.tools)
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    config = Config(
        posts=pick("posts"),
        rtts_ms=[*sorted(rtts - {0.0}, reverse=True), 0.0],
        runs=pick("runs"),
        scenarios=[s for s in SCENARIOS if s in scenarios],
        tools=[t for t in TOOLS if t in tools or t == BASELINE],
        big_mb=pick("big_mb"),
        memory_files=pick("memory_files"),
        json_path=args.json,
        timeout=args.timeout,
        workdir_base=args.workdir,
        keep=args.keep,
        install_peers=args.install_peers,
        quick=args.quick,
    )
    if config.posts < 1 or config.runs < 1 or config.big_mb < 1 or config.memory_files < 1:
        parser.error("--posts, --runs, --big-mb and --memory-files must be >= 1")
    return config


# --------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------


@dataclass
class RunRecord:
    seconds: float
    returncode: int
    peak_rss_kib: int
    problem: str | None = None
    log_tail: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass
class Cell:
    scenario: str
    rtt_ms: float
    tool: str
    status: str = "ok"  # ok | failed | absent
    runs: list[RunRecord] = field(default_factory=list)
    note: str | None = None

    def add(self, record: RunRecord) -> None:
        self.runs.append(record)
        if not record.ok:
            self.fail(record.problem or "failed")

    def fail(self, note: str) -> None:
        self.status = "failed"
        self.note = self.note or note

    @property
    def median(self) -> float | None:
        if self.status != "ok" or not self.runs:
            return None
        return statistics.median(r.seconds for r in self.runs)


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


def _fmt_seconds(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 100:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s"


def _fmt_ratio(ratio: float) -> str:
    if ratio >= 10:
        return f"{TIMES}{ratio:.0f}"
    if ratio >= 1:
        return f"{TIMES}{ratio:.1f}"
    return f"{TIMES}{ratio:.2f}"


def _fmt_mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


# --------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------


class Bench:
    """Holds the work directory, the sshd, the results; runs the scenarios."""

    def __init__(self, config: Config, work: Path) -> None:
        self.cfg = config
        self.work = work
        self.started = time.monotonic()
        self.site = work / "site"
        self.big = work / "big"
        self.snapshots = work / "snapshots"
        self.scratch = work / "scratch"
        self.logs = work / "logs"
        home = work / "home"
        for directory in (self.snapshots, self.scratch, self.logs, home):
            directory.mkdir(parents=True)
        self.env = _base_env(home)
        self.tools = [TOOLS[name] for name in config.tools]
        self.available = {t.name: t.executable() is not None for t in self.tools}
        self.versions = {t.program: tool_version(t.program) for t in self.tools}
        self.cells: dict[tuple[str, float, str], Cell] = {}
        self.memory: list[MemoryResult] = []
        self.commands: dict[str, str] = {}
        self.site_stats: TreeStats | None = None
        self.snapshotted: set[str] = set()
        self._sshd: SshdInfo | None = None
        self._counter = 0

    # ---- plumbing ---------------------------------------------------------

    def log(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    @property
    def sshd(self) -> SshdInfo:
        if self._sshd is None:
            raise RuntimeError("sshd is not running")
        return self._sshd

    @property
    def web_root(self) -> Path:
        return self.sshd.web_root

    def loopback(self) -> Endpoint:
        info = self.sshd
        return Endpoint(info.host, info.port, info.user, info.password, info.known_hosts)

    @contextmanager
    def endpoint(self, rtt_ms: float) -> Iterator[Endpoint]:
        """sshd directly for 0 ms, else a latency proxy in front of it (own process)."""
        if rtt_ms == 0:
            yield self.loopback()
            return
        info = self.sshd
        proxy_log = self.logs / f"proxy-{rtt_ms:g}ms.log"
        with proxy_log.open("wb") as err:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.proxy",
                    "--target-port",
                    str(info.port),
                    "--rtt-ms",
                    str(rtt_ms),
                ],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.isdigit():
                raise RuntimeError(f"latency proxy did not start: {tail(proxy_log)}")
            port = int(line)
            known_hosts = self.work / f"known_hosts-{port}"
            known_hosts.write_text(
                info.known_hosts.read_text().replace(
                    f"[{info.host}]:{info.port} ", f"[{info.host}]:{port} "
                )
            )
            self.log(f"latency proxy: 127.0.0.1:{port} -> {info.port}, +{rtt_ms:g} ms round trip")
            yield Endpoint(info.host, port, info.user, info.password, known_hosts)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def cell(self, scenario: str, rtt_ms: float, tool: Tool) -> Cell:
        key = (scenario, rtt_ms, tool.name)
        if key not in self.cells:
            cell = Cell(scenario, rtt_ms, tool.name)
            if not self.available[tool.name]:
                cell.status = "absent"
            self.cells[key] = cell
        return self.cells[key]

    def invoke(self, tool: Tool, endpoint: Endpoint, source: Path, label: str) -> RunRecord:
        """Run *tool* once (timed), then compare the server's tree with *source*."""
        scratch = self.scratch / tool.name
        scratch.mkdir(exist_ok=True)
        command = tool.build(endpoint, source, scratch)
        self.commands.setdefault(tool.name, command.display())
        self._counter += 1
        log = self.logs / f"{self._counter:04d}-{label}.log"
        measured = run_measured(
            command.argv, self.env | command.env, log, self.cfg.timeout, cwd=scratch
        )
        problem: str | None = None
        log_tail = tail(log)
        last = log_tail.splitlines()[-1] if log_tail else "(no output)"
        if measured.timed_out:
            problem = f"timed out after {self.cfg.timeout:g} s: {last}"
        elif measured.returncode != 0:
            problem = f"exit code {measured.returncode}: {last}"
        else:
            diff = compare_trees(source, self.web_root)
            if not diff.identical:
                problem = f"server tree differs from the source: {diff.describe()}"
        return RunRecord(
            measured.seconds,
            measured.returncode,
            measured.peak_rss_kib,
            problem,
            log_tail if problem else None,
        )

    def snapshot(self, tool: Tool) -> None:
        target = self.snapshots / tool.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        copy_tree(self.web_root, target)
        self.snapshotted.add(tool.name)

    def restore(self, tool: Tool) -> None:
        empty_directory(self.web_root)
        copy_tree(self.snapshots / tool.name, self.web_root)

    def ensure_snapshot(self, tool: Tool) -> str | None:
        """The server state after *tool*'s own upload of the site; None, or what went wrong."""
        if tool.name in self.snapshotted:
            return None
        self.log(f"setup: untimed upload of the site with {tool.name} (loopback)")
        empty_directory(self.web_root)
        record = self.invoke(tool, self.loopback(), self.site, f"setup-{tool.name}")
        if not record.ok:
            return record.problem
        self.snapshot(tool)
        return None

    @contextmanager
    def source_for(self, scenario: str) -> Iterator[Path]:
        """The site as the tools should see it: for "rebuild", a rebuilt copy at the same path."""
        if scenario != "rebuild":
            yield self.site
            return
        pristine = self.work / "site.pristine"
        self.site.rename(pristine)
        try:
            self.site.mkdir()
            copy_tree(pristine, self.site)
            stats = hugo_rebuild(self.site, mtime=int(time.time()) + 2)
            self.log(
                f"rebuild: mtime of all {stats.touched} files touched, "
                f"{stats.same_size} changed at the same size, {stats.resized} resized"
            )
            yield self.site
        finally:
            if self.site.exists():
                shutil.rmtree(self.site)
            pristine.rename(self.site)

    # ---- scenarios --------------------------------------------------------

    def run_scenario(self, scenario: str, rtt_ms: float, endpoint: Endpoint) -> None:
        tools = [t for t in self.tools if scenario in t.scenarios]
        cells = {t.name: self.cell(scenario, rtt_ms, t) for t in tools}
        runnable = [t for t in tools if cells[t.name].status == "ok"]
        for tool in [t for t in tools if cells[t.name].status == "absent"]:
            self.log(f"{scenario} {rtt_ms:g} ms: {tool.name} absent ({tool.program} not found)")
        if scenario in ("nochange", "rebuild"):
            for tool in list(runnable):
                problem = self.ensure_snapshot(tool)
                if problem is not None:
                    cells[tool.name].fail(f"setup upload failed: {problem}")
                    runnable.remove(tool)
        source_dir = self.big if scenario == "bigfile" else None
        for run in range(1, self.cfg.runs + 1):
            with self.source_for(scenario) if source_dir is None else _just(source_dir) as src:
                for tool in list(runnable):
                    if scenario in ("initial", "bigfile"):
                        empty_directory(self.web_root)
                    else:
                        self.restore(tool)
                    label = f"{scenario}-{rtt_ms:g}ms-{tool.name}-run{run}"
                    record = self.invoke(tool, endpoint, src, label)
                    cells[tool.name].add(record)
                    status = "ok" if record.ok else "FAILED"
                    self.log(
                        f"{scenario} {rtt_ms:g} ms run {run}/{self.cfg.runs}: {tool.name:<11} "
                        f"{_fmt_seconds(record.seconds):>9}  rss {_fmt_mib(record.peak_rss_kib)}"
                        f"  {status}"
                    )
                    if not record.ok:
                        self.log(f"  {record.problem}")
                        if record.log_tail:
                            print(record.log_tail, file=sys.stderr)
                        runnable.remove(tool)  # one failure fails the cell; save the time
                    elif scenario == "initial" and tool.name not in self.snapshotted:
                        self.snapshot(tool)

    def run_memory(self) -> None:
        tool = TOOLS[BASELINE]
        endpoint = self.loopback()
        for count in self.cfg.memory_sizes:
            tree = self.work / f"many-{count}"
            self.log(f"memory: generating {count:,} small files")
            stats = make_many_files(tree, count)
            empty_directory(self.web_root)
            record = self.invoke(tool, endpoint, tree, f"memory-{count}")
            self.memory.append(
                MemoryResult(
                    files=count,
                    bytes=stats.bytes,
                    seconds=record.seconds,
                    peak_rss_kib=record.peak_rss_kib,
                    problem=record.problem,
                )
            )
            self.log(
                f"memory: {count:,} files: {_fmt_seconds(record.seconds)}, "
                f"peak RSS {_fmt_mib(record.peak_rss_kib)}  {'ok' if record.ok else 'FAILED'}"
            )
            if not record.ok:
                self.log(f"  {record.problem}")
            shutil.rmtree(tree)
            empty_directory(self.web_root)

    def run(self) -> None:
        cfg = self.cfg
        site_scenarios = [s for s in cfg.scenarios if s in ("initial", "nochange", "rebuild")]
        if site_scenarios:
            self.log(f"generating the site: {cfg.posts} posts")
            self.site_stats = generate_site(self.site, cfg.posts)
            st = self.site_stats
            self.log(f"site: {st.files:,} files in {st.dirs:,} dirs, {st.bytes / 1e6:.1f} MB")
        if "bigfile" in cfg.scenarios:
            self.log(f"generating the big file: {cfg.big_mb} MiB")
            make_big_file(self.big / "big.bin", cfg.big_mb)
        with running_sshd(self.work / "sshd") as info:
            self._sshd = info
            self.log(f"sshd: 127.0.0.1:{info.port}, chroot {info.chroot}")
            for rtt in cfg.rtts_ms if site_scenarios else []:
                with self.endpoint(rtt) as endpoint:
                    for scenario in site_scenarios:
                        self.run_scenario(scenario, rtt, endpoint)
            if "bigfile" in cfg.scenarios:
                self.run_scenario("bigfile", 0.0, self.loopback())
            if "memory" in cfg.scenarios:
                self.run_memory()
            empty_directory(info.web_root)
            self._sshd = None

    # ---- reporting --------------------------------------------------------

    def rows(self) -> list[tuple[str, float]]:
        rows = []
        for scenario in self.cfg.scenarios:
            if scenario == "memory":
                continue
            for rtt in [0.0] if scenario == "bigfile" else self.cfg.rtts_ms:
                rows.append((scenario, rtt))
        return rows

    def ratio(self, cell: Cell) -> float | None:
        base = self.cells.get((cell.scenario, cell.rtt_ms, BASELINE))
        if base is None or base.median is None or cell.median is None or base.median == 0:
            return None
        return cell.median / base.median

    def cell_text(self, scenario: str, rtt: float, tool: Tool) -> str:
        cell = self.cells.get((scenario, rtt, tool.name))
        if cell is None:
            return "—"
        if cell.status == "absent":
            return "absent"
        median = cell.median
        if median is None:
            return "FAILED"
        ratio = self.ratio(cell)
        if tool.name == BASELINE or ratio is None:
            return _fmt_seconds(median)
        return f"{_fmt_seconds(median)} ({_fmt_ratio(ratio)})"

    def table(self) -> str:
        cfg = self.cfg
        used = {cell.tool for cell in self.cells.values()}
        tools = [t for t in self.tools if t.name in used]
        header = ["scenario", "RTT", *(t.label for t in tools)]
        body = [
            [scenario, f"{rtt:g} ms", *(self.cell_text(scenario, rtt, t) for t in tools)]
            for scenario, rtt in self.rows()
        ]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out: list[str] = []
        if self.site_stats is not None:
            st = self.site_stats
            out.append(
                f"site: {cfg.posts:,} posts = {st.files:,} files in {st.dirs:,} dirs, "
                f"{st.bytes / 1e6:.1f} MB"
                + (f"; big file {cfg.big_mb:,} MiB" if "bigfile" in cfg.scenarios else "")
            )
        elif "bigfile" in cfg.scenarios:
            out.append(f"big file {cfg.big_mb:,} MiB")
        if body:
            out.append(
                f"median of {cfg.runs} run(s); ({TIMES}r) = time / sftpmirror's time in this run"
            )
            out.append("")
            out.append(line(header))
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
            out.extend(line(row) for row in body)
            out.append("")
            width = max(len(t.label) for t in tools)
            out.extend(f"{t.label:<{width}} = {t.description}" for t in tools)
            out.append(
                "FAILED = non-zero exit, timeout or server tree not byte-identical; "
                "absent = not installed; — = not applicable."
            )
        if self.memory:
            out.append("")
            out.append("memory: sftpmirror push to an empty remote, loopback, small files")
            for m in self.memory:
                if m.problem is not None:
                    out.append(f"  {m.files:>9,} files: FAILED")
                    continue
                out.append(
                    f"  {m.files:>9,} files ({m.bytes / 1e6:.1f} MB): {_fmt_seconds(m.seconds)}, "
                    f"{m.seconds_per_1000:.2f} s per 1,000 files, "
                    f"peak RSS {_fmt_mib(m.peak_rss_kib)}"
                )
        failures = [c for c in self.cells.values() if c.status == "failed"]
        if failures or any(m.problem for m in self.memory):
            out.append("")
            out.append("failures:")
            for c in failures:
                first = (c.note or "").splitlines()[0] if c.note else ""
                out.append(f"  {c.scenario} {c.rtt_ms:g} ms {c.tool}: {first}")
            for m in self.memory:
                if m.problem:
                    out.append(f"  memory {m.files} files: {m.problem.splitlines()[0]}")
        return "\n".join(out)

    def to_json(self, table: str) -> dict[str, object]:
        cfg = self.cfg
        config = asdict(cfg)
        config["json_path"] = str(cfg.json_path)
        config["workdir_base"] = str(cfg.workdir_base)
        cells = []
        for cell in self.cells.values():
            cells.append(
                {
                    "scenario": cell.scenario,
                    "rtt_ms": cell.rtt_ms,
                    "tool": cell.tool,
                    "status": cell.status,
                    "median_s": cell.median,
                    "ratio_to_sftpmirror": self.ratio(cell),
                    "note": cell.note,
                    "runs": [asdict(r) for r in cell.runs],
                }
            )
        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
            "config": config,
            "environment": {
                "python": platform.python_version(),
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "versions": self.versions,
            },
            "site": asdict(self.site_stats) if self.site_stats else None,
            "commands": self.commands,
            "cells": cells,
            "memory": [asdict(m) | {"seconds_per_1000": m.seconds_per_1000} for m in self.memory],
            "table": table,
        }

    @property
    def failed(self) -> bool:
        return any(c.status == "failed" for c in self.cells.values()) or any(
            m.problem for m in self.memory
        )


@contextmanager
def _just(path: Path) -> Iterator[Path]:
    yield path


def _base_env(home: Path) -> dict[str, str]:
    """The environment every tool starts from: no agent, no stray credentials, an empty HOME."""
    dropped = ("SSH_", "LFTP", "RCLONE_", "SFTPMIRROR_", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k != "DISPLAY"}
    env["HOME"] = str(home)
    return env


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "benchmarks.run: needs root (it starts OpenSSH sshd with a chrooted account)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    if config.install_peers:
        install_peers([TOOLS[name].program for name in config.tools])
    config.workdir_base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sftpmirror-bench-", dir=config.workdir_base))
    try:
        bench = Bench(config, work)
        for program, version in bench.versions.items():
            bench.log(f"{program}: {version}")
        bench.run()
        table = bench.table()
        config.json_path.parent.mkdir(parents=True, exist_ok=True)
        config.json_path.write_text(json.dumps(bench.to_json(table), indent=2) + "\n")
        bench.log(f"total {time.monotonic() - bench.started:.0f} s; JSON: {config.json_path}")
        print(table)
        return 1 if bench.failed else 0
    finally:
        if config.keep:
            print(f"benchmarks.run: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
