"""The effective sshd configuration for one connection: ``sshd -T -C``, or our own parser.

sshd_config(5) semantics the built-in parser follows:

* keywords are case-insensitive; ``Keyword value`` or ``Keyword=value``; ``#`` starts a comment;
* "for each keyword, the first obtained value will be used" — in the global section, and among
  the satisfied ``Match`` blocks, whose values override the global ones ("If a keyword appears in
  multiple Match blocks that are satisfied, only the first instance of the keyword is applied");
* ``Include``: glob(7) patterns, "Files without absolute paths are assumed to be in /etc/ssh",
  expanded in lexical order; an Include inside a Match block is conditional, and a Match inside an
  included file ends with that file;
* ``Match`` criteria User, Group, Host, Address, LocalAddress, LocalPort (and All), with the
  ``*``/``?`` wildcards, ``!`` negation and comma lists of ssh_config(5) PATTERNS, CIDR for
  addresses. Every criterion on the line must be satisfied.

Unset keywords read as OpenSSH's compiled-in defaults (``DEFAULTS``), which is also what
``sshd -T`` prints. Values are kept as written, one string per keyword (arguments joined by a
space); ``Subsystem`` is kept per subsystem name.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sftpmirror.defaults import MATCH_ADDR, MATCH_LADDR, SSHD_CONFIG
from sftpmirror.errors import UsageError

DEFAULT_CONFIG = Path(SSHD_CONFIG)
SSH_DIR = Path("/etc/ssh")
MAX_INCLUDE_DEPTH = 16
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")

#: OpenSSH's defaults for the keywords the audit reads (``sshd -T`` on a config that sets none).
DEFAULTS: dict[str, str] = {
    "allowagentforwarding": "yes",
    "allowstreamlocalforwarding": "yes",
    "allowtcpforwarding": "yes",
    "authenticationmethods": "any",
    "authorizedkeyscommand": "none",
    "authorizedkeysfile": ".ssh/authorized_keys .ssh/authorized_keys2",
    "chrootdirectory": "none",
    "disableforwarding": "no",
    "forcecommand": "none",
    "kbdinteractiveauthentication": "yes",
    "maxauthtries": "6",
    "passwordauthentication": "yes",
    "permitemptypasswords": "no",
    "permittunnel": "no",
    "pubkeyauthentication": "yes",
    "strictmodes": "yes",
    "usepam": "no",
    "x11forwarding": "no",
}
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "pubkeyacceptedkeytypes": "pubkeyacceptedalgorithms",
}


@dataclass(frozen=True, slots=True)
class Connection:
    """Who connects, from where: what ``Match`` lines are tested against (``sshd -T -C``)."""

    user: str
    groups: tuple[str, ...] = ()
    host: str = MATCH_ADDR
    addr: str = MATCH_ADDR
    laddr: str = MATCH_LADDR
    lport: int = 22

    def spec(self) -> str:
        return (
            f"user={self.user},host={self.host},addr={self.addr},"
            f"laddr={self.laddr},lport={self.lport}"
        )


@dataclass(frozen=True, slots=True)
class Directive:
    keyword: str  # lower case, aliases resolved
    args: tuple[str, ...]
    origin: str  # file:line
    conditions: tuple[tuple[str, ...], ...] = ()  # the Match lines in force (nested by Include)

    @property
    def value(self) -> str:
        return " ".join(self.args)


@dataclass(slots=True)
class EffectiveConfig:
    """One value per keyword, as sshd would use it for one connection."""

    source: str
    values: dict[str, str] = field(default_factory=dict)
    subsystems: dict[str, str] = field(default_factory=dict)

    def get(self, keyword: str) -> str:
        return self.values.get(keyword, DEFAULTS.get(keyword, ""))

    def optional(self, keyword: str) -> str | None:
        value = self.get(keyword)
        return None if value.lower() in ("", "none") else value

    def yes(self, keyword: str) -> bool:
        return self.get(keyword).lower() == "yes"

    def enabled(self, keyword: str) -> bool:
        """For yes/no/all/local/remote/point-to-point/ethernet keywords: anything but no."""
        return self.get(keyword).lower() not in ("no", "")

    def number(self, keyword: str) -> int:
        try:
            return int(self.get(keyword))
        except ValueError:
            return int(DEFAULTS.get(keyword, "0"))

    def words(self, keyword: str) -> list[str]:
        return split_args(self.get(keyword))

    def set_first(self, keyword: str, value: str) -> None:
        if keyword == "subsystem":
            name, _, command = value.partition(" ")
            self.subsystems.setdefault(name, command.strip())
        else:
            self.values.setdefault(keyword, value)


def split_args(line: str) -> list[str]:
    """Split like sshd's argv_split: whitespace, double/single quotes; a ``#`` word ends it."""
    try:
        words = shlex.split(line, comments=False, posix=True)
    except ValueError as e:
        raise UsageError(f"cannot parse {line!r}: {e}") from None
    for i, word in enumerate(words):
        if word.startswith("#"):
            return words[:i]
    return words


def _parse_line(raw: str) -> tuple[str, list[str]] | None:
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    match = re.match(r"([^\s=]+)\s*(?:=\s*|\s+|$)(.*)", line)
    if match is None:
        return None
    keyword = match.group(1).lower()
    return ALIASES.get(keyword, keyword), split_args(match.group(2))


def parse(path: Path, *, ssh_dir: Path = SSH_DIR) -> list[Directive]:
    """Every directive of *path* and what it Includes, in order, with its Match conditions."""
    return list(_parse_file(path, (), ssh_dir, 0))


