"""A correct ``Match User`` block for an SFTP-only chrooted account, and the commands to build
its chroot: what ``sftpmirror sshd snippet`` prints and ``sftpmirror sshd check`` approves of.

With ``--password`` the account is offered the password alone (``AuthenticationMethods
password``), so a client's agent keys are never tried and cannot use up ``MaxAuthTries``. With
``--keys`` the keys live outside the chroot in a root-owned ``/etc/ssh/authorized_keys/NAME``:
sshd reads them before the chroot, from the real filesystem, and the account cannot change them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from sftpmirror.errors import UsageError

PASSWORD, KEYS = "password", "keys"
KEYS_DIR = "/etc/ssh/authorized_keys"
UPLOAD_DIR = "public_html"
NOLOGIN = "/usr/sbin/nologin"
CONFIG_HEADER = "# --- sshd_config: append at the END of /etc/ssh/sshd_config ---"
COMMANDS_HEADER = "# --- shell, as root: the account and its chroot ---"
_NAME = re.compile(r"[a-z_][a-z0-9_.-]*\$?", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Snippet:
    config: str  # the Match block, ending with a newline
    commands: tuple[str, ...]  # shell lines, comments included

    def render(self) -> str:
        return "\n".join([CONFIG_HEADER, self.config, COMMANDS_HEADER, *self.commands]) + "\n"


def snippet(user: str, root: str, auth: str = PASSWORD, upload: str = UPLOAD_DIR) -> Snippet:
    if not _NAME.fullmatch(user) or len(user) > 32:
        raise UsageError(f"not a valid user name: {user!r}")
    path = PurePosixPath(root)
    if not path.is_absolute() or any(c.isspace() or c in "%\"'" for c in root):
        raise UsageError(
            f"--root must be an absolute path without spaces, quotes or % tokens: {root!r}"
        )
    if not _NAME.fullmatch(upload):
        raise UsageError(f"not a plain directory name: {upload!r}")
    lines = [
        f"Match User {user}",
        f"    ChrootDirectory {path}",
        "    ForceCommand internal-sftp",
        "    AllowTcpForwarding no",
        "    AllowStreamLocalForwarding no",
        "    AllowAgentForwarding no",
        "    X11Forwarding no",
        "    PermitTunnel no",
    ]
    if auth == KEYS:
        lines += [
            "    # keys outside the chroot, root-owned: read before the chroot, never writable",
            f"    AuthorizedKeysFile {KEYS_DIR}/%u",
            "    PubkeyAuthentication yes",
            "    AuthenticationMethods publickey",
        ]
    else:
        lines += [
            "    # the password alone: no key is tried, so none can use up MaxAuthTries",
            "    PasswordAuthentication yes",
            "    AuthenticationMethods password",
        ]
    q = shlex.quote
    group = user
    commands = [
        f"id {q(user)} >/dev/null 2>&1 || useradd --system --user-group --no-create-home "
        f"--home-dir / --shell {NOLOGIN} {q(user)}",
        f"usermod --home / --shell {NOLOGIN} {q(user)}   # home / = the chroot root",
        f"# {path} and every parent must be owned by root and not writable by group or others",
        f"install -d -o root -g root -m 0755 {q(str(path))}",
        f"install -d -o {q(user)} -g {q(group)} -m 0755 {q(str(path / upload))}",
    ]
    if auth == KEYS:
        keys = f"{KEYS_DIR}/{user}"
        commands += [
            f"install -d -o root -g root -m 0755 {KEYS_DIR}",
            f"install -o root -g root -m 0644 /dev/null {q(keys)}   # then add the public keys",
        ]
    else:
        commands.append(f"passwd {q(user)}")
    commands += [
        "sshd -t && systemctl reload ssh   # the unit is sshd on some systems",
        f"sftpmirror sshd check --user {q(user)}",
    ]
    return Snippet("\n".join(lines) + "\n", tuple(commands))
