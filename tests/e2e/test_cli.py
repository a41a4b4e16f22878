"""The CLI end to end, against the embedded server and a real chrooted OpenSSH account."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import asyncssh
import pytest

from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_remote_site, make_site, run_cli, snapshot


def test_push_change_delete_round_trip(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk)

    # Edit, add, remove: a plain push adds and replaces, and keeps what the source lost.
    (site / "css" / "main.css").write_bytes(b"body { color: white }\n")  # same size
    os.utime(site / "css" / "main.css", (time.time() + 10, time.time() + 10))
    (site / "posts" / "new" / "index.html").parent.mkdir()
    (site / "posts" / "new" / "index.html").write_bytes(b"<p>new</p>\n")
    (site / "404.html").unlink()
    shutil.rmtree(site / "posts" / "hello-world")
    result = run_cli("push", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "replace  css/main.css  (content changed (same size))" in result.output
    assert "copy     posts/new/index.html  (new file)" in result.output
    assert (target.disk / "css" / "main.css").read_bytes() == b"body { color: white }\n"
    assert (target.disk / "404.html").exists()
    assert (target.disk / "posts" / "hello-world" / "cover.jpg").exists()

    # --delete makes the remote tree identical, byte for byte, mode for mode.
    result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "delete   404.html  (not in source)" in result.output
    assert "rmdir    posts/hello-world/  (not in source)" in result.output
    assert_same_tree(site, target.disk)

    # Nothing changed: nothing to do.
    result = run_cli("push", "-v", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "done: nothing to do" in result.output


def test_pull_into_empty_directory(target: Target, tmp_path: Path) -> None:
    make_remote_site(target)
    dest = tmp_path / "pulled" / "site"
    result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(target.disk, dest)


def test_pull_replaces_and_deletes(target: Target, tmp_path: Path) -> None:
    make_remote_site(target)
    dest = tmp_path / "pulled"
    assert run_cli("pull", target.url(), str(dest), target=target).exit_code == 0
    (dest / "extra.txt").write_text("local only")
    (dest / "index.html").write_text("local edit that is longer")
    result = run_cli("pull", "--delete", target.url(), str(dest), target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(target.disk, dest)


def test_dry_run_changes_nothing(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    (site / "index.html").write_bytes(b"<html>changed home page</html>\n")
    (site / "new.txt").write_bytes(b"new\n")
    (site / "sitemap.xml").unlink()
    before = snapshot(target.disk, with_dir_mtime=True)
    result = run_cli("push", "--dry-run", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert "replace  index.html  (size changed (18 → 31 bytes))" in result.output
    assert "copy     new.txt  (new file)" in result.output
    assert "delete   sitemap.xml  (not in source)" in result.output
    assert "nothing was changed" in result.output
    assert snapshot(target.disk, with_dir_mtime=True) == before


def test_wrong_password_exits_4(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    wrong = "not-the-password-42"
    result = run_cli("push", str(site), target.url(), target=target, password=wrong)
    assert result.exit_code == 4, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("sftpmirror: error")]
    assert len(errors) == 1
    assert "permission denied" in errors[0]
    assert wrong not in result.output
    assert list(target.disk.iterdir()) == []


def test_unknown_host_exits_3_then_accept_new(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    known_hosts = tmp_path / "kh" / "known_hosts"
    args = ("push", str(site), target.url(), "--known-hosts", str(known_hosts))
    result = run_cli(*args, password=target.password)
    assert result.exit_code == 3, result.output
    assert "unknown host" in result.output
    assert "SHA256:" in result.output
    assert list(target.disk.iterdir()) == []

    result = run_cli(*args, "--accept-new-host-key", password=target.password)
    assert result.exit_code == 0, result.output
    recorded = known_hosts.read_text()
    assert recorded.startswith(f"[127.0.0.1]:{target.port} ")
    # Now known: no flag needed.
    assert run_cli(*args, password=target.password).exit_code == 0


def test_changed_host_key_exits_3_even_with_accept_new(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    other = asyncssh.generate_private_key("ssh-ed25519")
    known_hosts = tmp_path / "known_hosts"
    public = other.export_public_key("openssh").decode().split()
    known_hosts.write_text(f"[127.0.0.1]:{target.port} {public[0]} {public[1]}\n")
    args = ("push", str(site), target.url(), "--known-hosts", str(known_hosts))
    result = run_cli(*args, "--accept-new-host-key", password=target.password)
    assert result.exit_code == 3, result.output
    assert "CHANGED" in result.output
    assert other.get_fingerprint("sha256") in result.output
    assert known_hosts.read_text().count("\n") == 1, "a changed key is never recorded"
    assert list(target.disk.iterdir()) == []


def test_missing_local_dir_exits_2(embedded: Target, tmp_path: Path) -> None:
    result = run_cli("push", str(tmp_path / "nope"), embedded.url(), target=embedded)
    assert result.exit_code == 2
    assert "local directory not found" in result.output


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sftp://u:secret@127.0.0.1/x", "password in the URL is refused"),
        ("sftp://u@127.0.0.1:99999/x", "bad port"),
        ("public_html", "not a remote location"),
    ],
)
def test_bad_destination_exits_2(tmp_path: Path, url: str, message: str) -> None:
    result = run_cli("push", str(tmp_path), url, password="x")
    assert result.exit_code == 2
    assert message in result.output
    assert "secret" not in result.output


@pytest.mark.parametrize("flag", ["--json", "--json-lines"])
@pytest.mark.parametrize(
    "url", ["sftp://u:s3cret-pw@127.0.0.1/x", "sftp://u:s3cret/pw@127.0.0.1/x", "u:s3cret-pw@h:x"]
)
def test_a_refused_password_is_not_echoed_in_json(tmp_path: Path, flag: str, url: str) -> None:
    """F13: the URL was refused, then echoed whole in --json's destination."""
    result = run_cli("push", flag, str(tmp_path), url, password="x")
    assert result.exit_code == 2, result.output
    assert "s3cret" not in result.output
    out = result.stdout.strip()
    summary = json.loads(out.splitlines()[-1] if flag == "--json-lines" else out)
    assert summary["exit_code"] == 2
    assert "password in the URL is refused" in summary["error"]["message"]
    assert ":***@" in summary["destination"]


