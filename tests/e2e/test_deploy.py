"""Deploys that upload only what changed and never leave a broken site: the manifest, the
deploy order, the delete guards, and the faults a deploy must survive (real servers only)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import ClassVar

import asyncssh
import pytest

from sftpmirror.engine.manifest import DEFAULT_NAME as MANIFEST
from sftpmirror.engine.tree import TreeError
from tests.conftest import Target, embedded_server
from tests.e2e.helpers import STATE, assert_same_tree, make_site, ours, run_cli, snapshot
from tests.faults import CuttingProxy, HostileServer
from tests.openssh import SshdInfo, running_sshd
from tests.tree.conftest import remote_env
from tests.tree.test_conformance import file_entry, write_all


def inodes(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): p.stat().st_ino
        for p in root.rglob("*")
        if p.is_file()
        and p.name != MANIFEST
        and not p.relative_to(root)
        .as_posix()
        .startswith((".sftpmirror-history", ".sftpmirror-backups"))
    }


def hugo_site(root: Path, posts: int = 60) -> Path:
    """posts/NNN/index.html pages, a tag page per ten posts, css/js, an image per post."""
    for n in range(posts):
        post = root / "posts" / f"{n:03}"
        post.mkdir(parents=True)
        (post / "index.html").write_text(f"<h1>Post {n}</h1><p>{'lorem ' * (n + 5)}</p>\n")
        (post / "cover.png").write_bytes(hashlib.sha256(str(n).encode()).digest() * 40)
    for t in range(posts // 10):
        (root / "tags" / f"t{t}").mkdir(parents=True)
        (root / "tags" / f"t{t}" / "index.html").write_text(f"<h1>Tag {t}</h1>\n")
    (root / "css").mkdir()
    (root / "css" / "main.css").write_text("body { margin: 0 }\n")
    (root / "index.html").write_text("<h1>Home</h1>\n")
    return root


def touch_all(root: Path, seconds: int) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            st = p.stat()
            os.utime(p, (st.st_atime + seconds, st.st_mtime + seconds))


def test_hugo_rebuild_uploads_only_changed_content(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    assert (target.disk / MANIFEST).exists()
    before = inodes(target.disk)
    hidden = site / "posts" / "013" / "index.html"
    deployed = hidden.stat()
    # A rebuild: every mtime moves; 3 of 133 files change (2%), two of them at the same size.
    touch_all(site, 3600)
    same_size = site / "posts" / "007" / "index.html"
    same_size.write_text(same_size.read_text().replace("Post 7", "Post 8"))
    (site / "posts" / "042" / "index.html").write_text("<h1>Post 42, rewritten</h1>\n")
    touch_all(site, 7200)
    # An edit that keeps both the size and the deployed mtime: only a content hash sees it.
    hidden.write_text(hidden.read_text().replace("Post 13", "Post 31"))
    os.utime(hidden, (deployed.st_atime, deployed.st_mtime))
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "replace  posts/007/index.html  (content changed (same size))" in result.output
    assert "replace  posts/042/index.html  (size changed" in result.output
    assert "replace  posts/013/index.html  (content changed (same size))" in result.output
    assert "done: 3 replace;" in result.output
    after = inodes(target.disk)
    changed = {p for p in before if before[p] != after[p]}
    assert changed == {"posts/007/index.html", "posts/013/index.html", "posts/042/index.html"}
    assert (target.disk / "posts/007/index.html").read_bytes() == same_size.read_bytes()
    # And once more: nothing at all.
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert "done: nothing to do" in result.output
    assert inodes(target.disk) == after


class OrderLog(asyncssh.SFTPServer):
    """Records posix-renames (an upload landing) and removes, in the order they happen."""

    log: ClassVar[list[tuple[str, str]]] = []
    guard = threading.Lock()
    opens = 0

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if pflags & asyncssh.FXF_WRITE and not ours(path):
            with OrderLog.guard:
                OrderLog.opens += 1
        return super().open(path, pflags, attrs)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if not ours(newpath):
            with OrderLog.guard:
                OrderLog.log.append(("live", newpath.decode().removeprefix("public_html/")))
        super().posix_rename(oldpath, newpath)

    def remove(self, path: bytes) -> None:
        if not ours(path):
            with OrderLog.guard:
                OrderLog.log.append(("remove", path.decode().removeprefix("public_html/")))
        super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        if b"/.sftpmirror-backups/" in newpath:  # a delete: the file is kept for a rollback
            with OrderLog.guard:
                OrderLog.log.append(("remove", oldpath.decode().removeprefix("public_html/")))
        super().rename(oldpath, newpath)


def test_fingerprinted_asset_rename(tmp_path: Path, state_dir: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=20)
    old, new = "main.3f2a9c1d.css", "main.8b7e6f0a.css"  # same length: pages keep their size
    (site / "css" / old).write_text("body { color: #111 }\n")
    pages = sorted(p for p in site.rglob("*.html"))
    for page in pages:
        page.write_text(page.read_text() + f'<link rel="stylesheet" href="/css/{old}">\n')
    with embedded_server(tmp_path, state_dir, OrderLog) as target:
        assert run_cli("push", "--delete", str(site), target.url(), target=target).exit_code == 0
        (site / "css" / old).rename(site / "css" / new)
        (site / "css" / new).write_text("body { color: #222 }\n")
        for page in pages:
            page.write_text(page.read_text().replace(old, new))
        OrderLog.log = []
        result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
        assert_same_tree(site, target.disk)
    live = [path for op, path in OrderLog.log if op == "live" and path != MANIFEST]
    removed = [path for op, path in OrderLog.log if op == "remove"]
    assert sorted(live) == sorted([f"css/{new}"] + [p.relative_to(site).as_posix() for p in pages])
    assert live[0] == f"css/{new}", "the new asset goes live before any page that uses it"
    assert removed == [f"css/{old}"]
    assert OrderLog.log.index(("remove", f"css/{old}")) > max(
        OrderLog.log.index(("live", p)) for p in live
    ), "the old asset is deleted only after every page is live"
    assert OrderLog.log[-1] == ("live", MANIFEST), "the manifest is written last"


def test_nothing_changed_means_no_write_at_all(tmp_path: Path, state_dir: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=10)
    with embedded_server(tmp_path, state_dir, OrderLog) as target:
        assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
        touch_all(site, 60)
        OrderLog.opens, OrderLog.log = 0, []
        result = run_cli("push", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
    assert OrderLog.opens == 0
    assert OrderLog.log == []


def test_change_behind_our_back_is_replaced(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=5)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    edited = target.disk / "posts" / "002" / "index.html"
    edited.write_text(edited.read_text().replace("Post", "Pwnd"))  # same size
    later = time.time() + 60  # an edit in the same second as the deploy cannot be told apart
    os.utime(edited, (later, later))
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "replace  posts/002/index.html  (changed on the server since the last deploy" in (
        result.output
    )
    assert_same_tree(site, target.disk)


def test_first_deploy_over_an_existing_site_with_verify(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=5)
    shutil.copytree(site, target.disk, dirs_exist_ok=True, copy_function=shutil.copy2)
    if target.kind == "openssh":
        subprocess.run(["chown", "-R", f"{target.user}:{target.user}", target.disk], check=True)
    # Same size and mtime, other content: only --verify can tell.
    sneaky = target.disk / "posts" / "003" / "index.html"
    st = sneaky.stat()
    sneaky.write_text(sneaky.read_text().replace("Post", "P0st"))
    os.utime(sneaky, (st.st_atime, st.st_mtime))
    result = run_cli("push", "-n", str(site), target.url(), target=target)
    assert "no manifest yet" in result.output
    assert "comparing by size and mtime" in result.output
    assert "posts/003/index.html" not in result.output
    result = run_cli("push", "-v", "--verify", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "replace  posts/003/index.html  (content changed (same size))" in result.output
    assert "done: 1 replace;" in result.output
    assert_same_tree(site, target.disk)


def test_a_manifest_never_vouches_for_bytes_nobody_read(target: Target, tmp_path: Path) -> None:
    """F4: a remote file with other bytes at the same size and mtime, the manifest gone: the
    new manifest recorded the source's hash for it, so --verify then said "nothing to do"."""
    site = hugo_site(tmp_path / "site", posts=3)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    sneaky = target.disk / "posts" / "002" / "index.html"
    st = sneaky.stat()
    sneaky.write_text(sneaky.read_text().replace("Post", "P0st"))
    os.utime(sneaky, (st.st_atime, st.st_mtime))
    (target.disk / MANIFEST).unlink()
    again = run_cli("push", str(site), target.url(), target=target)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output  # by size and mtime: it cannot know
    verified = run_cli("push", "-v", "--verify", str(site), target.url(), target=target)
    assert verified.exit_code == 0, verified.output
    assert "replace  posts/002/index.html  (content changed (same size))" in verified.output
    assert_same_tree(site, target.disk)


