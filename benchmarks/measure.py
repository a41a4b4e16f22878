"""Run one child process and measure its wall time and peak RSS.

Peak RSS is the child's ``VmHWM`` (the kernel's high-water mark of its resident
set since its ``exec``), read from ``/proc/PID/status`` every 20 ms while it
runs; only growth in its last few milliseconds could be missed.  It covers the
tool's main process only (not, e.g., the ``ssh`` processes lftp starts).

``ru_maxrss`` from ``wait4``/``getrusage`` would be simpler but is wrong here:
Linux carries the parent's high-water mark over ``fork``+``exec`` into the
child's ``maxrss``, so every child would report at least the harness's own RSS.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Measured", "run_measured", "tail"]


_POLL = 0.02


@dataclass(frozen=True)
class Measured:
    seconds: float
    returncode: int
    peak_rss_kib: int
    timed_out: bool


def _vm_hwm_kib(pid: int) -> int | None:
    """The VmHWM of *pid* in KiB, or None if it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class _PeakRss(threading.Thread):
    """Polls VmHWM of one process until stopped; keeps the largest value seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            hwm = _vm_hwm_kib(self.pid)
            if hwm is not None:
                self.peak = max(self.peak, hwm)
            self._stop_event.wait(_POLL)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def _kill_group(pgid: int, fired: threading.Event) -> None:
    fired.set()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def run_measured(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    cwd: Path | None = None,
) -> Measured:
    """Run *argv* with stdout and stderr to *log*; kill its process group after *timeout* s."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills it and its ssh
        )
        fired = threading.Event()
        timer = threading.Timer(timeout, _kill_group, (proc.pid, fired))
        timer.start()
        poller = _PeakRss(proc.pid)
        poller.start()
        try:
            # Wait for the exit without reaping, so /proc/PID stays this process's
            # until the poller has stopped.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            seconds = time.perf_counter() - start
        except BaseException:
            _kill_group(proc.pid, threading.Event())
            raise
        finally:
            timer.cancel()
            peak = poller.stop()
            proc.wait()
    return Measured(
        seconds=seconds,
        returncode=proc.returncode,
        peak_rss_kib=peak,
        timed_out=fired.is_set(),
    )


def tail(path: Path, lines: int = 12) -> str:
    """The last *lines* lines of a log file (empty string if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
