"""Deploys you can undo (issue 18): history on the server, backups by hard link, and a
rollback made of links and renames, proven upload-free by inode numbers on real OpenSSH."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sftpmirror.engine.history import BACKUPS, HISTORY
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, run_cli

V1 = {"index.html": "<h1>v1</h1>\n", "css/site.css": "body{}\n", "gone.txt": "v1 only\n"}
V2 = {"index.html": "<h1>version two</h1>\n", "css/site.css": "body{}\n", "new.html": "added\n"}
V3 = {"index.html": "<h1>three</h1>\n", "css/site.css": "body{color:red}\n", "new.html": "added\n",
      "js/app.js": "go()\n"}  # fmt: skip


def _write(site: Path, files: dict[str, str]) -> Path:
    if site.exists():
        for path in sorted(site.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    for rel, text in files.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)
    return site


def _contents(root: Path) -> dict[str, str]:
    """The site on the server, file by file (our state files left out)."""
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".sftpmirror")
    }


def _inodes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_ino
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".sftpmirror")
    }


def test_three_deploys_two_rollbacks_nothing_uploaded(openssh: Target, tmp_path: Path) -> None:
    site = tmp_path / "site"
    snapshots = []
    inodes = []
    for version in (V1, V2, V3):
        _write(site, version)
        result = run_cli("push", "--delete", str(site), openssh.url(), target=openssh)
        assert result.exit_code == 0, result.output
        assert _contents(openssh.disk) == version
        snapshots.append({k: v for k, v in version.items()})
        inodes.append(_inodes(openssh.disk))

    first = run_cli("rollback", openssh.url(), target=openssh)
    assert first.exit_code == 0, first.output
    assert "nothing uploaded" in first.output
    assert _contents(openssh.disk) == V2
    assert _inodes(openssh.disk) == inodes[1]  # the very files of v2: linked, not uploaded

    second = run_cli("rollback", openssh.url(), target=openssh)
    assert second.exit_code == 0, second.output
    assert _contents(openssh.disk) == V1
    assert _inodes(openssh.disk) == inodes[0]
    assert (openssh.disk / "gone.txt").read_text() == "v1 only\n"

    listed = run_cli("history", "--json", openssh.url(), target=openssh)
    assert listed.exit_code == 0, listed.output
    deploys = json.loads(listed.stdout)["deploys"]
    assert [d["kind"] for d in deploys] == ["deploy"] * 3 + ["rollback"] * 2
    assert deploys[-1]["live"] == deploys[0]["id"]
    text = run_cli("history", openssh.url(), target=openssh)
    assert text.output.count("rollback") == 2
    assert "backups kept on the server: 5 deploy(s)" in text.output
    assert deploys[2]["backup_bytes"] == len(V2["index.html"]) + len(V2["css/site.css"])

    again = run_cli("push", "--delete", "-v", str(_write(site, V3)), openssh.url(), target=openssh)
    assert again.exit_code == 0, again.output  # a deploy after a rollback works as any other
    assert_same_tree(site, openssh.disk)


def test_backups_are_kept_for_the_last_deploys_only(target: Target, tmp_path: Path) -> None:
    site = tmp_path / "site"
    for n in range(5):
        page = f"<p>{n}</p>\n" * (n + 1)
        _write(site, {"index.html": page, "docs/a/b/page.html": page})  # nested: rmdir order
        result = run_cli("push", "--keep", "2", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
    kept = sorted(os.listdir(target.disk / BACKUPS))
    records = json.loads((target.disk / HISTORY).read_text())
    assert kept == sorted(r["id"] for r in records[-2:])
    assert [r["backup"] for r in records] == [False, False, False, True, True]


def test_a_dry_run_rollback_changes_nothing(openssh: Target, tmp_path: Path) -> None:
    site = tmp_path / "site"
    for version in (V1, V2):
        _write(site, version)
        assert run_cli("push", "--delete", str(site), openssh.url(), target=openssh).exit_code == 0
    before = _inodes(openssh.disk)
    result = run_cli("rollback", "--dry-run", openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert "would put back" in result.output
    assert "replace  index.html" in result.output
    assert _inodes(openssh.disk) == before


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(repo)}  # fmt: skip
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done.stdout.strip()


def test_refuse_older_keeps_a_newer_build_live(openssh: Target, tmp_path: Path) -> None:
    """Two CI runs finishing out of order put old pages back; --refuse-older refuses the
    older commit (an ancestor of the live deploy's); --force deploys it anyway."""
    repo = tmp_path / "repo"
    site = repo / "public"
    _write(site, V1)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v1")
    old = _git(repo, "rev-parse", "HEAD")
    _write(site, V2)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "v2")
    assert (
        run_cli("push", "--refuse-older", str(site), openssh.url(), target=openssh).exit_code == 0
    )
    _git(repo, "checkout", "-q", old)
    refused = run_cli("push", "--refuse-older", str(site), openssh.url(), target=openssh)
    assert refused.exit_code == 6, refused.output
    assert f"refusing to deploy commit {old[:12]}" in refused.output
    assert _contents(openssh.disk)["index.html"] == V2["index.html"]
    forced = run_cli("push", "--refuse-older", "--force", str(site), openssh.url(), target=openssh)
    assert forced.exit_code == 0, forced.output
    assert _contents(openssh.disk)["index.html"] == V1["index.html"]