def test_verify_reports_a_remote_file_it_cannot_read(openssh: Target, tmp_path: Path) -> None:
    """F18: --verify said "nothing to do" over a different file the account could not read."""
    site = hugo_site(tmp_path / "site", posts=3)
    shutil.copytree(site, openssh.disk, dirs_exist_ok=True, copy_function=shutil.copy2)
    subprocess.run(["chown", "-R", f"{openssh.user}:{openssh.user}", openssh.disk], check=True)
    hidden = openssh.disk / "posts" / "002" / "index.html"
    st = hidden.stat()
    hidden.write_text(hidden.read_text().replace("Post", "P0st"))
    os.utime(hidden, (st.st_atime, st.st_mtime))
    subprocess.run(["chown", "root:root", hidden], check=True)
    hidden.chmod(0o600)  # the account cannot read it
    result = run_cli("push", "--verify", "--delete", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 1, result.output
    assert "posts/002/index.html: destination: cannot be read to compare its content" in (
        result.output
    )
    assert "FAILED" in result.output


def test_corrupt_or_foreign_manifest_is_not_trusted(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=5)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    (target.disk / MANIFEST).write_bytes(b"not gzip at all")
    page = site / "posts" / "001" / "index.html"
    page.write_text(page.read_text() + "edited\n")
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "manifest ignored: not a gzip JSON file" in result.output
    assert "replace  posts/001/index.html" in result.output
    assert_same_tree(site, target.disk)
    # ... and the run wrote a good one again.
    result = run_cli("push", str(site), target.url(), target=target)
    assert "manifest ignored" not in result.output


def test_manifest_outside_the_web_root_or_local(embedded: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=3)
    outside = f"../{MANIFEST}"
    result = run_cli("push", "--manifest", outside, str(site), embedded.url(), target=embedded)
    assert result.exit_code == 0, result.output
    assert (embedded.disk.parent / MANIFEST).exists()
    assert not (embedded.disk / MANIFEST).exists()
    local = tmp_path / "state" / "site.manifest.gz"
    local.parent.mkdir()
    shutil.rmtree(embedded.disk)  # a fresh destination: every file is sent, and recorded
    args = ("push", "-v", "--local-manifest", str(local), str(site), embedded.url())
    assert run_cli(*args, target=embedded).exit_code == 0
    assert local.exists()
    touch_all(site, 100)
    result = run_cli(*args, target=embedded)
    assert "done: nothing to do" in result.output


def test_delete_never_removes_the_manifest(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=3)
    assert run_cli("push", "--delete", str(site), target.url(), target=target).exit_code == 0
    result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert (target.disk / MANIFEST).exists()
    assert MANIFEST not in result.output


# -- guards ---------------------------------------------------------------------------------


def test_delete_from_an_empty_source_is_refused(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=5)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    before = snapshot(target.disk)
    for flags in (["--delete"], ["--delete", "--dry-run"]):
        result = run_cli("push", *flags, str(empty), target.url(), target=target)
        assert result.exit_code == 6, result.output
        assert "the source is empty" in result.output
    assert snapshot(target.disk) == before
    result = run_cli(
        "push", "--delete", "--allow-empty-source", str(empty), target.url(), target=target
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in target.disk.iterdir() if not p.name.startswith(STATE)] == [MANIFEST]


def test_mass_delete_is_refused_before_anything_changes(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=20)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    shutil.rmtree(site / "posts")  # a half-finished build: most of the site is gone
    (site / "index.html").write_text("<h1>new home</h1>\n")
    before = snapshot(target.disk)
    result = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 6, result.output
    assert "refusing to delete 40 of the destination's 44 files (91%, more than 50%)" in (
        result.output
    )
    assert snapshot(target.disk) == before, "not even the upload of index.html happened"
    result = run_cli(
        "push", "--delete", "--max-delete", "3", str(site), target.url(), target=target
    )
    assert result.exit_code == 6
    assert "more than --max-delete 3" in result.output
    # A dry run refused the same way shows the plan it refuses (the hint said to run one).
    dry = run_cli("push", "--delete", "--dry-run", str(site), target.url(), target=target)
    assert dry.exit_code == 6, dry.output
    assert "delete   posts/001/index.html  (not in source)" in dry.output
    assert "--dry-run" not in dry.stderr
    result = run_cli(
        "push", "--delete", "--max-delete-percent", "100", str(site), target.url(), target=target
    )
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk)


