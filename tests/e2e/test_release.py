"""``--release symlink`` (issue 18): each deploy a release beside the live one, unchanged files
hard-linked, made live by one atomic link swap; a rollback is one more swap. Against real
OpenSSH, where the destination ``public_html/www`` is a link in the writable ``public_html``
(a chroot's root is not writable, so the link cannot be the web root itself there)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sftpmirror.engine.deploy import SUFFIX
from sftpmirror.engine.release import MANIFESTS
from tests.conftest import Target
from tests.e2e.helpers import run_cli
from tests.e2e.test_doctor import by_name, doctor_json
from tests.e2e.test_rollback import V1, V2, V3, _write

LINK = "www"


def _url(target: Target) -> str:
    return target.url(f"{target.path}/{LINK}")


def _live(target: Target) -> str:
    """The release the link names (it must be a relative link into the releases)."""
    made = os.readlink(target.disk / LINK)
    assert made.startswith(f"{LINK}{SUFFIX}/"), made
    return made.rpartition("/")[2]


def _site(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".sftpmirror")
    }


def _inodes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def _push(target: Target, site: Path, *extra: str) -> dict[str, object]:
    result = run_cli("push", "--json", "--release", "symlink", "--delete", *extra, str(site),
                     _url(target), target=target)  # fmt: skip
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_releases_go_live_by_a_link_swap_and_roll_back_by_one(
    openssh: Target, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    releases = openssh.disk / f"{LINK}{SUFFIX}"
    ids: list[str] = []
    inodes: list[dict[str, int]] = []
    for version in (V1, V2, V3):
        out = _push(openssh, _write(site, version))
        ids.append(_live(openssh))
        assert out["release"] == f"{LINK}{SUFFIX}/{ids[-1]}"
        assert _site(openssh.disk / LINK) == version  # what a visitor sees, through the link
        inodes.append(_inodes(releases / ids[-1]))
    assert len(set(ids)) == 3
    # The live release is never written: v1's release is still v1, byte for byte.
    assert _site(releases / ids[0]) == V1
    # An unchanged file is the live release's own file, linked (no upload); a changed one new.
    assert inodes[1]["css/site.css"] == inodes[0]["css/site.css"]
    assert inodes[1]["new.html"] == inodes[2]["new.html"]
    assert inodes[1]["index.html"] != inodes[0]["index.html"]
    # Each release has its own manifest beside the releases, none inside a release.
    assert {p.name for p in (releases / MANIFESTS).iterdir()} == {f"{i}.json.gz" for i in ids}
    assert not list((releases / ids[2]).glob(".sftpmirror*"))

    first = run_cli("rollback", "--json", _url(openssh), target=openssh)
    assert first.exit_code == 0, first.output
    assert _live(openssh) == ids[1]
    assert _site(openssh.disk / LINK) == V2
    assert _inodes(releases / ids[1]) == inodes[1]  # nothing uploaded, nothing touched
    assert json.loads(first.stdout)["release"] == f"{LINK}{SUFFIX}/{ids[1]}"

    second = run_cli("rollback", _url(openssh), target=openssh)
    assert second.exit_code == 0, second.output
    assert _live(openssh) == ids[0]
    assert _site(openssh.disk / LINK) == V1

    listed = run_cli("history", "--json", _url(openssh), target=openssh)
    assert listed.exit_code == 0, listed.output
    deploys = json.loads(listed.stdout)["deploys"]
    assert [d["kind"] for d in deploys] == ["deploy"] * 3 + ["rollback"] * 2
    assert [d["live"] for d in deploys] == [*ids, ids[1], ids[0]]

    # A push after a rollback builds on the live release (v1), by its own manifest.
    out = _push(openssh, _write(site, V3))
    assert _site(openssh.disk / LINK) == V3
    assert out["done"] == {"copy": 2, "replace": 2, "delete": 1, "mkdir": 1}, out["done"]


def test_old_releases_are_pruned_and_a_dry_run_changes_nothing(
    openssh: Target, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    releases = openssh.disk / f"{LINK}{SUFFIX}"
    ids = []
    for n in range(4):
        _push(
            openssh, _write(site, {"index.html": f"<p>{n}</p>\n", "a/b.html": "b\n"}), "--keep", "2"
        )
        ids.append(_live(openssh))
    kept = {p.name for p in releases.iterdir() if not p.name.startswith(".")}
    assert kept == set(ids[-2:])
    assert {p.name for p in (releases / MANIFESTS).iterdir()} == {f"{i}.json.gz" for i in kept}

    before = {p: p.stat().st_ino for p in openssh.disk.rglob("*")}
    changed = _write(site, {"index.html": "new\n"})
    result = run_cli("push", "--dry-run", "--release", "symlink", str(changed), _url(openssh),
                     target=openssh)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "replace  index.html" in result.output
    assert {p: p.stat().st_ino for p in openssh.disk.rglob("*")} == before


def test_a_directory_is_not_taken_for_a_release_link(openssh: Target, tmp_path: Path) -> None:
    (openssh.disk / LINK).mkdir()
    (openssh.disk / LINK / "index.html").write_text("theirs\n")
    result = run_cli("push", "--release", "symlink", str(_write(tmp_path / "s", V1)),
                     _url(openssh), target=openssh)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "www is a directory: --release symlink needs it to be a symbolic link" in result.output
    assert (openssh.disk / LINK / "index.html").read_text() == "theirs\n"
    assert not (openssh.disk / f"{LINK}{SUFFIX}").exists()


def test_a_push_in_place_into_a_release_link_is_refused(openssh: Target, tmp_path: Path) -> None:
    """The live release is never written: a push without --release symlink to a destination
    that is our release link stops before it changes anything (exit 2)."""
    site = _write(tmp_path / "s", V1)
    _push(openssh, site)
    live = _live(openssh)
    before = {p: p.stat().st_ino for p in openssh.disk.rglob("*")}
    result = run_cli("push", str(_write(site, V2)), _url(openssh), target=openssh)
    assert result.exit_code == 2, result.output
    assert f"is the link to release {live} (--release symlink)" in result.output
    assert {p: p.stat().st_ino for p in openssh.disk.rglob("*")} == before


def test_doctor_says_whether_releases_can_be_used(openssh: Target, tmp_path: Path) -> None:
    _, report = doctor_json(_url(openssh), target=openssh)
    release = by_name(report)["release"]
    assert release["status"] == "ok", release
    assert (
        "--release symlink can be used: links made and renamed as links beside www"
        in (release["detail"])
    )
    _push(openssh, _write(tmp_path / "s", V1))
    _, report = doctor_json(_url(openssh), target=openssh)
    assert by_name(report)["release"]["detail"].startswith(
        f"www links to release {_live(openssh)}, 1 deploy(s) recorded; "
    )
    # The chroot's root is not writable: public_html itself cannot be the link.
    _, report = doctor_json(openssh.url(), target=openssh)
    release = by_name(report)["release"]
    assert release["status"] == "info"
    assert (
        "--release symlink cannot be used: cannot make a symbolic link beside public_html"
        in (release["detail"])
    )
    assert [p.name for p in openssh.disk.parent.iterdir() if p.name.startswith(".sftpmirror")] == []


def test_a_web_root_in_an_unwritable_directory_is_refused(openssh: Target, tmp_path: Path) -> None:
    """The chroot's root cannot be written: no link can go there. One line, exit 5 (it was an
    internal error, exit 70), nothing made."""
    before = sorted(p.name for p in openssh.disk.parent.iterdir())
    result = run_cli("push", "--release", "symlink", str(_write(tmp_path / "s", V1)),
                     openssh.url("site"), target=openssh)  # fmt: skip
    assert result.exit_code == 5, result.output
    assert "cannot make a symbolic link beside site: permission denied" in result.output
    assert sorted(p.name for p in openssh.disk.parent.iterdir()) == before


def test_release_is_a_push_option(openssh: Target, tmp_path: Path) -> None:
    """A pull reads whatever the destination links to: --release is refused there (exit 2),
    and a target's ``release`` key, like its ``delete``, is a push's only."""
    result = run_cli("pull", "--release", "symlink", _url(openssh), str(tmp_path / "out"),
                     target=openssh)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "--release is a push's" in result.output
    assert not (tmp_path / "out").exists()
