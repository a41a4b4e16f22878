"""The deploy end to end on every server of the matrix (tests/compat/conftest.py).

On each: a push, a no-change push, a rebuild with same-size edits, and a pull give
byte-identical trees; files are readable by others (0644, directories 0755) as the default
``--chmod`` asks; the no-change push uploads nothing; no temporary is left; every exit code is 0.
Where a server ignores the mtimes it is sent, the mtimes are the server's (nothing to compare).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from sftpmirror.engine.manifest import DEFAULT_NAME as MANIFEST
from tests.conftest import Target
from tests.e2e.helpers import STATE, make_site, run_cli

# Servers that ignore (or refuse) the mtimes they are sent: the matrix's truth, checked by the
# profile test below, not assumed by the code.
IGNORES_MTIMES = {"proftpd-ignore-times", "proftpd-no-chmod"}
BIG = 9 << 20
CHMOD_IGNORED = (
    "the server acknowledges chmod and ignores it: files are created with their final mode"
)
WARNS = {
    "proftpd-ignore-perms": [CHMOD_IGNORED],
    "proftpd-ignore-times": [
        "the server ignores the mtimes it is sent: the manifest records the server's own"
    ],
    "proftpd-no-chmod": [
        "the server refuses chmod: files and directories keep the mode they are created with "
        "(the server's own)"
    ],
    "rclone": [CHMOD_IGNORED + " (where the server honours it)"],
}  # past one 8 MiB chunk: the second chunk is where out-of-order writes fail


def build(root: Path) -> Path:
    make_site(root)
    (root / "assets").mkdir()
    (root / "assets" / "video.bin").write_bytes(os.urandom(BIG))
    (root / "posts" / 'it\'s "quoted" & spaced.html').write_bytes(b"<p>quotes</p>\n")
    (root / "\u00e9t\u00e9 \U0001f600.txt").write_bytes(b"unicode\n")
    return root


def site_files(root: Path) -> dict[str, tuple[bytes | None, int, int]]:
    """path → (bytes or None for a directory, permission bits, mtime), without our state."""
    found: dict[str, tuple[bytes | None, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel == MANIFEST or rel.startswith(STATE) or rel.startswith(".sftpmirror"):
                continue
            st = path.lstat()
            data = None if stat.S_ISDIR(st.st_mode) else path.read_bytes()
            found[rel] = (data, stat.S_IMODE(st.st_mode), int(st.st_mtime))
    return found


def assert_deployed(source: Path, target: Target, *, mtimes: bool = True) -> None:
    src, dst = site_files(source), site_files(target.disk)
    assert sorted(src) == sorted(dst)
    for rel, (data, _, mtime) in src.items():
        got, mode, got_mtime = dst[rel]
        assert got == data, f"{target.kind}: {rel} differs"
        assert mode == (0o755 if data is None else 0o644), f"{target.kind}: {rel} is {mode:o}"
        if mtimes and data is not None and target.kind not in IGNORES_MTIMES:
            assert got_mtime == mtime, f"{target.kind}: {rel} mtime"


def leftovers(root: Path) -> list[str]:
    """Temporaries anywhere in the tree (``.sftpmirror.<tag>.<name>.part`` and ``.old``)."""
    return [
        str(Path(d) / n)
        for d, _, files in os.walk(root)
        for n in files
        if n.startswith(".sftpmirror.") and n.endswith((".part", ".old"))
    ]


def push(source: Path, target: Target) -> dict[str, Any]:
    result = run_cli("push", "--json", "--delete", str(source), target.url(), target=target)
    assert result.exit_code == 0, f"{target.kind}: exit {result.exit_code}\n{result.output}"
    obj: dict[str, Any] = json.loads(result.stdout)
    return obj


def test_push_nochange_rebuild_pull(compat_target: Target, tmp_path: Path) -> None:
    target = compat_target
    source = build(tmp_path / "public")
    first = push(source, target)
    assert_deployed(source, target)
    assert leftovers(target.disk) == []
    assert first["done"]["copy"] == sum(1 for p in source.rglob("*") if p.is_file())

    again = push(source, target)
    # What the server changes is said (once per run); what it does not (a handle limit
    # unstated, posix-rename unadvertised) goes to --debug only.
    assert again["warnings"] == WARNS.get(target.kind, []), again["warnings"]
    done = again["done"]
    assert not {"copy", "replace", "attrs"} & set(done), f"{target.kind}: {done}"
    assert again["bytes"] == 0

    # A rebuild: two files edited in place at the same size, every mtime moved on.
    for rel in ("index.html", "css/main.css"):
        path = source / rel
        data = bytearray(path.read_bytes())
        data[0] ^= 0x20
        path.write_bytes(bytes(data))
    for path in source.rglob("*"):
        os.utime(path, (1_800_000_000, 1_800_000_000))
    rebuilt = push(source, target)
    assert rebuilt["done"].get("replace") == 2, rebuilt["done"]
    # (a file whose content did not change keeps its mtime on the server: nothing is sent)
    assert_deployed(source, target, mtimes=False)
    assert leftovers(target.disk) == []

    pulled = tmp_path / "pulled"
    result = run_cli("pull", target.url(), str(pulled), target=target)
    assert result.exit_code == 0, result.output
    theirs = {rel: data for rel, (data, _, _) in site_files(pulled).items()}
    assert theirs == {rel: data for rel, (data, _, _) in site_files(source).items()}