# -- faults ---------------------------------------------------------------------------------


def test_stale_temporaries_are_swept_and_others_kept(target: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=3)
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    ours = target.disk / "posts" / ".sftpmirror.0badc0de.index.html.part"
    theirs = target.disk / ".sftpmirror.notes.part"  # not our pattern: someone else's
    alike = target.disk / ".sftpmirror.12345678.page.part"  # our pattern, a tag not ours
    ours.write_text("half an upload")
    theirs.write_text("keep me")
    alike.write_text("keep me too")
    # What a run stopped mid-upload leaves: the temporary, and the journal naming its tag.
    head = {"journal": "sftpmirror", "version": 1, "tags": ["0badc0de"]}
    (target.disk / ".sftpmirror-journal").write_text(json.dumps(head) + "\n")
    if target.kind == "openssh":
        for path in (ours, target.disk / ".sftpmirror-journal"):
            shutil.chown(path, target.user, target.user)
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "sweep    posts/.sftpmirror.0badc0de.index.html.part" in result.output
    assert not ours.exists()
    assert theirs.read_text() == "keep me"
    assert alike.read_text() == "keep me too"
    assert not (target.disk / ".sftpmirror-journal").exists()


def test_permission_denied_on_one_directory(openssh: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=5)
    (site / "locked").mkdir()
    (site / "locked" / "index.html").write_text("new")
    locked = openssh.disk / "locked"
    locked.mkdir()  # root-owned 0755: the account cannot write here
    (locked / "index.html").write_text("old")
    os.utime(locked / "index.html", (1_600_000_000, 1_600_000_000))
    (openssh.disk / "stale.html").write_text("to be deleted")
    subprocess.run(["chown", f"{openssh.user}:{openssh.user}", openssh.disk / "stale.html"])
    args = ("push", "--delete", "--delete-foreign", str(site), openssh.url())
    result = run_cli(*args, target=openssh)
    assert result.exit_code == 1, result.output
    assert "locked/index.html: permission denied" in result.output
    assert "not running 1 delete action(s): there were errors" in result.output
    assert (locked / "index.html").read_text() == "old"
    assert (openssh.disk / "stale.html").exists()
    assert (openssh.disk / "posts" / "004" / "index.html").exists()


