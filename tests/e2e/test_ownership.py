"""Delete only what we deployed (issue 18): the host's files are kept and listed, protected
paths are never deleted, and a pull deletes locally only when asked on the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sftpmirror.config import CONFIG_NAME
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site, run_cli

FOREIGN = {
    ".htaccess": "Options -Indexes\n",
    ".well-known/x": "acme challenge\n",
    "cgi-bin/y": "#!/bin/sh\n",
    "other.html": "a page someone else put here\n",
}


def _put_foreign(target: Target) -> None:
    for rel, text in FOREIGN.items():
        path = target.disk / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if target.kind == "openssh":
            for p in (path, path.parent):
                shutil.chown(p, target.user, target.user)


def test_foreign_files_are_kept_and_ours_deleted(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (site / "old.html").write_text("deployed, then dropped from the build\n")
    _put_foreign(target)
    first = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert first.exit_code == 0, first.output
    (site / "old.html").unlink()
    result = run_cli("push", "--json", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert sorted(summary["kept"]) == sorted(FOREIGN)
    assert summary["done"] == {"delete": 1}
    assert "kept 4 file(s) not in the source" in result.stderr
    for rel, text in FOREIGN.items():
        assert (target.disk / rel).read_text() == text
    assert not (target.disk / "old.html").exists()


def test_delete_foreign_removes_all_but_protected(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    _put_foreign(target)
    result = run_cli("push", "--delete", "--delete-foreign", str(site), target.url(),
                     target=target)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (target.disk / "other.html").exists()
    for rel in (".htaccess", ".well-known/x", "cgi-bin/y"):  # protected all the same
        assert (target.disk / rel).exists(), rel
    named = run_cli("push", "--delete", "--delete-foreign", "--no-protect", "--protect",
                    "cgi-bin/", str(site), target.url(), target=target)  # fmt: skip
    assert named.exit_code == 0, named.output
    assert not (target.disk / ".htaccess").exists()
    assert (target.disk / "cgi-bin" / "y").exists()


def test_a_pull_deletes_locally_only_when_asked(target: Target, tmp_path: Path) -> None:
    """init writes delete = true; `pull production` inherited it and deleted a local file."""
    site = make_site(tmp_path / "site")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    local = tmp_path / "local"
    local.mkdir()
    (local / "mine.txt").write_text("only here\n")
    (tmp_path / CONFIG_NAME).write_text(
        f'[targets.production]\nurl = "{target.url()}"\nsource = "local"\ndelete = true\n'
        f'known_hosts = "{target.known_hosts}"\n'
    )
    args = ("pull", "--config", str(tmp_path / CONFIG_NAME), "production")
    kept = run_cli(*args, password=target.password)
    assert kept.exit_code == 0, kept.output
    assert (local / "mine.txt").exists()
    asked = run_cli(*args, "--delete", password=target.password)
    assert asked.exit_code == 0, asked.output
    assert not (local / "mine.txt").exists()
    assert_same_tree(target.disk, local, chmod=None)


def test_adopt_takes_over_a_site_deployed_by_another_tool(target: Target, tmp_path: Path) -> None:
    """The site was put there by lftp: nothing is ours, so --delete removes nothing. After
    adopt (nothing uploaded), the matching files are ours: a later --delete removes those the
    source dropped, and a file that differs is replaced by the next push."""
    site = make_site(tmp_path / "site")
    shutil.copytree(site, target.disk, dirs_exist_ok=True, copy_function=shutil.copy2)
    if target.kind == "openssh":
        for path in [target.disk, *target.disk.rglob("*")]:
            shutil.chown(path, target.user, target.user)
    (target.disk / "404.html").write_text("changed on the server\n")
    adopted = run_cli("adopt", "--verify", str(site), target.url(), target=target)
    assert adopted.exit_code == 0, adopted.output
    assert "adopted 10 file(s) (10 hashed on the server); 1 differ and 0 are missing" in (
        adopted.output
    )
    (site / "sitemap.xml").unlink()
    result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "delete   sitemap.xml  (not in source)" in result.output
    assert "replace  404.html" in result.output
    assert_same_tree(site, target.disk)
