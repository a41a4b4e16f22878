"""Audit an SFTP-only chrooted account's sshd configuration against the filesystem.

Each check is a small function that reads the effective configuration (``sshd_config.py``) and
the account's files and adds findings (status, detail, fix) to an :class:`AuditReport`. The facts
from sshd_config(5) the checks rely on:

* ChrootDirectory: "At session startup sshd(8) checks that all components of the pathname are
  root-owned directories which are not writable by any other user or group. After the chroot,
  sshd(8) changes the working directory to the user's home directory." So the home directory is
  a path *inside* the chroot, and the root-owned chroot root itself is never writable.
* AuthorizedKeysFile: "After expansion, AuthorizedKeysFile is taken to be an absolute path or one
  relative to the user's home directory." Keys are read during authentication, before the chroot
  (which happens "after authentication"), from the real filesystem: a file put *inside* the
  chroot at the path the account sees there is never read. With StrictModes the file and its
  directories (up to the home directory, or to / for a file outside it) must be owned by root or
  the user and not writable by group or others.
* Every rejected key costs one of MaxAuthTries, and sshd disconnects when they are used up.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sftpmirror.errors import UsageError
from sftpmirror.findings import INFO, OK, PROBLEM, SKIPPED, SYMBOLS, WARNING
from sftpmirror.methods import DEFAULT_MAX_KEYS, KBDINT, PASSWORD, PUBLICKEY
from sftpmirror.sshd.config import (
    SSH_DIR,
    Connection,
    Directive,
    EffectiveConfig,
    SshdTestError,
    effective,
    expand_tokens,
    find_sshd,
    from_sshd,
    parse,
)

# internal-sftp's -P/-p take request names as ``sftp-server -Q requests`` lists them, not the
# extension names a client sees: "posix-rename", not "posix-rename@openssh.com".
POSIX_RENAME = "posix-rename"
POSIX_RENAME_EXTENSION = "posix-rename@openssh.com"
SFTP_FLAGS_WITH_ARG = set("dflPpu")
SERIOUS_FORWARDING = ("allowtcpforwarding", "allowstreamlocalforwarding")
MINOR_FORWARDING = ("allowagentforwarding", "x11forwarding", "permittunnel")
TYPICAL_AGENT_KEYS = 6  # a developer's agent and ~/.ssh commonly hold this many
KEYS_OUTSIDE = "/etc/ssh/authorized_keys/%u"
CHECKS = (
    "config", "account", "chroot", "login-directory", "upload-directory", "force-command",
    "sftp-flags", "forwarding", "authorized-keys", "password", "auth-methods", "wasted-tries",
    "max-auth-tries",
)  # fmt: skip


@dataclass(slots=True)
class Finding:
    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass(slots=True)
class Account:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[str, ...]
    password: str | None  # "usable", "locked", "empty", or None when /etc/shadow is unreadable

    @classmethod
    def lookup(cls, name: str) -> Account | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        groups = [g.gr_name for g in grp.getgrall() if name in g.gr_mem]
        with_primary = list(dict.fromkeys([_group_name(entry.pw_gid), *groups]))
        return cls(
            name, entry.pw_uid, entry.pw_gid, entry.pw_dir, tuple(with_primary), _shadow(name)
        )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _shadow(name: str, path: Path = Path("/etc/shadow")) -> str | None:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if fields[0] == name and len(fields) > 1:
            hashed = fields[1]
            if hashed == "":
                return "empty"
            return "locked" if hashed[0] in "!*" else "usable"
    return None


@dataclass(slots=True)
class AuditReport:
    config: str
    user: str
    source: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.status != PROBLEM for f in self.findings)

    def add(self, name: str, status: str, detail: str, fix: str | None = None) -> None:
        self.findings.append(Finding(name, status, detail, fix))

    def ordered(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: CHECKS.index(f.name))

    def statuses(self, name: str) -> set[str]:
        return {f.status for f in self.findings if f.name == name}

    def as_json(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "user": self.user,
            "source": self.source,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.ordered()],
        }


def check(
    path: Path,
    user: str,
    *,
    parser: str = "auto",
    where: Connection | None = None,
    ssh_dir: Path = SSH_DIR,
) -> AuditReport:
    """Audit *user*'s effective configuration in *path* (sshd -T, or the built-in parser)."""
    account = Account.lookup(user)
    base = where or Connection(user)
    groups = account.groups if account else ()
    conn = Connection(user, groups, base.host, base.addr, base.laddr, base.lport)
    directives = parse(path, ssh_dir=ssh_dir)
    notes: list[Finding] = []
    config: EffectiveConfig | None = None
    binary = find_sshd() if parser != "builtin" else None
    if parser == "sshd" and binary is None:
        raise UsageError("sshd is not installed here", hint="use --parser builtin")
    if parser == "auto" and binary is not None and os.geteuid() != 0:
        notes.append(Finding("config", INFO, "not root: sshd -T cannot read the host keys"))
        binary = None
    if binary is not None:
        try:
            config = from_sshd(binary, path, conn)
        except SshdTestError as e:
            notes.append(
                Finding(
                    "config",
                    PROBLEM,
                    f"sshd refuses {path}: {e}",
                    f"{binary} -t -f {path} shows every error; sshd will not (re)start until fixed",
                )
            )
    if config is None:
        config = effective(directives, conn, "the built-in parser")
    report = AuditReport(str(path), user, config.source)
    return audit(report, config, account, notes)


