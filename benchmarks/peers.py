"""The tools being compared, and exactly how each one is invoked.

Every tool gets the same endpoint (127.0.0.1, a port that is either sshd's or
the latency proxy's, the chrooted account, a known_hosts file for that port)
and the same local directory, and must make the remote ``public_html`` a copy
of it.  Passwords travel in environment variables, never on a command line.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ALL_SCENARIOS",
    "SITE_SCENARIOS",
    "TOOLS",
    "Command",
    "Endpoint",
    "Tool",
    "install_peers",
    "tool_version",
]

SITE_SCENARIOS = frozenset({"initial", "nochange", "rebuild"})
ALL_SCENARIOS = SITE_SCENARIOS | {"bigfile"}

_SAFE_PATH = re.compile(r"[A-Za-z0-9_./+-]+")
_REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Endpoint:
    """Where to push: host, port (sshd or proxy), account, and the matching known_hosts."""

    host: str
    port: int
    user: str
    password: str
    known_hosts: Path
    remote_dir: str = "public_html"


@dataclass(frozen=True)
class Command:
    """A command line plus the environment variables it needs on top of the base env."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    secret_env: frozenset[str] = frozenset()

    def display(self) -> str:
        """Shell-like rendering with secret values masked."""
        env = " ".join(
            f"{key}={'***' if key in self.secret_env else shlex.quote(value)}"
            for key, value in sorted(self.env.items())
        )
        return f"{env} {shlex.join(self.argv)}".strip()


Builder = Callable[[Endpoint, Path, Path], Command]
"""(endpoint, local source directory, per-tool scratch directory) -> command."""


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    program: str
    build: Builder
    scenarios: frozenset[str]
    description: str

    def executable(self) -> str | None:
        return find_program(self.program)


def find_program(program: str) -> str | None:
    """Absolute path of *program*; sftpmirror is taken from this interpreter's environment."""
    if program == "sftpmirror":
        beside = Path(sys.executable).with_name("sftpmirror")
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    return shutil.which(program)


def _safe(path: Path) -> str:
    """*path* as a string that needs no quoting in lftp or ssh option syntax."""
    text = str(path)
    if not _SAFE_PATH.fullmatch(text):
        raise ValueError(f"path {text!r} would need quoting in lftp's or ssh's option syntax")
    return text


def _require(program: str) -> str:
    found = find_program(program)
    if found is None:
        raise FileNotFoundError(program)
    return found


# --------------------------------------------------------------------------
# sftpmirror
# --------------------------------------------------------------------------


def _sftpmirror(endpoint: Endpoint, source: Path, scratch: Path) -> Command:
    url = f"sftp://{endpoint.user}@{endpoint.host}:{endpoint.port}/{endpoint.remote_dir}"
    return Command(
        argv=[
            _require("sftpmirror"),
            "push",
            "--delete",
            str(source),
            url,
            "--known-hosts",
            str(endpoint.known_hosts),
        ],
        env={"SFTPMIRROR_PASSWORD": endpoint.password},
        secret_env=frozenset({"SFTPMIRROR_PASSWORD"}),
    )


# --------------------------------------------------------------------------
# lftp
# --------------------------------------------------------------------------


def _lftp(parallel: int | None) -> Builder:
    def build(endpoint: Endpoint, source: Path, scratch: Path) -> Command:
        ssh = (
            f"ssh -a -x -o UserKnownHostsFile={_safe(endpoint.known_hosts)} "
            "-o StrictHostKeyChecking=yes -o UpdateHostKeys=no "
            "-o PreferredAuthentications=password -o PubkeyAuthentication=no"
        )
        mirror = "mirror -Rev" + (f" --parallel={parallel}" if parallel else "")
        script = "; ".join(
            [
                "set cmd:fail-exit yes",
                "set net:max-retries 2",
                f"set sftp:connect-program '{ssh}'",
                f"open --env-password -u {endpoint.user} -p {endpoint.port} sftp://{endpoint.host}",
                f"lcd {_safe(source)}",
                f"cd {endpoint.remote_dir}",
                mirror,
            ]
        )
        return Command(
            argv=[_require("lftp"), "-c", script],
            env={"LFTP_PASSWORD": endpoint.password},
            secret_env=frozenset({"LFTP_PASSWORD"}),
        )

    return build


# --------------------------------------------------------------------------
# rclone
# --------------------------------------------------------------------------


