"""Named targets from sftpmirror.toml, password sources and `init`, against real servers."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import sftpmirror
from sftpmirror.cli.app import main
from sftpmirror.config import CONFIG_NAME, load_config
from sftpmirror.errors import ExitStatus
from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site

NO_PASSWORD_ENV: dict[str, str | None] = {"SFTPMIRROR_PASSWORD": None, "SSHPASS": None}


def write_config(
    directory: Path, target: Target, extra: str = "", name: str = "production"
) -> Path:
    path = directory / CONFIG_NAME
    path.write_text(
        f"[targets.{name}]\n"
        f'url = "{target.url()}"\n'
        'source = "site"\n'
        f'known_hosts = "{target.known_hosts}"\n' + extra
    )
    return path


def cli(*args: str, env: Mapping[str, str | None] | None = None) -> Result:
    """In-process; no password in the environment unless ``env`` puts one there."""
    environ = {**NO_PASSWORD_ENV, **(env or {})}
    return CliRunner().invoke(main, list(args), env=environ, catch_exceptions=False)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site's directory with site/ in it, and the current directory a sub-directory of it."""
    make_site(tmp_path / "site")
    (tmp_path / "content").mkdir()
    monkeypatch.chdir(tmp_path / "content")  # the config is found by walking up
    return tmp_path


def test_minimal_target_pushes(target: Target, project: Path) -> None:
    write_config(project, target)
    result = cli("push", "production", env={"SFTPMIRROR_PASSWORD": target.password})
    assert result.exit_code == 0, result.output
    assert_same_tree(project / "site", target.disk)
    # With one target, its name is not needed.
    (project / "site" / "index.html").write_bytes(b"<html>changed</html>\n")
    result = cli("push", "-v", env={"SFTPMIRROR_PASSWORD": target.password})
    assert result.exit_code == 0, result.output
    assert "replace  index.html" in result.output
    assert (target.disk / "index.html").read_bytes() == b"<html>changed</html>\n"


def test_flags_win_over_the_target_and_excludes_add_up(target: Target, project: Path) -> None:
    write_config(project, target, 'delete = true\ndelete_foreign = true\nexclude = ["*.jpg"]\n')
    env = {"SFTPMIRROR_PASSWORD": target.password}
    (target.disk / "old.html").write_bytes(b"old\n")
    result = cli("push", "--no-delete", "--exclude", "js/", "production", env=env)
    assert result.exit_code == 0, result.output
    assert (target.disk / "old.html").exists()  # --no-delete won over delete = true
    assert not (target.disk / "js").exists()  # the flag's exclude …
    assert not (target.disk / "posts" / "hello-world" / "cover.jpg").exists()  # … and the target's
    result = cli("push", "production", env=env)
    assert result.exit_code == 0, result.output
    assert not (target.disk / "old.html").exists()  # the target's delete = true
    assert (target.disk / "js" / "app.js").exists()


@pytest.mark.parametrize("source", ["password_env", "password_file", "password_command", "sshpass"])
def test_password_sources(target: Target, project: Path, source: str) -> None:
    pwfile = project / "pw"
    pwfile.write_text(target.password + "\n")
    pwfile.chmod(0o600)
    extra, env = {
        "password_env": ('password_env = "PROD_PW"\n', {"PROD_PW": target.password}),
        "password_file": ('password_file = "pw"\n', {}),
        "password_command": (f'password_command = "cat {pwfile}"\n', {}),
        "sshpass": ("", {"SSHPASS": target.password}),
    }[source]
    write_config(project, target, extra)
    result = cli("push", "--json", "production", env={**NO_PASSWORD_ENV, **env})
    assert result.exit_code == 0, result.output
    assert (target.disk / "index.html").exists()
    assert target.password not in result.output


def test_password_flag_sets_aside_the_targets_source(target: Target, project: Path) -> None:
    write_config(project, target, 'password_command = "exit 9"\n')
    env = {**NO_PASSWORD_ENV, "MY_PW": target.password}
    result = cli("push", "production", env=env)
    assert result.exit_code == ExitStatus.USAGE
    assert "password command 'exit 9' exited with status 9" in result.output
    result = cli("push", "--password-env", "MY_PW", "production", env=env)
    assert result.exit_code == 0, result.output


def test_password_file_open_to_others_is_refused_before_connecting(
    target: Target, project: Path
) -> None:
    (project / "pw").write_text(target.password)
    (project / "pw").chmod(0o644)
    write_config(project, target, 'password_file = "pw"\n')
    result = cli("push", "production")
    assert result.exit_code == ExitStatus.USAGE
    assert "open to group or others (mode 644); run: chmod 600" in result.output
    assert "connecting" not in result.output
    assert not (target.disk / "index.html").exists()