def sftp_accounts(directives: list[Directive]) -> list[str]:
    """Users named (literally, or through a literal group) on Match lines of chrooted or
    ForceCommand blocks: the accounts to check when none is named."""
    names: list[str] = []
    for directive in directives:
        if directive.keyword not in ("chrootdirectory", "forcecommand"):
            continue
        for criteria in directive.conditions:
            pairs = zip(criteria[::2], criteria[1::2], strict=False)
            for criterion, patterns in pairs:
                for pattern in patterns.split(","):
                    if any(c in pattern for c in "*?!"):
                        continue
                    if criterion.lower() == "user":
                        names.append(pattern)
                    elif criterion.lower() == "group":
                        names.extend(_members(pattern))
    return list(dict.fromkeys(names))


def _members(group: str) -> list[str]:
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return []
    primary = [p.pw_name for p in pwd.getpwall() if p.pw_gid == entry.gr_gid]
    return [*entry.gr_mem, *primary]


def audit(
    report: AuditReport, config: EffectiveConfig, account: Account | None, notes: list[Finding]
) -> AuditReport:
    """Run every check for *account* under *config*; *notes* are findings from reading it."""
    report.findings.extend(notes)
    report.add("config", INFO, f"effective settings for {report.user} from {config.source}")
    if account is None:
        report.add(
            "account",
            PROBLEM,
            f"no user {report.user!r} on this machine",
            f"useradd --system --no-create-home --home-dir / --shell /usr/sbin/nologin "
            f"{report.user}",
        )
        return report
    report.add(
        "account",
        INFO,
        f"uid {account.uid}, groups {', '.join(account.groups)}, home {account.home}",
    )
    chroot = _chroot(report, config, account)
    if chroot is not None:
        _login_and_upload(report, chroot, account)
    _force_command(report, config, chroot)
    _forwarding(report, config)
    keys = _authorized_keys(report, config, account, chroot)
    _auth(report, config, account, keys)
    return report


def _path_problems(path: Path) -> list[tuple[Path, str]]:
    """sshd's safely_chroot rule for one path and all its parents: (component, what is wrong)."""
    problems = []
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError as e:
            problems.append((part, f"{part}: {e.strerror}"))
            continue
        if not stat.S_ISDIR(st.st_mode):
            problems.append((part, f"{part} is not a directory"))
        elif st.st_uid != 0:
            problems.append((part, f"{part} is owned by uid {st.st_uid}, not root"))
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append((part, f"{part} is {stat.filemode(st.st_mode)}: group/world-writable"))
    return problems


