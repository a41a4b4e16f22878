"""Benchmark sftpmirror against lftp, rclone and OpenSSH sftp on a real, chrooted OpenSSH sshd.

Run from the repository root, as root::

    python -m benchmarks.run --quick          # tiny sizes, a few minutes
    python -m benchmarks.run                  # the full benchmark (long)

Progress goes to stderr, the tables (Markdown) to stdout, everything to a JSON
file (default ``benchmarks/results/latest.json``).  See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from tests.openssh import SshdInfo, running_sshd

from benchmarks.measure import run_measured, tail
from benchmarks.peers import (
    PULL_SCENARIOS,
    SCALING_TOOLS,
    TOOLS,
    Endpoint,
    Tool,
    find_program,
    install_peers,
    sftpmirror_env,
    sftpmirror_module,
    sftpmirror_python,
    tool_version,
)
from benchmarks.results import (
    TIMES,
    Cell,
    MemoryResult,
    RunRecord,
    StartupResult,
    fmt_mib,
    fmt_ratio,
    fmt_seconds,
    markdown_table,
)
from benchmarks.sitegen import (
    TreeStats,
    generate_site,
    hugo_rebuild,
    make_big_file,
    make_many_files,
)
from benchmarks.targets import Verdict, evaluate, targets_table
from benchmarks.verify import compare_trees, copy_tree, empty_directory

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "latest.json"
#: The site scenarios, in the order they run at each RTT (pushes, then pulls).
SITE_SCENARIOS = (
    "initial",
    "nochange",
    "nochange-cold",
    "rebuild",
    "pull-initial",
    "pull-nochange",
)
SCENARIOS = (*SITE_SCENARIOS, "bigfile", "memory", "scaling", "startup")
BASELINE = "sftpmirror"
#: The scaling table's operations, in the order they run for each tree size and RTT.
SCALE_OPS = ("push", "nochange", "pull")
SCALE_OP_LABELS = {"push": "push (initial)", "nochange": "no change", "pull": "pull (initial)"}
#: sftpmirror's hash cache keeps only files whose mtime and ctime are this much older than
#: the start of their hashing (its RACY_MARGIN_NS, 2 s, plus a margin): a tree just made
#: is left to settle this long before its first push, so that push can fill the cache.
_SETTLE_S = 2.5

_DEFAULTS = {
    "posts": 2000,
    "runs": 3,
    "big_mb": 1024,
    "memory_files": 100_000,
    "scale_budget": 900.0,
    "scale_runs": 1,
    "startup_runs": 20,
}
_QUICK = {
    "posts": 20,
    "runs": 1,
    "big_mb": 20,
    "memory_files": 2000,
    "scale_budget": 120.0,
    "scale_runs": 1,
    "startup_runs": 20,
}
_DEFAULT_RTT, _QUICK_RTT = "20", "5"
_DEFAULT_SCALE_FILES, _QUICK_SCALE_FILES = "1000,10000,100000", "1000,2000"
_DEFAULT_SCALE_RTT, _QUICK_SCALE_RTT = "0,20", "0,5"


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
    scale_files: list[int]
    scale_rtts_ms: list[float]
    scale_budget: float
    scale_runs: int
    startup_runs: int
    targets: bool
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


def _numbers(parser: argparse.ArgumentParser, flag: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in _csv(text)]
    except ValueError:
        parser.error(f"{flag}: not a comma-separated list of numbers: {text!r}")
    if not values or any(v < 0 or not math.isfinite(v) for v in values):
        parser.error(f"{flag}: give one or more numbers >= 0")
    return values


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
    parser.add_argument(
        "--scale-files",
        help="scaling table: tree sizes, comma-separated; N files in N/100 directories "
        f"(default {_DEFAULT_SCALE_FILES}, with --quick {_QUICK_SCALE_FILES})",
    )
    parser.add_argument(
        "--scale-rtt-ms",
        help="scaling table: round trips in ms, comma-separated, exactly these "
        f"(default {_DEFAULT_SCALE_RTT}, with --quick {_QUICK_SCALE_RTT})",
    )
    parser.add_argument(
        "--scale-budget",
        type=float,
        help="scaling table: seconds a peer's cell may take; one predicted (from the smaller "
        "trees) or found to take longer is 'skipped: over budget' (default 900; --quick 120)",
    )
    parser.add_argument("--scale-runs", type=int, help="scaling table: runs per cell (default 1)")
    parser.add_argument(
        "--startup-runs",
        type=int,
        help="startup: timed runs of each --version command (default 20)",
    )
    parser.add_argument(
        "--targets",
        action="store_true",
        help="after the tables, print issue 19's targets with this run's figures: met or missed",
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
        "2000 memory files, scaling at 1000,2000 files and 0,5 ms with a 120 s budget "
        "(explicit flags still win)",
    )
    args = parser.parse_args(argv)

    preset = _QUICK if args.quick else _DEFAULTS

    def pick(name: str) -> int:
        value = getattr(args, name)
        return int(preset[name] if value is None else value)

    rtt_text = args.rtt_ms or (_QUICK_RTT if args.quick else _DEFAULT_RTT)
    rtts = set(_numbers(parser, "--rtt-ms", rtt_text))
    scale_files_text = args.scale_files or (
        _QUICK_SCALE_FILES if args.quick else _DEFAULT_SCALE_FILES
    )
    scale_files = _numbers(parser, "--scale-files", scale_files_text)
    if any(n < 1 or n != int(n) for n in scale_files):
        parser.error("--scale-files: give whole numbers >= 1")
    scale_rtt_text = args.scale_rtt_ms or (_QUICK_SCALE_RTT if args.quick else _DEFAULT_SCALE_RTT)
    scale_rtts = _numbers(parser, "--scale-rtt-ms", scale_rtt_text)
    budget = float(preset["scale_budget"] if args.scale_budget is None else args.scale_budget)
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
        scale_files=sorted({int(n) for n in scale_files}),
        scale_rtts_ms=sorted(set(scale_rtts)),
        scale_budget=budget,
        scale_runs=pick("scale_runs"),
        startup_runs=pick("startup_runs"),
        targets=args.targets,
        json_path=args.json,
        timeout=args.timeout,
        workdir_base=args.workdir,
        keep=args.keep,
        install_peers=args.install_peers,
        quick=args.quick,
    )
    counts = (config.posts, config.runs, config.big_mb, config.memory_files)
    if min(counts) < 1 or config.scale_runs < 1 or config.startup_runs < 1:
        parser.error(
            "--posts, --runs, --big-mb, --memory-files, --scale-runs and --startup-runs "
            "must be >= 1"
        )
    if config.scale_budget <= 0:
        parser.error("--scale-budget must be > 0")
    return config


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
        self.pulled = work / "pulled"
        self.cache = work / "hashcache"  # SFTPMIRROR_CACHE_DIR of every sftpmirror run
        home = work / "home"
        for directory in (self.snapshots, self.scratch, self.logs, self.pulled, home):
            directory.mkdir(parents=True)
        self.cache.mkdir(mode=0o700)
        self.env = _base_env(home)
        self.tools = [TOOLS[name] for name in config.tools]
        self.available = {t.name: t.executable() is not None for t in self.tools}
        self.versions = {t.program: tool_version(t.program) for t in self.tools}
        self.module = sftpmirror_module(self.env | sftpmirror_env())
        self.cells: dict[tuple[str, float, str], Cell] = {}
        self.scale_cells: dict[tuple[int, float, str, str], Cell] = {}
        self.scale_stats: dict[int, TreeStats] = {}
        self.memory: list[MemoryResult] = []
        self.startup: list[StartupResult] = []
        self.commands: dict[str, str] = {}
        self.site_stats: TreeStats | None = None
        self.snapshotted: set[str] = set()
        self.pull_ready: set[str] = set()
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
        with proxy_log.open("ab") as err:
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

    def pull_dir(self, tool: Tool, prefix: str = "") -> Path:
        """Where *tool* pulls to: its own directory, kept between its runs (its local state)."""
        return self.pulled / f"{prefix}{tool.name}"

    def invoke(
        self,
        tool: Tool,
        endpoint: Endpoint,
        local: Path,
        label: str,
        *,
        pull: bool = False,
        expected: Path | None = None,
        timeout: float | None = None,
    ) -> RunRecord:
        """Run *tool* once (timed): a push of *local*, or with *pull* a pull into *local*.

        Then compare the result (the server's tree after a push, *local* after a pull)
        byte for byte with *expected* (default: *local*)."""
        scratch = self.scratch / tool.name
        scratch.mkdir(exist_ok=True)
        builder = tool.pull if pull else tool.build
        if builder is None:
            raise ValueError(f"{tool.name} has no pull")
        command = builder(endpoint, local, scratch)
        if tool.hash_cache:
            command = command.with_env({"SFTPMIRROR_CACHE_DIR": str(self.cache)})
        self.commands.setdefault(f"{tool.name} pull" if pull else tool.name, command.display())
        self._counter += 1
        log = self.logs / f"{self._counter:04d}-{label}.log"
        limit = self.cfg.timeout if timeout is None else timeout
        measured = run_measured(command.argv, self.env | command.env, log, limit, cwd=scratch)
        problem: str | None = None
        log_tail = tail(log)
        last = log_tail.splitlines()[-1] if log_tail else "(no output)"
        if measured.timed_out:
            problem = f"timed out after {limit:g} s: {last}"
        elif measured.returncode != 0:
            problem = f"exit code {measured.returncode}: {last}"
        else:
            want = local if expected is None else expected
            got = local if pull else self.web_root
            diff = compare_trees(want, got)
            if not diff.identical:
                where = "local tree" if pull else "server tree"
                problem = f"{where} differs from the source: {diff.describe()}"
        return RunRecord(
            measured.seconds,
            measured.returncode,
            measured.peak_rss_kib,
            problem,
            log_tail if problem else None,
            timed_out=measured.timed_out,
        )

    # ---- state: the server's tree, the pulled trees, sftpmirror's hash cache ----

    def reset_cache(self) -> None:
        """An empty hash cache directory: the next sftpmirror run hashes from cold."""
        shutil.rmtree(self.cache, ignore_errors=True)
        self.cache.mkdir(mode=0o700)

    def save_cache(self, name: str) -> int:
        """Keep the hash cache as it is now under *name*; its size in bytes."""
        target = self.snapshots / f"cache-{name}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(mode=0o700)
        copy_tree(self.cache, target)
        return sum(f.stat().st_size for f in target.iterdir() if f.is_file())

    def load_cache(self, name: str) -> None:
        """The hash cache as ``save_cache(name)`` kept it (empty if nothing was kept)."""
        self.reset_cache()
        kept = self.snapshots / f"cache-{name}"
        if kept.is_dir():
            copy_tree(kept, self.cache)

    def seed_server(self, tree: Path) -> None:
        """``public_html`` := a copy of *tree* (``cp -a``: its sizes and mtimes) owned by the
        account, as an upload by some other tool would leave it: no sftpmirror manifest."""
        empty_directory(self.web_root)
        copy_tree(tree, self.web_root)
        entry = pwd.getpwnam(self.sshd.user)
        owner = f"{entry.pw_uid}:{entry.pw_gid}"
        subprocess.run(["chown", "-R", owner, str(self.web_root)], check=True)

    def snapshot(self, tool: Tool, name: str | None = None) -> None:
        """Keep the server's tree, and the tool's hash cache, as *tool*'s upload left them."""
        name = name or tool.name
        target = self.snapshots / name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir()
        copy_tree(self.web_root, target)
        if tool.hash_cache:
            size = self.save_cache(name)
            self.log(f"state {name}: server tree and hash cache ({size:,} bytes) kept")
        self.snapshotted.add(name)

    def restore(self, tool: Tool, name: str | None = None, *, warm: bool = True) -> None:
        """The server's tree as *tool*'s upload left it; its hash cache too (*warm*) or empty."""
        name = name or tool.name
        empty_directory(self.web_root)
        copy_tree(self.snapshots / name, self.web_root)
        if tool.hash_cache:
            if warm:
                self.load_cache(name)
            else:
                self.reset_cache()

    def ensure_snapshot(self, tool: Tool) -> str | None:
        """The server state after *tool*'s own upload of the site; None, or what went wrong."""
        if tool.name in self.snapshotted:
            return None
        self.log(f"setup: untimed upload of the site with {tool.name} (loopback)")
        empty_directory(self.web_root)
        if tool.hash_cache:
            self.reset_cache()
        record = self.invoke(tool, self.loopback(), self.site, f"setup-{tool.name}")
        if not record.ok:
            return record.problem
        self.snapshot(tool)
        return None

    def ensure_pulled(self, tool: Tool) -> str | None:
        """*tool*'s own pull of the site in its pull directory; None, or what went wrong."""
        if tool.name in self.pull_ready:
            return None
        self.log(f"setup: untimed pull of the site with {tool.name} (loopback)")
        self.prepare("pull-initial", tool)
        record = self.invoke(
            tool,
            self.loopback(),
            self.pull_dir(tool),
            f"setup-pull-{tool.name}",
            pull=True,
            expected=self.site,
        )
        if not record.ok:
            return record.problem
        self.after("pull-initial", tool)
        return None

    def prepare(self, scenario: str, tool: Tool) -> None:
        """The server, the local side and the hash cache as *scenario* starts for *tool*.

        Cold (empty cache): initial, nochange-cold, bigfile, pull-initial. Warm (the cache
        the tool's own upload or pull left): nochange, rebuild, pull-nochange."""
        if scenario in ("initial", "bigfile"):
            empty_directory(self.web_root)
            if tool.hash_cache:
                self.reset_cache()
        elif scenario in ("nochange", "rebuild"):
            self.restore(tool, warm=True)
        elif scenario == "nochange-cold":
            self.restore(tool, warm=False)
        elif scenario == "pull-initial":
            target = self.pull_dir(tool)
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            self.pull_ready.discard(tool.name)
            if tool.hash_cache:
                self.reset_cache()
        elif scenario == "pull-nochange":
            if tool.hash_cache:
                self.load_cache(f"{tool.name}-pull")
        else:
            raise ValueError(f"no starting state for scenario {scenario!r}")

    def after(self, scenario: str, tool: Tool) -> None:
        """Keep what a successful run leaves for the scenarios that start from it."""
        if scenario == "initial" and tool.name not in self.snapshotted:
            self.snapshot(tool)
        elif scenario == "pull-initial":
            self.pull_ready.add(tool.name)
            if tool.hash_cache:
                self.save_cache(f"{tool.name}-pull")

    def settle(self, made: float) -> None:
        """Wait until files made at *made* (time.time()) are old enough for the hash cache."""
        wait = made + _SETTLE_S - time.time()
        if wait > 0:
            time.sleep(wait)

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
        pull = scenario in PULL_SCENARIOS
        if pull:
            self.seed_server(self.site)
        if scenario in ("nochange", "nochange-cold", "rebuild"):
            for tool in list(runnable):
                problem = self.ensure_snapshot(tool)
                if problem is not None:
                    cells[tool.name].fail(f"setup upload failed: {problem}")
                    runnable.remove(tool)
        if scenario == "pull-nochange":
            for tool in list(runnable):
                problem = self.ensure_pulled(tool)
                if problem is not None:
                    cells[tool.name].fail(f"setup pull failed: {problem}")
                    runnable.remove(tool)
        source_dir = self.big if scenario == "bigfile" else None
        for run in range(1, self.cfg.runs + 1):
            with self.source_for(scenario) if source_dir is None else _just(source_dir) as src:
                for tool in list(runnable):
                    self.prepare(scenario, tool)
                    label = f"{scenario}-{rtt_ms:g}ms-{tool.name}-run{run}"
                    if pull:
                        target = self.pull_dir(tool)
                        record = self.invoke(tool, endpoint, target, label, pull=True, expected=src)
                    else:
                        record = self.invoke(tool, endpoint, src, label)
                    cells[tool.name].add(record)
                    status = "ok" if record.ok else "FAILED"
                    self.log(
                        f"{scenario} {rtt_ms:g} ms run {run}/{self.cfg.runs}: {tool.name:<11} "
                        f"{fmt_seconds(record.seconds):>9}  rss {fmt_mib(record.peak_rss_kib)}"
                        f"  {status}"
                    )
                    if not record.ok:
                        self.log(f"  {record.problem}")
                        if record.log_tail:
                            print(record.log_tail, file=sys.stderr)
                        runnable.remove(tool)  # one failure fails the cell; save the time
                    else:
                        self.after(scenario, tool)

    def run_memory(self) -> None:
        tool = TOOLS[BASELINE]
        endpoint = self.loopback()
        for count in self.cfg.memory_sizes:
            tree = self.work / f"many-{count}"
            self.log(f"memory: generating {count:,} small files")
            stats = make_many_files(tree, count)
            empty_directory(self.web_root)
            self.reset_cache()
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
                f"memory: {count:,} files: {fmt_seconds(record.seconds)}, "
                f"peak RSS {fmt_mib(record.peak_rss_kib)}  {'ok' if record.ok else 'FAILED'}"
            )
            if not record.ok:
                self.log(f"  {record.problem}")
            shutil.rmtree(tree)
            empty_directory(self.web_root)

    # ---- the scaling table ------------------------------------------------

    def scale_cell(self, files: int, rtt_ms: float, op: str, tool: Tool) -> Cell:
        key = (files, rtt_ms, op, tool.name)
        if key not in self.scale_cells:
            cell = Cell(op, rtt_ms, tool.name, files=files)
            if not self.available[tool.name]:
                cell.status = "absent"
            self.scale_cells[key] = cell
        return self.scale_cells[key]

    def over_budget(self, files: int, rtt_ms: float, op: str, tool: Tool) -> str | None:
        """Why *tool* cannot do *op* on *files* files within the budget, judged from its cells
        on smaller trees (None: it may, or there is nothing to judge from).

        Over budget on a smaller tree means over budget here too. With two smaller trees
        measured, the line through the two largest is extended to *files*; with one, the
        time per file is (an overestimate: it puts the fixed costs, such as rclone -T32's
        many logins, on every file), so then only twice the budget counts. A cell that runs
        is still killed at the budget."""
        budget = self.cfg.scale_budget
        smaller = sorted(
            (
                (n, c)
                for (n, r, o, t), c in self.scale_cells.items()
                if n < files and r == rtt_ms and o == op and t == tool.name
            ),
            key=lambda item: item[0],
        )
        if not smaller:
            return None
        if smaller[-1][1].status == "skipped":
            return "over budget on a smaller tree"
        points = [(n, c.median) for n, c in smaller if c.median is not None]
        if len(points) >= 2:
            (n1, t1), (n2, t2) = points[-2:]
            predicted = t2 + max(0.0, (t2 - t1) / (n2 - n1)) * (files - n2)
            limit = budget
        elif points:
            n2, t2 = points[-1]
            predicted, limit = t2 * files / n2, 2 * budget
        else:
            return None
        if predicted <= limit:
            return None
        return f"predicted {fmt_seconds(predicted)} from the smaller trees"

    def run_scaling(self) -> None:
        tools = [t for t in self.tools if t.name in SCALING_TOOLS]
        for files in self.cfg.scale_files:
            tree = self.work / f"scale-{files}"
            self.log(f"scaling: generating {files:,} small files, 100 per directory")
            self.scale_stats[files] = make_many_files(tree, files)
            self.settle(time.time())
            for rtt in self.cfg.scale_rtts_ms:
                with self.endpoint(rtt) as endpoint:
                    for op in SCALE_OPS:
                        self.run_scale_op(files, rtt, op, endpoint, tree, tools)
            shutil.rmtree(tree)
            for tool in tools:
                name = f"scale-{files}-{tool.name}"
                shutil.rmtree(self.pull_dir(tool, "scale-"), ignore_errors=True)
                shutil.rmtree(self.snapshots / name, ignore_errors=True)
                shutil.rmtree(self.snapshots / f"cache-{name}", ignore_errors=True)
                self.snapshotted.discard(name)
            empty_directory(self.web_root)

    def run_scale_op(
        self, files: int, rtt_ms: float, op: str, endpoint: Endpoint, tree: Path, tools: list[Tool]
    ) -> None:
        """One row of the scaling table: *op* on the *files*-file *tree* by each tool.

        push: to an empty remote, cache cold.  nochange: sftpmirror over its own push of
        this tree (its manifest; cache warm), a peer over a server-side copy of the tree
        (the sizes and mtimes its upload leaves, all lftp and rclone compare).  pull: into
        an empty directory from a server-side copy of the tree, cache cold."""
        cfg = self.cfg
        budget = cfg.scale_budget
        where = f"scaling {files:,} files {rtt_ms:g} ms {op}"
        cells = {t.name: self.scale_cell(files, rtt_ms, op, t) for t in tools}
        runnable: list[Tool] = []
        for tool in tools:
            cell = cells[tool.name]
            if cell.status == "absent":
                self.log(f"{where}: {tool.name} absent ({tool.program} not found)")
                continue
            why = None if tool.name == BASELINE else self.over_budget(files, rtt_ms, op, tool)
            if why is not None:
                cell.skip(f"over budget ({budget:g} s): {why}")
                self.log(f"{where}: {tool.name} skipped: {cell.note}")
                continue
            runnable.append(tool)
        own = {t.name: f"scale-{files}-{t.name}" for t in tools}
        if op == "nochange":
            for tool in [t for t in runnable if t.name == BASELINE]:
                if own[tool.name] not in self.snapshotted:
                    cells[tool.name].fail("no state to start from: its push of this tree failed")
                    runnable.remove(tool)
        if op == "pull":
            self.seed_server(tree)
        for run in range(1, cfg.scale_runs + 1):
            for tool in list(runnable):
                target = self.pull_dir(tool, "scale-")
                if op == "push":
                    empty_directory(self.web_root)
                    if tool.hash_cache:
                        self.reset_cache()
                elif op == "nochange":
                    if tool.name == BASELINE:
                        self.restore(tool, own[tool.name], warm=True)
                    else:
                        self.seed_server(tree)
                else:
                    shutil.rmtree(target, ignore_errors=True)
                    target.mkdir()
                    if tool.hash_cache:
                        self.reset_cache()
                limit = cfg.timeout if tool.name == BASELINE else min(budget, cfg.timeout)
                record = self.invoke(
                    tool,
                    endpoint,
                    target if op == "pull" else tree,
                    f"scale-{files}-{rtt_ms:g}ms-{op}-{tool.name}-run{run}",
                    pull=op == "pull",
                    expected=tree,
                    timeout=limit,
                )
                cell = cells[tool.name]
                if record.timed_out and tool.name != BASELINE and limit == budget:
                    cell.runs.append(record)
                    cell.skip(f"over budget ({budget:g} s): killed after {budget:g} s")
                    self.log(f"{where} run {run}: {tool.name} skipped: {cell.note}")
                    runnable.remove(tool)
                    continue
                cell.add(record)
                self.log(
                    f"{where} run {run}/{cfg.scale_runs}: {tool.name:<11} "
                    f"{fmt_seconds(record.seconds):>9}  rss {fmt_mib(record.peak_rss_kib)}"
                    f"  {'ok' if record.ok else 'FAILED'}"
                )
                if not record.ok:
                    self.log(f"  {record.problem}")
                    if record.log_tail:
                        print(record.log_tail, file=sys.stderr)
                    runnable.remove(tool)
                elif (
                    op == "push"
                    and tool.name == BASELINE
                    and own[tool.name] not in (self.snapshotted)
                ):
                    self.snapshot(tool, own[tool.name])

    # ---- start-up ---------------------------------------------------------

    def run_startup(self) -> None:
        """``sftpmirror --version`` (console script) and ``python -m sftpmirror --version``:
        one untimed run each (writes the .pyc files), then ``--startup-runs`` interleaved."""
        commands: list[tuple[str, list[str]]] = []
        script = find_program("sftpmirror")
        if script is not None:
            commands.append(("sftpmirror --version", [script, "--version"]))
        python = sftpmirror_python()
        commands.append(
            ("python -m sftpmirror --version", [python, "-m", "sftpmirror", "--version"])
        )
        env = self.env | sftpmirror_env() | {"SFTPMIRROR_CACHE_DIR": str(self.cache)}
        results = [StartupResult(label, shlex.join(argv)) for label, argv in commands]
        runs = self.cfg.startup_runs
        self.log(f"startup: {len(commands)} command(s), {runs} timed runs each")
        for run in range(runs + 1):
            for (label, argv), result in zip(commands, results, strict=True):
                if result.problem is not None:
                    continue
                self._counter += 1
                log = self.logs / f"{self._counter:04d}-startup-{len(result.seconds)}.log"
                measured = run_measured(argv, env, log, 60.0, cwd=self.scratch)
                output = tail(log)
                if measured.timed_out or measured.returncode != 0 or "version" not in output:
                    result.problem = f"exit code {measured.returncode}: {output[-200:]}"
                    self.log(f"startup: {label}: FAILED: {result.problem}")
                elif run > 0:
                    result.seconds.append(measured.seconds)
                    result.peak_rss_kib.append(measured.peak_rss_kib)
        for result in results:
            if result.best is not None and result.median is not None:
                self.log(
                    f"startup: {result.label}: best {fmt_seconds(result.best)}, "
                    f"median {fmt_seconds(result.median)}"
                )
        self.startup = results

    def run(self) -> None:
        cfg = self.cfg
        self.log(f"sftpmirror module (as the tools run it): {self.module}")
        if not Path(self.module).resolve().is_relative_to(REPO_ROOT / "src"):
            self.log(f"warning: that is not this repository's code ({REPO_ROOT / 'src'})")
        if "startup" in cfg.scenarios:
            self.run_startup()
        site_scenarios = [s for s in cfg.scenarios if s in SITE_SCENARIOS]
        made = 0.0
        if site_scenarios:
            self.log(f"generating the site: {cfg.posts} posts")
            self.site_stats = generate_site(self.site, cfg.posts)
            made = time.time()
            st = self.site_stats
            self.log(f"site: {st.files:,} files in {st.dirs:,} dirs, {st.bytes / 1e6:.1f} MB")
        if "bigfile" in cfg.scenarios:
            self.log(f"generating the big file: {cfg.big_mb} MiB")
            make_big_file(self.big / "big.bin", cfg.big_mb)
        needs_sshd = site_scenarios or {"bigfile", "memory", "scaling"} & set(cfg.scenarios)
        if not needs_sshd:
            return
        with running_sshd(self.work / "sshd") as info:
            self._sshd = info
            self.log(f"sshd: 127.0.0.1:{info.port}, chroot {info.chroot}")
            self.settle(made)
            for rtt in cfg.rtts_ms if site_scenarios else []:
                with self.endpoint(rtt) as endpoint:
                    for scenario in site_scenarios:
                        self.run_scenario(scenario, rtt, endpoint)
            if "bigfile" in cfg.scenarios:
                self.run_scenario("bigfile", 0.0, self.loopback())
            if "memory" in cfg.scenarios:
                self.run_memory()
            if "scaling" in cfg.scenarios:
                self.run_scaling()
            empty_directory(info.web_root)
            self._sshd = None

    # ---- reporting --------------------------------------------------------

    def rows(self) -> list[tuple[str, float]]:
        rows: list[tuple[str, float]] = []
        for scenario in self.cfg.scenarios:
            if scenario in SITE_SCENARIOS:
                rows.extend((scenario, rtt) for rtt in self.cfg.rtts_ms)
            elif scenario == "bigfile":
                rows.append((scenario, 0.0))
        return rows

    def ratio(self, cell: Cell) -> float | None:
        if cell.files is None:
            base = self.cells.get((cell.scenario, cell.rtt_ms, BASELINE))
        else:
            base = self.scale_cells.get((cell.files, cell.rtt_ms, cell.scenario, BASELINE))
        if base is None or base.median is None or cell.median is None or base.median == 0:
            return None
        return cell.median / base.median

    def time_text(self, cell: Cell | None) -> str:
        """A cell's median and its ratio to sftpmirror's, or why there is none."""
        if cell is None:
            return "—"
        if cell.status == "absent":
            return "absent"
        if cell.status == "skipped":
            return "skipped: over budget"
        median = cell.median
        if median is None:
            return "FAILED"
        ratio = self.ratio(cell)
        if cell.tool == BASELINE or ratio is None:
            return fmt_seconds(median)
        return f"{fmt_seconds(median)} ({fmt_ratio(ratio)})"

    def tool_notes(self, tools: Sequence[Tool], pulls: bool, pushes: bool = True) -> list[str]:
        notes = []
        for t in tools:
            what = []
            if pushes:
                what.append(f"`{t.description}`")
            if pulls and t.pull_description:
                what.append(f"pull: `{t.pull_description}`")
            notes.append(f"- {t.label}: {'; '.join(what)}")
        return notes

    def site_table(self) -> str | None:
        cfg = self.cfg
        rows = self.rows()
        if not rows:
            return None
        used = {cell.tool for cell in self.cells.values()}
        tools = [t for t in self.tools if t.name in used]
        header = ["scenario", "RTT", *(t.label for t in tools), "sftpmirror RSS"]
        body = []
        for scenario, rtt in rows:
            texts = [self.time_text(self.cells.get((scenario, rtt, t.name))) for t in tools]
            base = self.cells.get((scenario, rtt, BASELINE))
            rss = base.peak_rss_kib if base is not None else None
            body.append([scenario, f"{rtt:g} ms", *texts, fmt_mib(rss) if rss else "—"])
        out = ["### Site: push and pull", ""]
        what = []
        if self.site_stats is not None:
            st = self.site_stats
            what.append(
                f"Site: {cfg.posts:,} posts = {st.files:,} files in {st.dirs:,} directories, "
                f"{st.bytes / 1e6:.1f} MB."
            )
        if "bigfile" in cfg.scenarios:
            what.append(f"Big file: {cfg.big_mb:,} MiB.")
        what.append(
            f"Median of {cfg.runs} run(s); ({TIMES}r) = the tool's time / sftpmirror's time "
            "in this invocation; sftpmirror RSS = its largest peak resident set in that row."
        )
        out += [" ".join(what), "", markdown_table(header, body, right=2), ""]
        pulls = any(s in PULL_SCENARIOS for s, _ in rows)
        pushes = any(s not in PULL_SCENARIOS for s, _ in rows)
        out += self.tool_notes(tools, pulls, pushes)
        out += [
            "",
            "FAILED = non-zero exit, timeout or tree not byte-identical; absent = not "
            "installed; — = not applicable. sftpmirror's hash cache: cold (emptied) for "
            "initial, nochange-cold, bigfile and pull-initial; warm (as the tool's own "
            "upload or pull left it) for nochange, rebuild and pull-nochange. Pulls start "
            "from a copy of the site placed on the server without sftpmirror (no manifest).",
        ]
        return "\n".join(out)

    def scaling_table(self) -> str:
        cfg = self.cfg
        tools = [t for t in self.tools if t.name in SCALING_TOOLS]
        header = ["files", "RTT", "operation"]
        for t in tools:
            header += [t.label, "per 1k", "RSS"]
        body = []
        for files in cfg.scale_files:
            for rtt in cfg.scale_rtts_ms:
                for op in SCALE_OPS:
                    row = [f"{files:,}", f"{rtt:g} ms", SCALE_OP_LABELS[op]]
                    for t in tools:
                        cell = self.scale_cells.get((files, rtt, op, t.name))
                        per = cell.per_1000 if cell is not None else None
                        rss = cell.peak_rss_kib if cell is not None else None
                        row += [
                            self.time_text(cell),
                            fmt_seconds(per) if per is not None else "",
                            fmt_mib(rss) if rss else "",
                        ]
                    body.append(row)
        sizes = ", ".join(
            f"{n:,} files = {st.dirs:,} directories, {st.bytes / 1e6:.1f} MB"
            for n, st in sorted(self.scale_stats.items())
        )
        out = [
            "### Scaling: small files, 100 per directory",
            "",
            f"Trees: {sizes}. push = to an empty remote (sftpmirror's hash cache cold); "
            "no change = the push again with nothing to do (sftpmirror over its own push, "
            "cache warm; rclone over a server-side copy of the tree: the sizes and mtimes "
            "its own upload leaves); pull = into an empty directory from a server-side copy. "
            f"Median of {cfg.scale_runs} run(s); ({TIMES}r) = time / sftpmirror's; per 1k = "
            "median / (files / 1,000); RSS = peak resident set of the tool's main process. "
            f"A peer's cell has {cfg.scale_budget:g} s: one predicted from the smaller trees "
            "to take longer, or killed at the budget, is skipped.",
            "",
            markdown_table(header, body, right=3),
            "",
            *self.tool_notes(tools, pulls=True),
        ]
        skipped = [c for c in self.scale_cells.values() if c.status == "skipped"]
        if skipped:
            out += ["", "Skipped:"]
            out += [
                f"- {c.files:,} files, {c.rtt_ms:g} ms, {SCALE_OP_LABELS[c.scenario]}, "
                f"{TOOLS[c.tool].label}: {c.note}"
                for c in skipped
            ]
        return "\n".join(out)

    def startup_table(self) -> str:
        body = [
            [
                f"`{s.label}`",
                str(len(s.seconds)) if s.problem is None else "FAILED",
                fmt_seconds(s.best) if s.best is not None else "—",
                fmt_seconds(s.median) if s.median is not None else "—",
                fmt_mib(max(s.peak_rss_kib)) if s.peak_rss_kib else "—",
            ]
            for s in self.startup
        ]
        return "\n".join(
            [
                "### Start-up",
                "",
                "Wall time from exec to exit, after one untimed run (which writes the .pyc "
                "files); runs of the commands interleaved.",
                "",
                markdown_table(["command", "runs", "best", "median", "peak RSS"], body, right=1),
            ]
        )

    def memory_table(self) -> str:
        body = []
        for m in self.memory:
            if m.problem is not None:
                body.append([f"{m.files:,}", f"{m.bytes / 1e6:.1f} MB", "FAILED", "", ""])
                continue
            body.append(
                [
                    f"{m.files:,}",
                    f"{m.bytes / 1e6:.1f} MB",
                    fmt_seconds(m.seconds),
                    fmt_seconds(m.seconds_per_1000),
                    fmt_mib(m.peak_rss_kib),
                ]
            )
        header = ["files", "size", "time", "per 1,000 files", "peak RSS"]
        return "\n".join(
            [
                "### Memory: sftpmirror push of small files to an empty remote, loopback",
                "",
                markdown_table(header, body, right=1),
            ]
        )

    def failures(self) -> list[str]:
        lines = []
        for c in [*self.cells.values(), *self.scale_cells.values()]:
            if c.status != "failed":
                continue
            first = (c.note or "").splitlines()[0] if c.note else ""
            size = f" {c.files:,} files" if c.files is not None else ""
            lines.append(f"- {c.scenario}{size} {c.rtt_ms:g} ms {c.tool}: {first}")
        lines += [
            f"- memory {m.files} files: {m.problem.splitlines()[0]}"
            for m in self.memory
            if m.problem
        ]
        lines += [f"- startup {s.label}: {s.problem}" for s in self.startup if s.problem]
        return lines

    def verdicts(self) -> list[Verdict]:
        """Issue 19's targets against this run's figures."""
        return evaluate(
            self.cells,
            self.cfg.posts if self.site_stats is not None else None,
            self.scale_cells,
            self.cfg.scale_rtts_ms,
            self.startup,
        )

    def table(self) -> str:
        sections = []
        site = self.site_table()
        if site is not None:
            sections.append(site)
        if self.scale_cells:
            sections.append(self.scaling_table())
        if self.startup:
            sections.append(self.startup_table())
        if self.memory:
            sections.append(self.memory_table())
        failures = self.failures()
        if failures:
            sections.append("\n".join(["### Failures", "", *failures]))
        if self.cfg.targets:
            sections.append("### Targets (issue 19)\n\n" + targets_table(self.verdicts()))
        return "\n\n".join(sections)

    def to_json(self, table: str) -> dict[str, object]:
        cfg = self.cfg
        config = asdict(cfg)
        config["json_path"] = str(cfg.json_path)
        config["workdir_base"] = str(cfg.workdir_base)

        def cell_json(cell: Cell) -> dict[str, object]:
            return {
                "scenario": cell.scenario,
                "rtt_ms": cell.rtt_ms,
                "tool": cell.tool,
                "files": cell.files,
                "status": cell.status,
                "median_s": cell.median,
                "ratio_to_sftpmirror": self.ratio(cell),
                "per_1000_files_s": cell.per_1000,
                "peak_rss_kib": cell.peak_rss_kib,
                "note": cell.note,
                "runs": [asdict(r) for r in cell.runs],
            }

        return {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": sys.argv,
            "config": config,
            "environment": {
                "python": platform.python_version(),
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "versions": self.versions,
                "sftpmirror_module": self.module,
            },
            "site": asdict(self.site_stats) if self.site_stats else None,
            "scale_trees": {str(n): asdict(st) for n, st in self.scale_stats.items()},
            "commands": self.commands,
            "cells": [cell_json(c) for c in self.cells.values()],
            "scaling": [cell_json(c) for c in self.scale_cells.values()],
            "startup": [asdict(s) | {"best_s": s.best, "median_s": s.median} for s in self.startup],
            "memory": [asdict(m) | {"seconds_per_1000": m.seconds_per_1000} for m in self.memory],
            "targets": [asdict(v) for v in self.verdicts()],
            "table": table,
        }

    @property
    def failed(self) -> bool:
        cells = [*self.cells.values(), *self.scale_cells.values()]
        return (
            any(c.status == "failed" for c in cells)
            or any(m.problem for m in self.memory)
            or any(s.problem for s in self.startup)
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
