"""What a run leaves for Python's cyclic collector: nothing big. A scan pauses the collector
(engine/mirror.py), so whatever its work puts in a reference cycle stays in memory until the
run ends, and at 100,000 files that was 22 MiB of directory listings. Counted here against the
real OpenSSH, never timed or weighed."""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator
from pathlib import Path

import asyncssh

from tests.conftest import Target
from tests.e2e.helpers import run_cli

DIRECTORIES = 12


def _frames(error: BaseException) -> Iterator[str]:
    tb = error.__traceback__
    while tb is not None:
        yield tb.tb_frame.f_code.co_name
        tb = tb.tb_next


def test_a_listing_leaves_no_cycle_holding_its_names(openssh: Target, tmp_path: Path) -> None:
    site = tmp_path / "public"
    for n in range(DIRECTORIES):
        (site / f"d{n}").mkdir(parents=True)
        (site / f"d{n}" / "index.html").write_text(f"{n}\n")
    first = run_cli("push", str(site), openssh.url(), target=openssh)
    assert first.exit_code == 0, first.output
    # The collector off for the whole run (the run then leaves it so): every cycle the run
    # made is still there afterwards, and gc.collect() with DEBUG_SAVEALL hands it over.
    gc.collect()
    gc.disable()
    try:
        again = run_cli("push", str(site), openssh.url(), target=openssh)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
    finally:
        gc.set_debug(0)
        gc.enable()
    garbage, gc.garbage[:] = list(gc.garbage), []
    assert again.exit_code == 0, again.output
    # asyncssh raises a listing's end (SSH_FX_EOF) from a local: the exception, its
    # traceback and that frame make a cycle, and the listing's frame, on the traceback,
    # holds the names read so far.
    held = [
        e for e in garbage
        if isinstance(e, asyncssh.SFTPEOFError) and "list_directory" in _frames(e)
    ]  # fmt: skip
    assert held == []
    listings = [
        f for f in garbage
        if isinstance(f, types.FrameType) and f.f_code.co_name == "list_directory"
    ]  # fmt: skip
    assert listings == []