@functools.cache
def _rclone_obscure(password: str) -> str:
    """``rclone obscure`` of *password*, passed on stdin (``-``) to keep it off argv."""
    out = subprocess.run(
        [_require("rclone"), "obscure", "-"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _rclone(fast: bool) -> Builder:
    def build(endpoint: Endpoint, source: Path, scratch: Path) -> Command:
        config = scratch / "rclone.conf"
        config.write_text("")  # fresh each run: rclone may persist what it detected
        prefix = "RCLONE_CONFIG_BENCH_"
        env = {
            "RCLONE_CONFIG": str(config),
            f"{prefix}TYPE": "sftp",
            f"{prefix}HOST": endpoint.host,
            f"{prefix}PORT": str(endpoint.port),
            f"{prefix}USER": endpoint.user,
            f"{prefix}PASS": _rclone_obscure(endpoint.password),
            f"{prefix}KNOWN_HOSTS_FILE": str(endpoint.known_hosts),
            # The account is SFTP-only: no shell, no md5sum.  Without these rclone
            # runs "echo"/"md5sum" probes over exec channels (which the forced
            # internal-sftp answers with nonsense) and writes what it guessed into
            # its config file, so the first run would differ from later ones.
            f"{prefix}SHELL_TYPE": "none",
            f"{prefix}DISABLE_HASHCHECK": "true",
        }
        argv = [_require("rclone"), "sync", str(source), f"bench:{endpoint.remote_dir}"]
        if fast:
            argv += ["--transfers", "32", "--checkers", "32"]
        return Command(argv=argv, env=env, secret_env=frozenset({f"{prefix}PASS"}))

    return build


# --------------------------------------------------------------------------
# OpenSSH sftp (single files only)
# --------------------------------------------------------------------------

_ASKPASS = '#!/bin/sh\nprintf "%s\\n" "$BENCH_SFTP_PASSWORD"\n'


def _sftp(endpoint: Endpoint, source: Path, scratch: Path) -> Command:
    askpass = scratch / "askpass"
    askpass.write_text(_ASKPASS)
    askpass.chmod(0o700)
    batch = scratch / "batch"
    puts = [
        f'put "{entry}" "{endpoint.remote_dir}/{entry.name}"'
        for entry in sorted(source.iterdir())
        if entry.is_file()
    ]
    batch.write_text("\n".join(puts) + "\n")
    return Command(
        # BatchMode=no must come before -b: sftp turns -b into "-oBatchMode yes"
        # in argument order and ssh keeps the first value it sees.
        argv=[
            _require("sftp"),
            "-o",
            "BatchMode=no",
            "-b",
            str(batch),
            "-P",
            str(endpoint.port),
            "-o",
            f"UserKnownHostsFile={endpoint.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            f"{endpoint.user}@{endpoint.host}",
        ],
        env={
            "SSH_ASKPASS": str(askpass),
            "SSH_ASKPASS_REQUIRE": "force",
            "BENCH_SFTP_PASSWORD": endpoint.password,
        },
        secret_env=frozenset({"BENCH_SFTP_PASSWORD"}),
    )


# --------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------

TOOLS: Mapping[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool(
            "sftpmirror",
            "sftpmirror",
            "sftpmirror",
            _sftpmirror,
            ALL_SCENARIOS,
            "sftpmirror push --delete (defaults: --jobs 64, remote manifest)",
        ),
        Tool("lftp", "lftp", "lftp", _lftp(None), ALL_SCENARIOS, "lftp mirror -Rev"),
        Tool(
            "lftp-p8",
            "lftp -P8",
            "lftp",
            _lftp(8),
            ALL_SCENARIOS,
            "lftp mirror -Rev --parallel=8",
        ),
        Tool("rclone", "rclone", "rclone", _rclone(False), ALL_SCENARIOS, "rclone sync"),
        Tool(
            "rclone-t32",
            "rclone -T32",
            "rclone",
            _rclone(True),
            ALL_SCENARIOS,
            "rclone sync --transfers 32 --checkers 32",
        ),
        Tool(
            "sftp",
            "sftp",
            "sftp",
            _sftp,
            frozenset({"bigfile"}),
            "OpenSSH sftp -b batch: put FILE",
        ),
    )
}


def tool_version(program: str) -> str:
    """One line identifying the installed version of *program* ("absent" if missing)."""
    if program == "sftpmirror":
        version = importlib.metadata.version("sftpmirror")
        rev = subprocess.run(
            ["git", "-C", str(_REPO_ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return f"sftpmirror {version}" + (f" ({rev})" if rev else "")
    if find_program(program) is None:
        return "absent"
    # sftp has no version flag: report the OpenSSH it belongs to.
    argv = {"lftp": ["lftp", "--version"], "rclone": ["rclone", "version"]}.get(
        program, ["ssh", "-V"] if program in ("sftp", "ssh") else [program, "--version"]
    )
    exe = find_program(argv[0])
    if exe is None:
        return "unknown"
    out = subprocess.run([exe, *argv[1:]], capture_output=True, text=True)
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def install_peers(programs: list[str]) -> None:
    """``apt-get install -y`` the Debian packages of the missing *programs* (lftp, rclone)."""
    packages = sorted({p for p in programs if p in ("lftp", "rclone") and not find_program(p)})
    if not packages:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", *packages]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, check=False)
        subprocess.run(install, env=env, check=True)