def _chroot(report: AuditReport, config: EffectiveConfig, account: Account) -> Path | None:
    raw = config.optional("chrootdirectory")
    if raw is None:
        report.add(
            "chroot",
            PROBLEM,
            "no ChrootDirectory: the account sees the whole filesystem over SFTP",
            "in its Match block: ChrootDirectory /srv/sftp/%u (see 'sftpmirror sshd snippet')",
        )
        return None
    path = Path(expand_tokens(raw, user=account.name, home=account.home, uid=account.uid))
    problems = _path_problems(path)
    if problems:
        fixes = [
            f"install -d -o root -g root -m 0755 {part}"
            if not part.is_dir()
            else f"chown root:root {part} && chmod go-w {part}"
            for part, _ in problems
        ]
        report.add(
            "chroot",
            PROBLEM,
            f"ChrootDirectory {path}: sshd closes every session ('bad ownership or modes for "
            "chroot directory'): " + "; ".join(why for _, why in problems),
            "\n".join(fixes),
        )
        return path if path.is_dir() else None
    report.add("chroot", OK, f"{path}: it and its parents are root-owned, not group/world-writable")
    return path


def _writable_by(st: os.stat_result, account: Account) -> bool:
    if st.st_uid == account.uid:
        return bool(st.st_mode & stat.S_IWUSR)
    if _group_name(st.st_gid) in account.groups:
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def inside(chroot: Path, path: str) -> Path:
    """*path* as the account sees it after the chroot, on the real filesystem."""
    return chroot / PurePosixPath(path).relative_to("/") if path.startswith("/") else chroot / path


def _login_and_upload(report: AuditReport, chroot: Path, account: Account) -> None:
    login = inside(chroot, account.home)
    if login.is_dir():
        report.add("login-directory", OK, f"sessions start in {account.home} ({login})")
    else:
        login = chroot
        report.add(
            "login-directory",
            WARNING,
            f"the home directory {account.home} does not exist inside the chroot ({chroot}); "
            "sshd logs 'Could not chdir to home directory' and starts sessions in /",
            f"usermod --home / {account.name}   (the home is a path inside the chroot)",
        )
    try:
        inner = sorted(p for p in login.iterdir() if p.is_dir() and not p.is_symlink())
        writable = [p for p in [login, *inner] if _writable_by(p.stat(), account)]
    except OSError as e:
        report.add("upload-directory", SKIPPED, f"cannot list {login}: {e.strerror}")
        return
    if writable:
        shown = ", ".join("/" + str(p.relative_to(chroot)).strip(".") for p in writable[:4])
        report.add("upload-directory", OK, f"{account.name} can write in {shown}")
    else:
        target = chroot / "public_html"
        report.add(
            "upload-directory",
            PROBLEM,
            f"no directory {account.name} can write to in {login} (the chroot root is root-owned "
            "by necessity): uploads fail with 'permission denied'",
            f"install -d -o {account.name} -g {_group_name(account.gid)} -m 0755 {target}",
        )


def sftp_flags(command: str) -> tuple[dict[str, str], list[str]] | None:
    """The flags of an ``internal-sftp`` command line (None if it is another command)."""
    words = command.split()
    if not words or words[0] != "internal-sftp":
        return None
    flags: dict[str, str] = {}
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        if not word.startswith("-") or len(word) < 2:
            return flags, [word, *rest]
        letter, value = word[1], word[2:]
        if letter in SFTP_FLAGS_WITH_ARG:
            flags[letter] = value or (rest.pop(0) if rest else "")
        else:
            flags[letter] = ""
            if value:
                rest.insert(0, "-" + value)
    return flags, []