@pytest.mark.parametrize(
    "forged",
    [b"../x", b"/etc/x", b"a/b", b"", b"x\x00y", b"index.html"],
    ids=["dotdot", "absolute", "slash", "empty", "nul", "duplicate"],
)
def test_pull_from_a_hostile_server(tmp_path: Path, state_dir: Path, forged: bytes) -> None:
    HostileServer.forged = [forged]
    outside = tmp_path / "x"
    with embedded_server(tmp_path, state_dir, HostileServer) as target:
        (target.disk / "index.html").write_text("hello")
        dest = tmp_path / "pulled"
        result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 5, result.output
    assert "refusing to go on" in result.output or "twice" in result.output
    assert not dest.exists()
    assert not outside.exists()


@pytest.mark.parametrize("forged", [b"bell\x07", b"two\nlines", b"logo-\xe9.png"])
def test_pull_refuses_an_undeployable_name_and_pulls_the_rest(
    tmp_path: Path, state_dir: Path, forged: bytes
) -> None:
    """F2/F3: one rule on both sides; the name is a failure of its own (exit 1), not a stop."""
    HostileServer.forged = [forged]
    with embedded_server(tmp_path, state_dir, HostileServer) as target:
        (target.disk / "index.html").write_text("hello")
        dest = tmp_path / "pulled"
        result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 1, result.output
    assert "name refused" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in dest.iterdir()) == ["index.html"]