def test_pull_a_target(target: Target, project: Path) -> None:
    write_config(project, target)
    env = {"SFTPMIRROR_PASSWORD": target.password}
    assert cli("push", "production", env=env).exit_code == 0
    result = cli("pull", "production", str(project / "backup"), env=env)
    assert result.exit_code == 0, result.output
    assert_same_tree(project / "site", project / "backup")


def test_config_flag_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli("push", "production")
    assert result.exit_code == ExitStatus.USAGE
    assert f"no {CONFIG_NAME} here or in a parent directory" in result.output
    assert "sftpmirror init" in result.output

    bad = tmp_path / "deploy.toml"
    bad.write_text('[targets.production]\nurl = "sftp://h/x"\nsource = "p"\njobs = 0\n')
    result = cli("push", "--config", str(bad), "production")
    assert result.exit_code == ExitStatus.USAGE
    assert f"{bad}:4: [targets.production] jobs: must be between 1 and 256" in result.output

    bad.write_text('[targets.production]\nurl = "sftp://h/x"\nsource = "p"\n')
    result = cli("push", "--config", str(bad), "staging")
    assert result.exit_code == ExitStatus.USAGE
    assert "no target 'staging' (targets: production)" in result.output


def test_init_writes_a_file_that_loads_and_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_site").mkdir()
    result = cli("init")  # not a terminal: asks nothing
    assert result.exit_code == 0, result.output
    target = load_config(tmp_path / CONFIG_NAME).target("production")
    assert target.source == tmp_path / "_site"  # Jekyll's output, found
    assert target.url == "sftp://user@example.org/public_html"
    before = (tmp_path / CONFIG_NAME).read_text()
    result = cli("init", "--url", "sftp://me@h/x")
    assert result.exit_code == ExitStatus.USAGE
    assert "exists; not overwriting it (use --force)" in result.output
    assert (tmp_path / CONFIG_NAME).read_text() == before
    result = cli("init", "--force", "--target", "staging", "--url", "me@h:x", "--source", "out")
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / CONFIG_NAME).target(None).url == "me@h:x"
    result = cli("init", "--force", "--url", "sftp://[bad")
    assert result.exit_code == ExitStatus.USAGE


def _pty_run(args: list[str], cwd: Path, answers: list[bytes]) -> tuple[int, str]:
    """Run sftpmirror on a pseudo-terminal, answering each prompt as it shows up."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sftpmirror", *args],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, cwd=cwd,
        env={**os.environ, "TERM": "dumb"},
    )  # fmt: skip
    os.close(child_fd)
    output = b""
    pending = list(answers)
    while True:
        ready, _, _ = select.select([main_fd], [], [], 20)
        if not ready:
            break
        try:
            data = os.read(main_fd, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
        if pending and output.rstrip().endswith((b":", b"]:")):
            os.write(main_fd, pending.pop(0))
    os.close(main_fd)
    return proc.wait(timeout=20), output.decode(errors="replace")


def test_init_asks_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    status, output = _pty_run(["init"], tmp_path, [b"deploy@example.net:www\r", b"\r", b"\r"])
    assert status == 0, output
    assert "Server URL" in output
    assert "Directory to publish [site]" in output  # MkDocs' output, offered as the default
    assert "How does this account log in? (password, key) [password]" in output
    target = load_config(tmp_path / CONFIG_NAME).target("production")
    assert target.url == "deploy@example.net:www"
    assert target.source == tmp_path / "site"
    assert target.values["auth_methods"] == "password"  # recorded: no key is ever offered


def test_init_records_a_key_when_the_account_uses_one(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    answers = [b"deploy@example.net:www\r", b"\r", b"key\r", b"~/.ssh/deploy_ed25519\r"]
    status, output = _pty_run(["init"], tmp_path, answers)
    assert status == 0, output
    target = load_config(tmp_path / CONFIG_NAME).target("production")
    assert target.values["identities"] == (Path("~/.ssh/deploy_ed25519").expanduser(),)


def test_shell_completion_offers_target_names(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text(
        '[targets.production]\nurl = "h:x"\nsource = "p"\n'
        '[targets.preview]\nurl = "h:y"\nsource = "p"\n'
        '[targets.staging]\nurl = "h:z"\nsource = "p"\n'
    )
    env = {
        **os.environ,
        "_SFTPMIRROR_COMPLETE": "bash_complete",
        "COMP_WORDS": "sftpmirror push pr",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-c", "from sftpmirror.cli.app import main; main(prog_name='sftpmirror')"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.stdout.split() == ["plain,production", "plain,preview"], done.stderr


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(main), ids=" ".join)
def test_every_command_has_examples_in_its_help(command: tuple[str, ...]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"sftpmirror {' '.join(command)} " in result.output.split("Examples:")[1]


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output == f"sftpmirror, version {sftpmirror.__version__}\n"
