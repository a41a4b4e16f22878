"""Permissions on real servers: the default D755,F644, --chmod, --perms, --no-perms, targets."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from sftpmirror.config import CONFIG_NAME
from sftpmirror.engine.chmod import parse_chmod
from sftpmirror.errors import ExitStatus
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, run_cli


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def private_site(root: Path, file_mode: int = 0o600, dir_mode: int = 0o700) -> Path:
    """A build made under umask 077 (or by a generator that writes private files)."""
    (root / "posts" / "one").mkdir(parents=True)
    for rel in ("index.html", "posts/one/index.html", "app.js"):
        (root / rel).write_text(f"{rel}\n")
        (root / rel).chmod(file_mode)
    for rel in ("posts", "posts/one"):
        (root / rel).chmod(dir_mode)
    return root


def push(target: Target, site: Path, *flags: str) -> str:
    result = run_cli("push", "-v", *flags, str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    return result.output


def umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def test_default_makes_a_private_build_web_readable(target: Target, tmp_path: Path) -> None:
    site = private_site(tmp_path / "site")
    push(target, site)
    assert mode(target.disk / "index.html") == 0o644
    assert mode(target.disk / "posts/one/index.html") == 0o644
    assert mode(target.disk / "posts") == 0o755
    assert mode(target.disk / "posts/one") == 0o755
    assert_same_tree(site, target.disk)
    assert "nothing to do" in push(target, site)  # the rules are applied before comparing


def test_chmod_rules_apply_to_the_source_bits(target: Target, tmp_path: Path) -> None:
    site = private_site(tmp_path / "site", 0o666, 0o777)
    push(target, site, "--chmod", "Fgo-w,Dgo-w")
    assert mode(target.disk / "app.js") == 0o644
    assert mode(target.disk / "posts/one") == 0o755
    assert "nothing to do" in push(target, site, "--chmod", "Fgo-w,Dgo-w")
    output = push(target, site, "--chmod", "D750,F640")
    assert "attrs    app.js  (permissions 644 → 640)" in output
    assert mode(target.disk / "app.js") == 0o640
    assert mode(target.disk / "posts") == 0o750
    assert_same_tree(site, target.disk, chmod=parse_chmod("D750,F640"))


def test_perms_keeps_the_source_bits_and_default_fixes_them(target: Target, tmp_path: Path) -> None:
    site = private_site(tmp_path / "site", 0o640, 0o750)
    push(target, site, "--perms")
    assert mode(target.disk / "index.html") == 0o640
    assert mode(target.disk / "posts/one") == 0o750
    assert_same_tree(site, target.disk, chmod=None)
    assert "nothing to do" in push(target, site, "--perms")
    output = push(target, site)
    assert "attrs    index.html  (permissions 640 → 644)" in output
    assert "attrs    posts/one/  (permissions 750 → 755)" in output
    assert mode(target.disk / "index.html") == 0o644


def test_no_perms_sets_nothing_and_compares_nothing(target: Target, tmp_path: Path) -> None:
    site = private_site(tmp_path / "site")
    push(target, site)
    (target.disk / "index.html").chmod(0o604)  # changed on the server: left alone
    (site / "new.html").write_text("new\n")
    (site / "new.html").chmod(0o600)
    (site / "newdir").mkdir(mode=0o700)
    output = push(target, site, "--no-perms")
    assert "attrs" not in output
    assert "copy     new.html" in output
    assert mode(target.disk / "index.html") == 0o604
    # New files and directories get the server's defaults, not the source's 600/700 nor the
    # private mode a file has while it is uploaded.
    assert mode(target.disk / "new.html") == 0o666 & ~umask()
    assert mode(target.disk / "newdir") == 0o777 & ~umask()


def test_pull_applies_the_rules_to_what_it_writes(target: Target, tmp_path: Path) -> None:
    private_site(target.disk)
    if target.kind == "openssh":  # as the account's own uploads would be
        for path in [target.disk, *target.disk.rglob("*")]:
            shutil.chown(path, target.user, target.user)
    dest = tmp_path / "copy"
    result = run_cli("pull", target.url(), str(dest), target=target)
    assert result.exit_code == 0, result.output
    assert mode(dest / "index.html") == 0o644
    assert mode(dest / "posts/one") == 0o755
    assert_same_tree(target.disk, dest)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--no-perms", "--chmod", "D755"), "--no-perms sets no permissions"),
        (("--no-perms", "--perms"), "--no-perms sets no permissions"),
        (("--chmod", "D755,F4755"), "--chmod 'D755,F4755': 'F4755' sets set-id or sticky bits"),
        (("--chmod", "F64x"), "'F64x' is not an octal mode (644) or a chmod clause"),
    ],
)
def test_bad_permission_flags(
    embedded: Target, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    site = private_site(tmp_path / "site")
    result = run_cli("push", *flags, str(site), embedded.url(), target=embedded)
    assert result.exit_code == ExitStatus.USAGE, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]
    assert not (embedded.disk / "index.html").exists()  # nothing was done


def write_config(project: Path, target: Target, extra: str) -> None:
    (project / CONFIG_NAME).write_text(
        "[targets.web]\n"
        f'url = "{target.url()}"\n'
        'source = "site"\n'
        f'known_hosts = "{target.known_hosts}"\n' + extra
    )


def test_target_rules_and_flags_over_them(
    target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_site(tmp_path / "site", 0o666, 0o777)
    write_config(tmp_path, target, 'chmod = "D750,F640"\n')
    monkeypatch.chdir(tmp_path)
    env = ["--password-env", "SFTPMIRROR_PASSWORD"]
    result = run_cli("push", "web", *env, password=target.password)
    assert result.exit_code == 0, result.output
    assert mode(target.disk / "app.js") == 0o640
    assert mode(target.disk / "posts") == 0o750
    result = run_cli("push", "web", "--chmod", "F600", *env, password=target.password)
    assert result.exit_code == 0, result.output
    assert mode(target.disk / "app.js") == 0o600
    assert mode(target.disk / "posts") == 0o777  # F600 leaves directories as built
    # --no-perms on the command line sets aside the target's rules (no conflict)
    result = run_cli("push", "web", "-v", "--no-perms", *env, password=target.password)
    assert result.exit_code == 0, result.output
    assert "attrs" not in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('chmod = "D755,Fu+s"\n', "sftpmirror.toml:5: [targets.web] chmod: 'D755,Fu+s': 'Fu+s'"),
        ("no_perms = true\nperms = true\n", "[targets.web] no_perms: cannot go with perms"),
        ("perms = 1\n", "[targets.web] perms: must be true or false"),
    ],
)
def test_bad_permission_keys(
    embedded: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str
) -> None:
    private_site(tmp_path / "site")
    write_config(tmp_path, embedded, extra)
    monkeypatch.chdir(tmp_path)
    result = run_cli("push", "web", password=embedded.password)
    assert result.exit_code == ExitStatus.USAGE, result.output
    assert message in result.output
