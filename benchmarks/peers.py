"""The tools being compared, and exactly how each one is invoked.

Every tool gets the same endpoint (127.0.0.1, a port that is either sshd's or
the latency proxy's, the chrooted account, a known_hosts file for that port)
and the same local directory.  A push must make the remote ``public_html`` a
copy of the directory; a pull must make the directory a copy of ``public_html``.
Passwords travel in environment variables, never on a command line.

sftpmirror runs with ``PYTHONPATH`` set to this repository's ``src`` (ahead of
any other entry), so the code measured is the code beside this harness even
when the interpreter's environment has another checkout installed (a git
worktree run with the main checkout's venv).
"""

from __future__ import annotations

import contextlib
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
    "PULL_SCENARIOS",
    "PUSH_SCENARIOS",
    "SCALING_TOOLS",
    "TOOLS",
    "Command",
    "Endpoint",
    "Tool",
    "install_peers",
    "sftpmirror_env",
    "sftpmirror_module",
    "tool_version",
]

PUSH_SCENARIOS = frozenset({"initial", "nochange", "nochange-cold", "rebuild"})
PULL_SCENARIOS = frozenset({"pull-initial", "pull-nochange"})
ALL_SCENARIOS = PUSH_SCENARIOS | PULL_SCENARIOS | {"bigfile"}
#: The tools of the scaling table (issue 19): sftpmirror and rclone with and without -T32.
SCALING_TOOLS = ("sftpmirror", "rclone", "rclone-t32")

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

    def with_env(self, extra: Mapping[str, str]) -> Command:
        """The same command with *extra* added to its environment."""
        return Command(self.argv, self.env | dict(extra), self.secret_env)

    def display(self) -> str:
        """Shell-like rendering with secret values masked."""
        env = " ".join(
            f"{key}={'***' if key in self.secret_env else shlex.quote(value)}"
            for key, value in sorted(self.env.items())
        )
        return f"{env} {shlex.join(self.argv)}".strip()


Builder = Callable[[Endpoint, Path, Path], Command]
"""(endpoint, local directory, per-tool scratch directory) -> command.

For a push the local directory is the source; for a pull it is the destination."""


@dataclass(frozen=True)
class Tool:
    name: str
    label: str
    program: str
    build: Builder
    scenarios: frozenset[str]
    description: str
    pull: Builder | None = None
    pull_description: str = ""
    #: keeps a local hash cache (``SFTPMIRROR_CACHE_DIR``) whose state the harness manages
    hash_cache: bool = False

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


def sftpmirror_env() -> dict[str, str]:
    """``PYTHONPATH`` with this repository's ``src`` first (empty if there is no ``src``)."""
    src = _REPO_ROOT / "src"
    if not (src / "sftpmirror").is_dir():
        return {}
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
    return {"PYTHONPATH": os.pathsep.join([str(src), *rest])}


def sftpmirror_python() -> str:
    """The interpreter that runs the ``sftpmirror`` console script (its ``#!`` line)."""
    script = find_program("sftpmirror")
    if script is not None:
        with contextlib.suppress(OSError), open(script, "rb") as f:
            first = f.readline()
            if first.startswith(b"#!"):
                interpreter = first[2:].decode(errors="replace").strip().split()
                if len(interpreter) == 1 and os.access(interpreter[0], os.X_OK):
                    return interpreter[0]
    return sys.executable