def _force_command(report: AuditReport, config: EffectiveConfig, chroot: Path | None) -> None:
    forced = config.optional("forcecommand")
    subsystem = config.subsystems.get("sftp")
    if forced is None:
        report.add(
            "force-command",
            PROBLEM,
            "no ForceCommand: the account may ask for a shell, run commands or another subsystem",
            "in its Match block: ForceCommand internal-sftp",
        )
        command = subsystem
    elif sftp_flags(forced) is None:
        why = " (it would need its binary and libraries inside the chroot)" if chroot else ""
        report.add(
            "force-command",
            PROBLEM,
            f"ForceCommand {forced}: not internal-sftp{why}",
            "ForceCommand internal-sftp",
        )
        command = None
    else:
        report.add("force-command", OK, f"ForceCommand {forced}")
        command = forced
    if command is None:
        return
    parsed = sftp_flags(command)
    if parsed is None:
        report.add("sftp-flags", SKIPPED, f"sftp server is {command}, not internal-sftp")
        return
    flags, _ = parsed
    denied = [name.strip() for name in flags.get("P", "").split(",")]
    allowed = flags.get("p")
    allowed_names = [name.strip() for name in allowed.split(",")] if allowed is not None else None
    extension_named = POSIX_RENAME_EXTENSION in denied + (allowed_names or [])
    if POSIX_RENAME in denied or (allowed_names is not None and POSIX_RENAME not in allowed_names):
        how = f"-P {flags['P']}" if POSIX_RENAME in denied else f"-p {allowed}"
        report.add(
            "sftp-flags",
            PROBLEM,
            f"internal-sftp {how} refuses {POSIX_RENAME}: a replaced file cannot be swapped in "
            "atomically, so deploys are not atomic",
            f"remove {POSIX_RENAME} from -P (or add it to the -p list)",
        )
    elif "R" in flags:
        report.add(
            "sftp-flags",
            PROBLEM,
            "internal-sftp -R: read-only, nothing can be deployed",
            "remove -R",
        )
    elif extension_named:
        report.add(
            "sftp-flags",
            WARNING,
            f"internal-sftp names {POSIX_RENAME_EXTENSION}, which is not a request name: it "
            f"filters nothing (posix-rename still works); the name is {POSIX_RENAME}",
            "see the names with: /usr/lib/openssh/sftp-server -Q requests",
        )
    elif flags:
        shown = " ".join(f"-{k}{' ' + v if v else ''}" for k, v in flags.items())
        report.add("sftp-flags", OK, f"internal-sftp {shown}")
    else:
        report.add("sftp-flags", OK, "internal-sftp with no flags (posix-rename available)")


def _forwarding(report: AuditReport, config: EffectiveConfig) -> None:
    if config.yes("disableforwarding"):
        report.add("forwarding", OK, "DisableForwarding yes")
        return
    serious = [k for k in SERIOUS_FORWARDING if config.enabled(k)]
    minor = [k for k in MINOR_FORWARDING if config.enabled(k)]
    names = {
        "allowtcpforwarding": "AllowTcpForwarding",
        "allowstreamlocalforwarding": "AllowStreamLocalForwarding",
        "allowagentforwarding": "AllowAgentForwarding",
        "x11forwarding": "X11Forwarding",
        "permittunnel": "PermitTunnel",
    }
    on = [f"{names[k]} {config.get(k)}" for k in serious + minor]
    if not on:
        report.add("forwarding", OK, "TCP, stream-local, agent and X11 forwarding and tunnels off")
        return
    status = PROBLEM if serious else WARNING
    reach = " (the account can reach this server's network through it)" if serious else ""
    report.add(
        "forwarding",
        status,
        "on for an SFTP-only account: " + ", ".join(on) + reach,
        "in its Match block: " + ", ".join(f"{names[k]} no" for k in serious + minor),
    )


def _key_lines(path: Path) -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _strict_modes(path: Path, account: Account) -> list[str]:
    """sshd's auth_secure_path for a keys file: file and directories up to the home (or /)."""
    home = Path(account.home)
    problems = []
    under_home = home in path.parents
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid not in (0, account.uid):
            problems.append(f"{part} is owned by uid {st.st_uid}")
        elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problems.append(f"{part} is group/world-writable")
        if under_home and part == home:
            break
    return problems