def test_excluded_paths_are_neither_copied_nor_deleted(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (site / "drafts").mkdir()
    (site / "drafts" / "wip.html").write_text("wip")
    (site / "js" / "app.js.map").write_text("{}")
    (target.disk / "stats").mkdir()
    (target.disk / "stats" / "usage.log").write_text("server-side logs")
    (target.disk / ".htaccess").write_text("Options -Indexes\n")
    excludes = ["--exclude", "drafts/", "--exclude", "*.map", "--exclude", "/stats/"]
    excludes += ["--exclude", "/.htaccess"]
    result = run_cli("push", "--delete", *excludes, str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert not (target.disk / "drafts").exists()
    assert not (target.disk / "js" / "app.js.map").exists()
    assert (target.disk / "stats" / "usage.log").read_text() == "server-side logs"
    assert (target.disk / ".htaccess").exists()
    assert (target.disk / "index.html").exists()


def test_file_and_directory_swap_places(target: Target, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "about").mkdir(parents=True)
    (site / "about" / "index.html").write_text("about")
    (site / "feed").write_text("feed as a file")
    assert run_cli("push", str(site), target.url(), target=target).exit_code == 0
    shutil.rmtree(site / "about")
    (site / "about").write_text("now a file")
    (site / "feed").unlink()
    (site / "feed").mkdir()
    (site / "feed" / "index.xml").write_text("<rss/>")
    # Without --delete a directory in the way is a conflict: exit 1, the rest still done.
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 1, result.output
    assert "about: is a directory on the destination; use --delete" in result.output
    assert (target.disk / "feed" / "index.xml").read_text() == "<rss/>"
    result = run_cli("push", "--delete", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk)


def test_ssh_config_alias_and_scp_style(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host website\n  HostName 127.0.0.1\n  Port {target.port}\n  User {target.user}\n"
    )
    result = run_cli("push", "-F", str(config), str(site), "website:public_html", target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk)


def test_symlinks_in_source(target: Target, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "static").mkdir(parents=True)
    (site / "static" / "logo.svg").write_text("<svg/>")
    (site / "logo.svg").symlink_to("static/logo.svg")
    (site / "loop").symlink_to(".")
    outside = tmp_path / "secret.txt"
    outside.write_text("not for the web")
    (site / "leak.txt").symlink_to(outside)
    result = run_cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert (target.disk / "logo.svg").read_text() == "<svg/>"
    assert not (target.disk / "logo.svg").is_symlink()
    assert not (target.disk / "leak.txt").exists()
    assert "leak.txt: symbolic link points outside the tree, skipped" in result.output
    assert not (target.disk / "loop").exists()


def test_swapped_arguments_suggest_the_other_command(tmp_path: Path) -> None:
    result = run_cli("push", "sftp://u@127.0.0.1/x", str(tmp_path), password="x")
    assert result.exit_code == 2
    assert "did you mean pull?" in result.output
    result = run_cli("pull", str(tmp_path), "u@127.0.0.1:x", password="x")
    assert result.exit_code == 2
    assert "did you mean push?" in result.output


def test_a_destination_that_is_a_file_is_refused(target: Target, tmp_path: Path) -> None:
    # The root's stat and its listing go out together; the stat's answer decides.
    site = make_site(tmp_path / "site")
    (target.disk / "page.html").write_text("a page, not a directory\n")
    result = run_cli("push", str(site), target.url(f"{target.path}/page.html"), target=target)
    assert result.exit_code == 5, result.output
    assert "page.html: not a directory" in result.output
    assert (target.disk / "page.html").read_text() == "a page, not a directory\n"
    missing = target.url(f"{target.path}/new/site")  # missing, its parent too: made
    result = run_cli("push", str(site), missing, target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk / "new" / "site")


def test_a_port_in_the_scp_form_is_refused_and_p_works(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    scp = f"{target.user}@{target.host}:{target.port}/{target.path}"
    refused = run_cli("push", str(site), scp, target=target)
    assert refused.exit_code == 2, refused.output
    assert f"sftp://{target.user}@{target.host}:{target.port}/{target.path}" in refused.output
    assert not (target.disk / "index.html").exists()
    scp_form = f"{target.user}@{target.host}:{target.path}"
    result = run_cli("push", "-p", str(target.port), str(site), scp_form, target=target)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, target.disk)


def test_init_refuses_a_port_read_as_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "sftpmirror.toml"
    result = run_cli(
        "init", "--url", "deploy@example.org:2222/public_html", "--source", "public",
        "--config", str(path),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "sftp://deploy@example.org:2222/public_html" in result.output
    assert not path.exists()


def test_a_file_as_the_source_is_said_so(target: Target, tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text("a page\n")
    result = run_cli("push", str(page), target.url(), target=target)
    assert result.exit_code == 2, result.output
    assert f"not a directory: {page}" in result.output
    assert "not found" not in result.output


def test_a_destination_that_cannot_be_made_is_one_error(openssh: Target, tmp_path: Path) -> None:
    """It flooded the screen: 260 lines of cascading failures, then exit 1."""
    site = make_site(tmp_path / "site")
    locked = openssh.disk / "locked"
    locked.mkdir()  # root's: the account cannot make anything in it
    result = run_cli("push", str(site), openssh.url(f"{openssh.path}/locked/www"), target=openssh)
    assert result.exit_code == 5, result.output
    assert len(result.stderr.splitlines()) <= 5, result.stderr
    assert "cannot create" in result.stderr
    assert "permission denied" in result.stderr