def sftpmirror_module(env: Mapping[str, str]) -> str:
    """Where ``import sftpmirror`` resolves for the console script's interpreter with *env*."""
    out = subprocess.run(
        [sftpmirror_python(), "-c", "import sftpmirror; print(sftpmirror.__file__)"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    return lines[-1] if out.returncode == 0 and lines else f"(import failed: {out.stderr.strip()})"


def _sftpmirror_url(endpoint: Endpoint) -> str:
    return f"sftp://{endpoint.user}@{endpoint.host}:{endpoint.port}/{endpoint.remote_dir}"


def _sftpmirror(endpoint: Endpoint, source: Path, scratch: Path) -> Command:
    return Command(
        argv=[
            _require("sftpmirror"),
            "push",
            "--delete",
            str(source),
            _sftpmirror_url(endpoint),
            "--known-hosts",
            str(endpoint.known_hosts),
        ],
        env={"SFTPMIRROR_PASSWORD": endpoint.password, **sftpmirror_env()},
        secret_env=frozenset({"SFTPMIRROR_PASSWORD"}),
    )


def _sftpmirror_pull(endpoint: Endpoint, target: Path, scratch: Path) -> Command:
    return Command(
        argv=[
            _require("sftpmirror"),
            "pull",
            _sftpmirror_url(endpoint),
            str(target),
            "--known-hosts",
            str(endpoint.known_hosts),
        ],
        env={"SFTPMIRROR_PASSWORD": endpoint.password, **sftpmirror_env()},
        secret_env=frozenset({"SFTPMIRROR_PASSWORD"}),
    )


# --------------------------------------------------------------------------
# lftp
# --------------------------------------------------------------------------


def _lftp(parallel: int | None, *, pull: bool = False) -> Builder:
    """lftp ``mirror -Rev`` (push: reverse, delete, verbose) or ``mirror -v`` (pull)."""

    def build(endpoint: Endpoint, local: Path, scratch: Path) -> Command:
        ssh = (
            f"ssh -a -x -o UserKnownHostsFile={_safe(endpoint.known_hosts)} "
            "-o StrictHostKeyChecking=yes -o UpdateHostKeys=no "
            "-o PreferredAuthentications=password -o PubkeyAuthentication=no"
        )
        mirror = ("mirror -v" if pull else "mirror -Rev") + (
            f" --parallel={parallel}" if parallel else ""
        )
        script = "; ".join(
            [
                "set cmd:fail-exit yes",
                "set net:max-retries 2",
                f"set sftp:connect-program '{ssh}'",
                f"open --env-password -u {endpoint.user} -p {endpoint.port} sftp://{endpoint.host}",
                f"lcd {_safe(local)}",
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


def _rclone(fast: bool, *, pull: bool = False) -> Builder:
    """``rclone sync LOCAL bench:public_html`` (push) or ``rclone copy bench:public_html LOCAL``
    (pull), the same remote settings both ways."""

    def build(endpoint: Endpoint, local: Path, scratch: Path) -> Command:
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
        remote = f"bench:{endpoint.remote_dir}"
        if pull:
            argv = [_require("rclone"), "copy", remote, str(local)]
        else:
            argv = [_require("rclone"), "sync", str(local), remote]
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
            _sftpmirror_pull,
            "sftpmirror pull (defaults: --jobs 64, no --delete)",
            hash_cache=True,
        ),
        Tool(
            "lftp",
            "lftp",
            "lftp",
            _lftp(None),
            ALL_SCENARIOS,
            "lftp mirror -Rev",
            _lftp(None, pull=True),
            "lftp mirror -v",
        ),
        Tool(
            "lftp-p8",
            "lftp -P8",
            "lftp",
            _lftp(8),
            ALL_SCENARIOS,
            "lftp mirror -Rev --parallel=8",
            _lftp(8, pull=True),
            "lftp mirror -v --parallel=8",
        ),
        Tool(
            "rclone",
            "rclone",
            "rclone",
            _rclone(False),
            ALL_SCENARIOS,
            "rclone sync",
            _rclone(False, pull=True),
            "rclone copy",
        ),
        Tool(
            "rclone-t32",
            "rclone -T32",
            "rclone",
            _rclone(True),
            ALL_SCENARIOS,
            "rclone sync --transfers 32 --checkers 32",
            _rclone(True, pull=True),
            "rclone copy --transfers 32 --checkers 32",
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