def _replaceable(path: Path, chroot: Path, account: Account) -> bool:
    """Whether the account could swap *path* over SFTP: it lies in the chroot and the file, or a
    directory between it and the chroot, is the account's to change."""
    if chroot not in path.parents:
        return False
    between = [path, *path.parents[: len(path.parents) - len(chroot.parents) - 1]]
    return any(p.stat().st_uid == account.uid or _writable_by(p.stat(), account) for p in between)


def _authorized_keys(
    report: AuditReport, config: EffectiveConfig, account: Account, chroot: Path | None
) -> int:
    """Check every AuthorizedKeysFile; return how many usable key lines sshd can read."""
    if config.optional("authorizedkeyscommand"):
        report.add("authorized-keys", INFO, "keys come from AuthorizedKeysCommand (not checked)")
        return 1
    names = [n for n in config.words("authorizedkeysfile") if n.lower() != "none"]
    total = 0
    for name in names:
        expanded = expand_tokens(name, user=account.name, home=account.home, uid=account.uid)
        path = Path(expanded) if expanded.startswith("/") else Path(account.home) / expanded
        if path.is_file():
            count = _key_lines(path)
            problems = _strict_modes(path, account) if config.yes("strictmodes") else []
            if problems:
                report.add(
                    "authorized-keys",
                    PROBLEM,
                    f"{path}: ignored under StrictModes: " + "; ".join(problems),
                    f"chown root:root {path}; chmod 644 {path}; and its directories go-w",
                )
                continue
            total += count
            if count and chroot is not None and _replaceable(path, chroot, account):
                report.add(
                    "authorized-keys",
                    WARNING,
                    f"{path}: inside the chroot where {account.name} can replace it over SFTP",
                    f"AuthorizedKeysFile {KEYS_OUTSIDE} (root-owned, outside the chroot)",
                )
            elif count:
                report.add("authorized-keys", OK, f"{path}: {count} key(s)")
            continue
        trapped = inside(chroot, str(path)) if chroot is not None else None
        if trapped is not None and trapped != path and trapped.is_file() and _key_lines(trapped):
            report.add(
                "authorized-keys",
                PROBLEM,
                f"keys were put in {trapped}, but sshd reads {path}: AuthorizedKeysFile is "
                "resolved against the home directory on the real filesystem, before the chroot",
                f"AuthorizedKeysFile {KEYS_OUTSIDE}, and move the keys to "
                f"{expand_tokens(KEYS_OUTSIDE, user=account.name, home='', uid=0)}",
            )
    if total == 0 and not report.statuses("authorized-keys"):
        where = ", ".join(names) or "none"
        detail = f"no keys for {account.name} (AuthorizedKeysFile {where})"
        report.add("authorized-keys", INFO, detail)
    return total


def _completable(config: EffectiveConfig, account: Account, keys: int) -> dict[str, bool]:
    password_ok = account.password != "locked" and (
        account.password != "empty" or config.yes("permitemptypasswords")
    )
    return {
        PUBLICKEY: config.yes("pubkeyauthentication") and keys > 0,
        PASSWORD: config.yes("passwordauthentication") and password_ok,
        # keyboard-interactive has nothing to ask on Linux without PAM
        KBDINT: config.yes("kbdinteractiveauthentication") and config.yes("usepam") and password_ok,
    }


def _method_lists(config: EffectiveConfig) -> list[list[str]] | None:
    value = config.get("authenticationmethods")
    if value.lower() == "any":
        return None
    return [[m.split(":")[0] for m in item.split(",")] for item in value.split()]