def _parse_file(
    path: Path, outer: tuple[tuple[str, ...], ...], ssh_dir: Path, depth: int
) -> Iterator[Directive]:
    if depth > MAX_INCLUDE_DEPTH:
        raise UsageError(f"{path}: Include nested more than {MAX_INCLUDE_DEPTH} deep")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise UsageError(f"cannot read sshd config {path}: {e.strerror or e}") from None
    conditions = outer
    for number, raw in enumerate(text.splitlines(), 1):
        parsed = _parse_line(raw)
        if parsed is None:
            continue
        keyword, args = parsed
        origin = f"{path}:{number}"
        if keyword == "match":
            if not args:
                raise UsageError(f"{origin}: Match without criteria")
            conditions = (*outer, tuple(args))
        elif keyword == "include":
            for pattern in args:
                full = pattern if os.path.isabs(pattern) else str(ssh_dir / pattern)
                for name in sorted(glob.glob(full)):
                    yield from _parse_file(Path(name), conditions, ssh_dir, depth + 1)
        else:
            yield Directive(keyword, tuple(args), origin, conditions)


def effective(directives: list[Directive], conn: Connection, source: str) -> EffectiveConfig:
    """First value wins among the satisfied Match blocks, then in the global section."""
    config = EffectiveConfig(source)
    for directive in directives:
        if directive.conditions and all(matches(c, conn) for c in directive.conditions):
            config.set_first(directive.keyword, directive.value)
    for directive in directives:
        if not directive.conditions:
            config.set_first(directive.keyword, directive.value)
    return config


# --- Match --------------------------------------------------------------------------------------


def _wildcard(text: str, pattern: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def match_list(text: str, patterns: str, *, lower: bool = False) -> int:
    """ssh_config(5) PATTERNS: 1 matched, 0 not, -1 a negated entry matched (which always wins)."""
    if lower:
        text = text.lower()
    found = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        pattern = entry[1:] if negated else entry
        if lower:
            pattern = pattern.lower()
        if _wildcard(text, pattern):
            if negated:
                return -1
            found = 1
    return found


def match_address(addr: str, patterns: str) -> int:
    """Like match_list, with CIDR entries (``10.0.0.0/8``) besides wildcards."""
    found = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        pattern = entry[1:] if negated else entry
        if "/" in pattern:
            try:
                hit = ipaddress.ip_address(addr) in ipaddress.ip_network(pattern)
            except ValueError:
                hit = False
        else:
            hit = _wildcard(addr, pattern)
        if hit:
            if negated:
                return -1
            found = 1
    return found


def _group_match(groups: tuple[str, ...], patterns: str) -> bool:
    found = False
    for group in groups:
        result = match_list(group, patterns)
        if result == -1:
            return False
        found = found or result == 1
    return found


def matches(criteria: tuple[str, ...], conn: Connection) -> bool:
    """Whether one Match line is satisfied by *conn* (every criterion must be)."""
    words = list(criteria)
    if len(words) == 1 and words[0].lower() == "all":
        return True
    while words:
        name = words.pop(0).lower()
        if name == "all":
            continue
        if not words:
            raise UsageError(f"Match {' '.join(criteria)}: {name!r} needs a pattern")
        pattern = words.pop(0)
        if name == "user":
            ok = match_list(conn.user, pattern) == 1
        elif name == "group":
            ok = _group_match(conn.groups, pattern)
        elif name == "host":
            ok = match_list(conn.host, pattern, lower=True) == 1
        elif name == "address":
            ok = match_address(conn.addr, pattern) == 1
        elif name == "localaddress":
            ok = match_address(conn.laddr, pattern) == 1
        elif name == "localport":
            ok = pattern == str(conn.lport)
        elif name == "rdomain":
            ok = False  # no routing domain in the connection spec
        else:
            raise UsageError(f"Match {' '.join(criteria)}: unsupported criterion {name!r}")
        if not ok:
            return False
    return True


# --- tokens -------------------------------------------------------------------------------------


def expand_tokens(value: str, *, user: str, home: str, uid: int) -> str:
    """``%%``, ``%h``, ``%u``, ``%U``: the TOKENS of sshd_config(5) that ChrootDirectory and
    AuthorizedKeysFile accept."""
    table = {"%": "%", "h": home, "u": user, "U": str(uid)}
    out: list[str] = []
    i = 0
    while i < len(value):
        c = value[i]
        if c == "%" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
        elif c == "%":
            raise UsageError(f"unknown token in {value!r} (known: %%, %h, %u, %U)")
        else:
            out.append(c)
            i += 1
    return "".join(out)


# --- sshd -T ------------------------------------------------------------------------------------


def find_sshd() -> str | None:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("sshd")


class SshdTestError(Exception):
    """``sshd -T`` refused the configuration (or could not load it); the message is sshd's."""


def from_sshd(sshd: str, config: Path, conn: Connection) -> EffectiveConfig:
    """What ``sshd -T -f CONFIG -C SPEC`` prints, as an EffectiveConfig."""
    proc = subprocess.run(
        [sshd, "-T", "-f", str(config), "-C", conn.spec()],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        raise SshdTestError("; ".join(lines[:3]) or f"sshd -T exited with {proc.returncode}")
    result = EffectiveConfig("sshd -T")
    for line in proc.stdout.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword:
            result.set_first(keyword.lower(), value.strip())
    return result
