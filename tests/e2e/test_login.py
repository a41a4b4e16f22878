"""Login against a real OpenSSH sshd: the seed's story, the key cap, keyboard-interactive,
one password attempt, ssh_config, and the diagnosis printed when a login fails."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site, run_cli
from tests.openssh import SshdInfo, running_sshd

pytestmark = pytest.mark.openssh


@pytest.fixture(autouse=True)
def clean_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ~/.ssh keys, config or agent of the machine running the tests leak into a login."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


class Agent:
    """A real ssh-agent holding ``n`` fresh ed25519 keys; ``SSH_AUTH_SOCK`` points at it."""

    def __init__(self, workdir: Path, n: int) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.sock = workdir / "agent.sock"
        self.proc = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(self.sock)], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not self.sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        self.keys: list[Path] = []
        for i in range(n):
            key = workdir / f"agent_key_{i}"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"key{i}@laptop", "-f", key],
                check=True,
            )
            env = dict(os.environ, SSH_AUTH_SOCK=str(self.sock))
            subprocess.run(["ssh-add", "-q", key], check=True, env=env, capture_output=True)
            self.keys.append(key)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


@pytest.fixture
def agent6(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Agent]:
    agent = Agent(tmp_path / "agent", 6)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.sock))
    yield agent
    agent.close()


def failures_in_log(info: SshdInfo) -> list[str]:
    text = info.log.read_text(errors="replace")
    return re.findall(r"Failed (?:password|keyboard-interactive\S*) for", text)


def test_seed_story_password_wins_over_six_agent_keys(
    openssh: Target, sshd: SshdInfo, agent6: Agent, tmp_path: Path
) -> None:
    # The scenario is real: asyncssh with its defaults offers the agent's keys first and the
    # server (MaxAuthTries 6) disconnects before the password is tried, as lftp's ssh did.
    async def plain_asyncssh() -> None:
        async with asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.user,
            password=sshd.password,
            known_hosts=str(sshd.known_hosts),
        ):
            pass

    with pytest.raises(asyncssh.DisconnectError, match="Too many authentication failures"):
        asyncio.run(plain_asyncssh())

    site = make_site(tmp_path / "site")
    result = run_cli("push", "--debug", str(site), openssh.url(), target=openssh)
    assert result.exit_code == 0, result.output
    assert_same_tree(site, openssh.disk)
    assert "offering password" in result.output
    assert "offering publickey" not in result.output


def test_without_a_password_keys_are_capped_under_max_auth_tries(
    openssh: Target, agent6: Agent, tmp_path: Path
) -> None:
    site = make_site(tmp_path / "site")
    result = run_cli("push", str(site), openssh.url(), target=openssh, password="")
    assert result.exit_code == 4, result.output
    assert "Too many authentication failures" not in result.output
    assert "server allows: publickey, password, keyboard-interactive" in result.output
    offered = re.findall(
        r"\d\. publickey  agent key \"key\d@laptop\" ssh-ed25519 SHA256:", result.output
    )
    assert len(offered) == 5
    assert "1 more key(s) left out" in result.output
    assert "fix here: give the password" in result.output
    assert "AuthorizedKeysFile /etc/ssh/authorized_keys/%u" in result.output


def test_too_many_failures_is_explained_with_fixes_on_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = Agent(tmp_path / "agent", 3)
    monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.sock))
    try:
        with running_sshd(tmp_path / "sshd", max_auth_tries=2) as info:
            target = Target.of(info)
            site = make_site(tmp_path / "site")
            result = run_cli("push", str(site), target.url(), target=target, password="")
    finally:
        agent.close()
    assert result.exit_code == 4, result.output
    lines = result.output.splitlines()
    assert lines.pop(0) == "sftpmirror: connecting"  # the plain progress line, then the error
    assert lines[0].startswith("sftpmirror: error: login to sftpmirror-test@127.0.0.1:")
    assert "'Too many authentication failures' after 2 attempt(s)" in lines[0]
    assert "  server allows: publickey, password, keyboard-interactive" in result.output
    assert "fix here: give the password" in result.output
    assert "'Match User sftpmirror-test' then 'AuthenticationMethods password'" in result.output
    assert "raise 'MaxAuthTries'" in result.output


def test_key_only_client_against_password_only_account(tmp_path: Path) -> None:
    key = tmp_path / "deploy_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with running_sshd(tmp_path / "sshd", max_auth_tries=2, auth_methods="password") as info:
        target = Target.of(info)
        site = make_site(tmp_path / "site")
        result = run_cli(
            "push", "-i", str(key), str(site), target.url(), target=target, password=""
        )
    assert result.exit_code == 4, result.output
    assert "server allows: password" in result.output
    assert "nothing: none of our methods (publickey) is allowed by the server" in result.output
    assert "fix here: give the password" in result.output


def test_keyboard_interactive_only_server_takes_the_password(tmp_path: Path) -> None:
    with running_sshd(
        tmp_path / "sshd", password_authentication=False, kbd_interactive=True, pubkey=False
    ) as info:
        target = Target.of(info)
        site = make_site(tmp_path / "site")
        result = run_cli("push", str(site), target.url(), target=target)
        assert result.exit_code == 0, result.output
        assert_same_tree(site, target.disk)
        deadline = time.monotonic() + 5
        while "Accepted keyboard-interactive" not in info.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, info.log.read_text()
            time.sleep(0.05)


def test_wrong_password_is_tried_exactly_once(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    site = make_site(tmp_path / "site")
    before = len(failures_in_log(sshd))
    result = run_cli("push", str(site), openssh.url(), target=openssh, password="Wrong-123")
    assert result.exit_code == 4, result.output
    assert "1. password  → refused" in result.output
    assert "2." not in result.output
    time.sleep(0.5)  # sshd's log lags a little
    assert len(failures_in_log(sshd)) - before == 1


def test_ssh_config_identity_and_known_hosts_are_honoured(
    tmp_path: Path, clean_home: Path, agent6: Agent
) -> None:
    key = tmp_path / "deploy_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    public = Path(f"{key}.pub").read_text()
    with running_sshd(tmp_path / "sshd", authorized_keys=[public]) as info:
        (clean_home / ".ssh" / "config").write_text(
            f"Host website\n  HostName 127.0.0.1\n  Port {info.port}\n  User {info.user}\n"
            f"  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {info.known_hosts}\n"
        )
        site = make_site(tmp_path / "site")
        result = run_cli("push", "--debug", str(site), "website:public_html", password="")
        assert result.exit_code == 0, result.output
        assert_same_tree(site, info.web_root)
    assert result.output.count("offering publickey") == 1
    assert f"key file {key}" in result.output or "deploy_key" in result.output


def test_changed_host_key_shows_both_fingerprints(
    openssh: Target, sshd: SshdInfo, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    algorithm, data = other.export_public_key("openssh").decode().split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {algorithm} {data}\n")
    site = make_site(tmp_path / "site")
    args = ("push", str(site), openssh.url(), "--known-hosts", str(known_hosts))
    result = run_cli(*args, "--accept-new-host-key", password=sshd.password)
    assert result.exit_code == 3, result.output
    assert other.get_fingerprint("sha256") in result.output
    assert any(fp in result.output for fp in sshd.host_key_fingerprints)


def _in_a_terminal(
    args: list[str], answers: list[str], env: dict[str, str], timeout: float = 30
) -> tuple[int, str]:
    """Run ``sftpmirror ARGS`` on a pseudo-terminal of its own; type each answer when a
    password prompt shows. Returns the exit status and everything the terminal showed."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout, stderr and controlling tty
        os.execve(sys.executable, [sys.executable, "-m", "sftpmirror", *args], env)
    shown = b""
    seen = 0  # what was shown up to the last answer
    pending = list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
                if pending and shown[seen:].rstrip().endswith(b"password:"):
                    os.write(fd, pending.pop(0).encode() + b"\n")
                    seen = len(shown)
    finally:
        done, status = os.waitpid(pid, os.WNOHANG)
        if not done:  # still waiting for something: a failure to show, not a hang
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_on_a_terminal_the_password_is_asked_before_any_agent_key(
    agent6: Agent, tmp_path: Path, clean_home: Path
) -> None:
    """The seed's failure on the interactive path: with no password given, 5 agent keys were
    offered before the prompt, and MaxAuthTries 3 cut the login off before it appeared."""
    with running_sshd(tmp_path / "sshd", max_auth_tries=3) as info:
        site = make_site(tmp_path / "site")
        env = {
            "HOME": str(clean_home), "PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(agent6.sock),
        }  # fmt: skip
        url = f"sftp://{info.user}@127.0.0.1:{info.port}/public_html"
        args = ["push", str(site), url, "--known-hosts", str(info.known_hosts)]
        code, shown = _in_a_terminal(args, [info.password], env)
        assert code == 0, shown
        assert f"{info.user}@127.0.0.1's password:" in shown
        assert_same_tree(site, info.web_root)
        log = info.log.read_text(errors="replace")
        assert "Accepted password" in log
        assert "publickey" not in re.sub(r"^.*Connection closed.*$", "", log, flags=re.M)


def test_a_mistyped_password_is_asked_again(
    agent6: Agent, tmp_path: Path, clean_home: Path
) -> None:
    with running_sshd(tmp_path / "sshd", max_auth_tries=6) as info:
        site = make_site(tmp_path / "site")
        env = {
            "HOME": str(clean_home), "PATH": "/usr/bin:/bin", "SSH_AUTH_SOCK": str(agent6.sock),
        }  # fmt: skip
        url = f"sftp://{info.user}@127.0.0.1:{info.port}/public_html"
        args = ["push", str(site), url, "--known-hosts", str(info.known_hosts)]
        code, shown = _in_a_terminal(args, ["Wrong-Password-1", info.password], env)
        assert code == 0, shown
        assert "Permission denied, please try again." in shown
        assert shown.count("password:") == 2
        assert "Accepted password" in info.log.read_text(errors="replace")
        assert_same_tree(site, info.web_root)