def _auth(report: AuditReport, config: EffectiveConfig, account: Account, keys: int) -> None:
    can = _completable(config, account, keys)
    enabled = {
        PUBLICKEY: config.yes("pubkeyauthentication"),
        PASSWORD: config.yes("passwordauthentication"),
        KBDINT: config.yes("kbdinteractiveauthentication"),
    }
    lists = _method_lists(config)
    listed = {m for item in lists for m in item} if lists is not None else set(enabled)
    offered = [m for m in (PUBLICKEY, KBDINT, PASSWORD) if enabled[m] and m in listed]
    _password_consistency(report, config, account, enabled, listed, explicit=lists is not None)
    if lists is None:
        ways = [m for m in offered if can[m]]
    else:
        ways = [",".join(item) for item in lists if all(can.get(m, False) for m in item)]
    detail = f"offered: {', '.join(offered) or 'nothing'}; {account.name} can log in with: "
    if ways:
        report.add("auth-methods", OK, detail + " or ".join(ways))
    else:
        report.add(
            "auth-methods",
            PROBLEM,
            detail + "nothing",
            "give the account a password (passwd) with PasswordAuthentication yes, or keys "
            f"in AuthorizedKeysFile {KEYS_OUTSIDE}",
        )
    tries = config.number("maxauthtries")
    password_way = any(can[m] for m in (PASSWORD, KBDINT) if m in offered)
    if PUBLICKEY in offered and not can[PUBLICKEY] and ways:
        report.add(
            "wasted-tries",
            PROBLEM,
            f"publickey is offered but {account.name} has no key sshd can read: every key a "
            f"client offers is refused and costs one of MaxAuthTries ({tries}), so a client with "
            f"{tries} keys in its agent is cut off ('Too many authentication failures') before "
            "its password is asked",
            "in its Match block: AuthenticationMethods password (keys then are not even tried); "
            f"or give it keys with AuthorizedKeysFile {KEYS_OUTSIDE}",
        )
    elif PUBLICKEY in offered and password_way and tries <= TYPICAL_AGENT_KEYS:
        report.add(
            "max-auth-tries",
            WARNING,
            f"MaxAuthTries {tries} with publickey before password: a client holding {tries} or "
            f"more keys (agent, ~/.ssh) is cut off before its password; sftpmirror offers at most "
            f"{DEFAULT_MAX_KEYS} keys, other clients all of them",
            "for a password account: AuthenticationMethods password in its Match block; "
            "for a key account: AuthenticationMethods publickey",
        )
    else:
        report.add("max-auth-tries", OK, f"MaxAuthTries {tries}")


def _password_consistency(
    report: AuditReport,
    config: EffectiveConfig,
    account: Account,
    enabled: dict[str, bool],
    listed: set[str],
    *,
    explicit: bool,
) -> None:
    pam_kbdint = enabled[KBDINT] and config.yes("usepam") and KBDINT in listed
    password_on = enabled[PASSWORD] and PASSWORD in listed
    if not enabled[PASSWORD] and pam_kbdint and not explicit:
        report.add(
            "password",
            PROBLEM,
            "PasswordAuthentication no, but KbdInteractiveAuthentication yes with UsePAM yes: "
            "passwords are still accepted, through keyboard-interactive",
            "KbdInteractiveAuthentication no as well (or AuthenticationMethods publickey)",
        )
    elif explicit and PASSWORD in listed and not enabled[PASSWORD]:
        report.add(
            "password",
            PROBLEM,
            "AuthenticationMethods names password but PasswordAuthentication is no",
            "PasswordAuthentication yes in the account's Match block",
        )
    elif (password_on or pam_kbdint) and account.password in ("locked", "empty"):
        empty = account.password == "empty" and config.yes("permitemptypasswords")
        report.add(
            "password",
            WARNING if not empty else PROBLEM,
            f"password login is on, but {account.name}'s password is {account.password}"
            + (" and PermitEmptyPasswords is yes" if empty else ""),
            f"passwd {account.name}",
        )
    elif password_on or pam_kbdint:
        state = {"usable": "set", None: "not readable here"}.get(account.password, "?")
        report.add("password", OK, f"password login on; {account.name}'s password is {state}")
    else:
        report.add("password", OK, "password login off")


def render(report: AuditReport) -> str:
    lines = [f"sftpmirror sshd check {report.config} --user {report.user}"]
    for finding in report.ordered():
        lines.append(f"  {SYMBOLS[finding.status]}  {finding.name:<16} {finding.detail}")
        for fix in (finding.fix or "").splitlines():
            lines.append(f"  {'':7}  {'':16}   fix: {fix}")
    lines.append("no problems found" if report.ok else "problems found")
    return "\n".join(lines)
