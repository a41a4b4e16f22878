"""Issue 19: a push that changed nothing reads no file body. The first push hashes what it
uploads on the way (the hash cache, trees/hashcache.py); the second finds every file's stat
unchanged and reads none; an edit that keeps the size and puts the mtime back is still read."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sftpmirror.trees import hashcache
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site, run_cli

HASHED = re.compile(r"local hashes: (\d+) of (\d+) file\(s\) read, (\d+) from the hash cache")


def _hashed(output: str) -> list[tuple[int, int, int]]:
    return [(int(r), int(n), int(c)) for r, n, c in HASHED.findall(output)]


@pytest.fixture
def settled_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The site as built a while ago: past the racy margin (else nothing is cached)."""
    real = hashcache.now_ns
    monkeypatch.setattr(hashcache, "now_ns", lambda: real() + 3 * hashcache.RACY_MARGIN_NS)
    return make_site(tmp_path / "site")


def test_a_second_push_of_an_unchanged_site_reads_no_file(
    target: Target, settled_site: Path, hash_cache_dir: Path
) -> None:
    site = settled_site
    files = sum(1 for p in site.rglob("*") if p.is_file())
    first = run_cli("push", "--debug", str(site), target.url(), target=target)
    assert first.exit_code == 0, first.output
    assert _hashed(first.output) == []  # nothing at the same size: all uploaded, hashed on the way
    assert [p.suffix for p in hash_cache_dir.iterdir()] == [".bin"]  # one cache, not ~/.cache

    again = run_cli("push", "--debug", str(site), target.url(), target=target)
    assert again.exit_code == 0, again.output
    assert "done: nothing to do" in again.output
    assert _hashed(again.output) == [(0, files, files)]

    css = site / "css" / "main.css"
    st = css.stat()
    css.write_bytes(b"body { color: white }\n")  # the same size
    os.utime(css, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: only ctime moved
    edited = run_cli("push", "--debug", "-v", str(site), target.url(), target=target)
    assert edited.exit_code == 0, edited.output
    assert "replace  css/main.css  (content changed (same size))" in edited.output
    assert _hashed(edited.output) == [(1, files, files - 1)]
    assert_same_tree(site, target.disk)


def test_without_the_cache_every_file_is_read(
    target: Target, settled_site: Path, hash_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFTPMIRROR_NO_HASH_CACHE", "1")
    site = settled_site
    files = sum(1 for p in site.rglob("*") if p.is_file())
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    again = run_cli("push", "--debug", str(site), target.url(), target=target)
    assert again.exit_code == 0, again.output
    assert _hashed(again.output) == [(files, files, 0)]
    assert not hash_cache_dir.exists()
