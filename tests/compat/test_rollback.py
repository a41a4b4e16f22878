"""Deploys undone on every server of the matrix (issue 18): where the server makes hard links the
backups are links; where it makes none (rclone answers OK and makes none, paramiko has none)
the replaced files are renamed into the backup and renamed back by the rollback. Either way
nothing is uploaded: the files put back are the very files deployed (same inode)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sftpmirror.engine import journal
from sftpmirror.engine.history import BACKUPS, HISTORY
from sftpmirror.engine.tree import temp_name
from tests.conftest import Target, target_of
from tests.e2e.helpers import run_cli
from tests.e2e.test_doctor import by_name, doctor_json
from tests.e2e.test_rollback import V1, V2, V3, _contents, _inodes, _write
from tests.servers.matrix import Servers

NO_LINKS = {"rclone", "paramiko"}  # the matrix's truth: docs/servers.md's "hard links" column
FOLLOWS = "the server does not rename a symbolic link over another as a link"
NO_RELEASES = {
    "rclone": "the server makes no symbolic links",
    **{kind: FOLLOWS for kind in ("proftpd", "proftpd-ignore-perms", "proftpd-ignore-times",
                                  "proftpd-no-chmod")},
}  # fmt: skip


def test_three_deploys_two_rollbacks_on_every_server(compat_target: Target, tmp_path: Path) -> None:
    target = compat_target
    site = tmp_path / "site"
    inodes = []
    for version in (V1, V2, V3):
        result = run_cli(
            "push", "--delete", str(_write(site, version)), target.url(), target=target
        )
        assert result.exit_code == 0, f"{target.kind}: {result.output}"
        assert _contents(target.disk) == version
        inodes.append(_inodes(target.disk))
    records = json.loads((target.disk / HISTORY).read_text())
    method = "rename" if target.kind in NO_LINKS else "link"
    assert [r["backup_by"] for r in records] == [method] * 3, records
    assert all(r["backup"] for r in records)

    first = run_cli("rollback", target.url(), target=target)
    assert first.exit_code == 0, f"{target.kind}: {first.output}"
    assert "nothing uploaded" in first.output
    assert _contents(target.disk) == V2
    assert _inodes(target.disk) == inodes[1]  # the very files of v2, not uploaded again

    second = run_cli("rollback", target.url(), target=target)
    assert second.exit_code == 0, f"{target.kind}: {second.output}"
    assert _contents(target.disk) == V1
    assert _inodes(target.disk) == inodes[0]

    listed = run_cli("history", "--json", target.url(), target=target)
    assert listed.exit_code == 0, listed.output
    deploys = json.loads(listed.stdout)["deploys"]
    assert [d["kind"] for d in deploys] == ["deploy"] * 3 + ["rollback"] * 2
    assert deploys[-1]["live"] == deploys[0]["id"]
    # Moved back out of their backups where no links are made: those backups are spent.
    spent = [d["id"] for d in deploys if not d["backup"]]
    assert spent == ([deploys[1]["id"], deploys[2]["id"]] if target.kind in NO_LINKS else [])
    left = {p.name for p in (target.disk / BACKUPS).iterdir()}
    assert left == {d["id"] for d in deploys if d["backup"]}

    again = run_cli("push", "--delete", str(_write(site, V3)), target.url(), target=target)
    assert again.exit_code == 0, again.output
    assert _contents(target.disk) == V3
    leftovers = [p for p in target.disk.rglob(".sftpmirror.*") if p.suffix in (".part", ".old")]
    assert leftovers == []


def test_a_swap_into_the_backup_cut_in_the_middle_is_repaired(
    compat_servers: Servers, tmp_path: Path
) -> None:
    """Without hard links a replace keeps the old file by renaming it into the backup, then
    renames the new one in: a cut between the two leaves the name missing. The journal's swap
    line (written first) names where the old file went, and the next run puts it back; a line
    naming a place outside a backup area is not followed."""
    target = target_of(compat_servers.get("paramiko"))
    site = _write(tmp_path / "site", V1)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    inode = (target.disk / "index.html").stat().st_ino
    tag = "5ca1ab1e"
    aside = f"{BACKUPS}/20261202T000000Z-abcd/files/index.html"
    (target.disk / aside).parent.mkdir(parents=True)
    os.rename(target.disk / "index.html", target.disk / aside)  # the new one never went in
    (target.disk / "elsewhere").mkdir()
    os.rename(target.disk / "css/site.css", target.disk / "elsewhere/site.css")
    lines = [
        {"journal": "sftpmirror", "version": 1, "tags": [tag]},
        {"swap": "index.html", "temp": temp_name("index.html", tag), "aside": aside},
        {"swap": "css/site.css", "temp": "css/" + temp_name("site.css", tag),
         "aside": "elsewhere/site.css"},
    ]  # fmt: skip
    (target.disk / journal.NAME).write_text("".join(json.dumps(x) + "\n" for x in lines))

    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "put back 1 file(s) an interrupted replace left missing" in result.output
    assert (target.disk / "index.html").stat().st_ino == inode  # renamed back, not uploaded
    assert (target.disk / "elsewhere/site.css").exists()  # not ours to move: left alone
    assert _contents(target.disk) == {**V1, "elsewhere/site.css": V1["css/site.css"]}


def test_a_rollback_cut_short_runs_again(compat_servers: Servers, tmp_path: Path) -> None:
    """Without hard links a rollback moves the files out of the backup: one run again after a
    cut finds some already back (the backup's copy gone, the name there) and goes on."""
    target = target_of(compat_servers.get("paramiko"))
    site = tmp_path / "site"
    for version in (V1, V2, V3):
        result = run_cli(
            "push", "--delete", str(_write(site, version)), target.url(), target=target
        )
        assert result.exit_code == 0, result.output
    v3 = json.loads((target.disk / HISTORY).read_text())[-1]["id"]
    # What a rollback cut after its first file leaves: v3's page kept in the rollback's own
    # backup (a rollback never recorded), v2's page moved back out of v3's backup.
    own = target.disk / BACKUPS / "20261202T000000Z-abcd" / "files"
    own.mkdir(parents=True)
    os.rename(target.disk / "index.html", own / "index.html")
    os.rename(target.disk / BACKUPS / v3 / "files" / "index.html", target.disk / "index.html")

    result = run_cli("rollback", target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert _contents(target.disk) == V2


def test_releases_on_every_server(compat_target: Target, tmp_path: Path) -> None:
    """``--release symlink`` where the server makes symbolic links (whatever order it reads
    SYMLINK's paths in) and renames them as links; refused before anything is made where it
    makes none (rclone) or where its rename moves what a link names (ProFTPD)."""
    target = compat_target
    parent = target.disk / "sub"
    parent.mkdir()
    owner = target.disk.stat()
    os.chown(parent, owner.st_uid, owner.st_gid)  # the server's own: it may write there
    url = target.url(f"{target.path}/sub/www")
    _, report = doctor_json(url, target=target)
    said = by_name(report)["release"]
    if target.kind in NO_RELEASES:
        assert said["status"] == "info", said
        assert NO_RELEASES[target.kind] in said["detail"]
    else:
        assert said["status"] == "ok", said
    pushed = [
        run_cli("push", "--release", "symlink", "--delete", str(_write(tmp_path / "s", v)), url,
                target=target)
        for v in (V1, V2)
    ]  # fmt: skip
    if target.kind in NO_RELEASES:
        assert [r.exit_code for r in pushed] == [5, 5], pushed[0].output
        assert NO_RELEASES[target.kind] in pushed[0].output
        assert list(parent.iterdir()) == []  # no link, no releases, no temporary
        return
    assert [r.exit_code for r in pushed] == [0, 0], [r.output for r in pushed]
    link = parent / "www"
    assert os.readlink(link).startswith("www.releases/")  # relative: right outside a chroot
    assert _contents(link) == V2
    v2 = os.readlink(link)
    back = run_cli("rollback", url, target=target)
    assert back.exit_code == 0, back.output
    assert _contents(link) == V1
    assert os.readlink(link) != v2
    assert [p.name for p in parent.iterdir() if p.name.startswith(".sftpmirror")] == []