def test_disk_full_is_reported_and_deletes_nothing(openssh: Target, tmp_path: Path) -> None:
    small = openssh.disk / "small"
    small.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", small], check=True
    )
    try:
        subprocess.run(["chown", f"{openssh.user}:{openssh.user}", small], check=True)
        site = tmp_path / "site"
        (site / "small").mkdir(parents=True)
        (site / "small" / "big.bin").write_bytes(os.urandom(1 << 20))
        (openssh.disk / "old.html").write_text("to be deleted")
        result = run_cli("push", "--delete", str(site), openssh.url(), target=openssh)
        assert result.exit_code == 5, result.output
        assert "remote filesystem full" in result.output
        assert (openssh.disk / "old.html").exists()
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", small], check=False)


def test_connection_cut_mid_deploy(openssh: Target, sshd: SshdInfo, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    old = {f"f{i:02}.bin": os.urandom(60_000) for i in range(30)}
    for name, data in old.items():
        (site / name).write_bytes(data)
    (site / "extra.html").write_text("to delete")
    assert run_cli("push", str(site), openssh.url(), target=openssh).exit_code == 0
    new = {name: os.urandom(70_000) for name in old}
    for name, data in new.items():
        (site / name).write_bytes(data)
    (site / "extra.html").unlink()
    with CuttingProxy(sshd.port, limit=600_000) as proxy:
        url = f"sftp://{sshd.user}@127.0.0.1:{proxy.port}/public_html"
        kh = tmp_path / "known_hosts"
        kh.write_text(sshd.known_hosts.read_text().replace(f"]:{sshd.port} ", f"]:{proxy.port} "))
        result = run_cli("push", "--delete", "--reconnects", "0", str(site), url,
                         "--known-hosts", str(kh), password=sshd.password)  # fmt: skip
        assert proxy.cut.is_set(), (result.output, proxy.sent)
    assert result.exit_code == 3, result.output
    assert "connection lost" in result.output or "disconnected" in result.output
    time.sleep(0.5)  # let sshd's session process notice and exit
    for name in old:
        live = (openssh.disk / name).read_bytes()
        assert live in (old[name], new[name]), f"{name} is neither the old nor the new version"
    assert (openssh.disk / "extra.html").exists(), "nothing is deleted after a failure"
    result = run_cli("push", "-v", "--delete", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, openssh.disk)
    assert not list(openssh.disk.glob(".sftpmirror.*"))


def test_case_only_collisions_are_reported(embedded: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (site / "About.html").write_text("A")
    (site / "about.html").write_text("a")
    result = run_cli("push", str(site), embedded.url(), target=embedded)
    assert result.exit_code == 0, result.output
    assert "About.html and about.html differ only in case" in result.output


def test_unicode_names_are_compared_in_nfc(target: Target, tmp_path: Path) -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"  # what Linux keeps / what a Mac may write
    site = tmp_path / "site"
    (site / nfd).mkdir(parents=True)
    (site / nfd / "index.html").write_text("menu v2")
    (target.disk / nfc).mkdir()
    (target.disk / nfc / "index.html").write_text("menu v1")
    os.utime(target.disk / nfc / "index.html", (1_600_000_000, 1_600_000_000))
    if target.kind == "openssh":
        subprocess.run(["chown", "-R", f"{target.user}:{target.user}", target.disk], check=True)
    result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "delete" not in result.output
    names = [p.name for p in target.disk.iterdir() if not p.name.startswith(STATE)]
    assert sorted(names) == sorted([nfc, MANIFEST])
    assert (target.disk / nfc / "index.html").read_text() == "menu v2"
    # A new file in that directory lands beside the old one, under the real directory name.
    (site / nfd / "wine.html").write_text("list")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    assert (target.disk / nfc / "wine.html").read_text() == "list"


def test_server_without_posix_rename(tmp_path: Path) -> None:
    with running_sshd(tmp_path / "sshd", sftp_flags="-P posix-rename") as info:
        target = Target.of(info)
        site = hugo_site(tmp_path / "site", posts=3)
        assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
        page = site / "posts" / "001" / "index.html"
        page.write_text("<h1>replaced without posix-rename</h1>\n")
        result = run_cli("push", "-v", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
        assert "the server refuses posix-rename" in result.output
        assert_same_tree(site, target.disk)
        assert not list(target.disk.rglob(".sftpmirror.*"))
        doctor = run_cli("doctor", target.url(), target=target)
        # A file written over a directory fails, and the directory is not moved aside by the
        # two-rename replace (it was: renamed to .sftpmirror.*.old, the file put in its place).
        env = remote_env(target)
        env.mkdir("posts/999")

        async def over_directory() -> None:
            async with env.tree() as tree:
                await write_all(tree, file_entry("posts/999", b"x"), [b"x"])

        with pytest.raises(TreeError, match="directory"):
            asyncio.run(over_directory())
        assert (target.disk / "posts" / "999").is_dir()
        assert not list(target.disk.rglob(".sftpmirror.*"))
    assert doctor.exit_code == 1, doctor.output
    assert "posix-rename (no)" in doctor.output
    assert "remove '-P posix-rename'" in doctor.output


def test_server_short_of_file_descriptors(tmp_path: Path) -> None:
    """sftp-server holds a descriptor per open file and directory; with few of them it answers
    opens with a bare Failure. Listings (512 at a time) and files (64 at a time) are retried
    until the others have finished: push, no-change push and pull all complete."""
    site = tmp_path / "site"
    for i in range(300):
        (site / f"d{i:03}" / "sub").mkdir(parents=True)
        (site / f"d{i:03}" / "index.html").write_text(f"<p>{i}</p>\n")
        (site / f"d{i:03}" / "sub" / "data.bin").write_bytes(os.urandom(i * 10))
    with running_sshd(tmp_path / "sshd", max_open_files=64) as info:
        target = Target.of(info)
        pushed = run_cli("push", str(site), target.url(), target=target)
        assert pushed.exit_code == 0, pushed.output
        assert_same_tree(site, target.disk)
        again = run_cli("push", str(site), target.url(), target=target)
        assert again.exit_code == 0, again.output
        assert "nothing to do" in again.output
        back = tmp_path / "back"
        pulled = run_cli("pull", target.url(), str(back), target=target)
        assert pulled.exit_code == 0, pulled.output
    assert_same_tree(site, back, chmod=None)
    assert not list(target.disk.rglob(".sftpmirror.*")), "temporary files left behind"


class FailingOpens(asyncssh.SFTPServer):
    """Answers every open under ``stuck/`` with a bare Failure, as a read-only or full file
    system would (SFTP v3 has no better code), and counts those opens."""

    attempts: ClassVar[int] = 0
    guard = threading.Lock()

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if b"/stuck/" in path:
            with FailingOpens.guard:
                FailingOpens.attempts += 1
            raise asyncssh.SFTPFailure("Failure")
        return super().open(path, pflags, attrs)


def test_failures_that_retries_do_not_cure_stop_being_retried(
    tmp_path: Path, state_dir: Path
) -> None:
    site = tmp_path / "site"
    (site / "stuck").mkdir(parents=True)
    for i in range(40):
        (site / "stuck" / f"p{i}.html").write_text(f"<p>{i}</p>\n")
    (site / "index.html").write_text("<p>home</p>\n")
    FailingOpens.attempts = 0
    with embedded_server(tmp_path, state_dir, FailingOpens) as target:
        result = run_cli("push", "--jobs", "4", str(site), target.url(), target=target)
        assert result.exit_code == 1, result.output
        assert result.output.count("Failure") >= 40
        assert (target.disk / "index.html").read_text() == "<p>home</p>\n"
    # The first files in flight are retried (nine opens each, 5 s); once one has used up its
    # retries, the rest fail at their first open: 4 x 9 + 36, where retrying every file
    # would take 40 x 9 opens (and 50 s).
    assert FailingOpens.attempts <= 4 * 9 + 40


def test_pages_last_is_configurable(embedded: Target, tmp_path: Path) -> None:
    site = hugo_site(tmp_path / "site", posts=2)
    default = run_cli("push", "-n", str(site), embedded.url(), target=embedded).output
    assert default.index("copy     css/main.css") < default.index("copy     index.html")
    args = ("push", "-n", "--pages-last", ".css", str(site), embedded.url())
    swapped = run_cli(*args, target=embedded).output
    assert swapped.index("copy     index.html") < swapped.index("copy     css/main.css")
