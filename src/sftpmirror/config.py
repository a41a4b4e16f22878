"""``sftpmirror.toml``: named targets, so a deploy is ``sftpmirror push production``.

Every key of a target is the long name of a command-line flag (``max_delete`` for
``--max-delete``), with the type of that flag, so anything a flag sets a target can set, and a
flag given on the command line wins over the target. Paths are relative to the file's
directory. Unknown keys and bad values are errors naming the file, the line and the key::

    [targets.production]
    url = "sftp://user01@example.org/public_html"
    source = "public"
    delete = true
    exclude = ["*.map", "drafts/"]
    password_env = "PRODUCTION_PASSWORD"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftpmirror.defaults import CONFIG_NAME as CONFIG_NAME
from sftpmirror.engine.chmod import parse_chmod
from sftpmirror.errors import UsageError

Check = Callable[[Any, Path], Any]  # raw TOML value, the file's directory → the flag's value


class _Bad(Exception):
    """A value's type or range is wrong; the message completes 'KEY must be …'."""


def _bool(value: Any, base: Path) -> bool:
    if not isinstance(value, bool):
        raise _Bad("must be true or false")
    return value


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any, base: Path) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("must be a whole number")
        if value < low or (high is not None and value > high):
            raise _Bad(f"must be between {low} and {high}" if high else f"must be at least {low}")
        return value

    return check


def _float(low: float, high: float) -> Check:
    def check(value: Any, base: Path) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad("must be a number")
        if not low <= value <= high:
            raise _Bad(f"must be between {low:g} and {high:g}")
        return float(value)

    return check


def _str(value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad("must be a non-empty string")
    return value


def _strings(value: Any, base: Path) -> tuple[str, ...]:
    """A string or a list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) and x for x in items):
        raise _Bad("must be a string or a list of strings")
    return tuple(items)


def _joined(value: Any, base: Path) -> str:
    """A list of names for a comma-separated flag (``auth``, ``pages_last``)."""
    return ",".join(_strings(value, base))


def _chmod(value: Any, base: Path) -> str:
    """rsync --chmod rules, checked here so a bad one is reported with its line."""
    text = _str(value, base)
    try:
        parse_chmod(text)
    except UsageError as e:
        raise _Bad(e.message.removeprefix("--chmod ")) from None
    return text


def _path(value: Any, base: Path) -> Path:
    return base / Path(_str(value, base)).expanduser()


def _paths(value: Any, base: Path) -> tuple[Path, ...]:
    return tuple(base / Path(x).expanduser() for x in _strings(value, base))


def _release(value: Any, base: Path) -> str:
    if value not in ("inplace", "symlink"):
        raise _Bad('must be "inplace" or "symlink"')
    return str(value)


def _manifest(value: Any, base: Path) -> str | bool:
    """A remote path, or false for no manifest (``--no-manifest``)."""
    if value is False:
        return False
    if isinstance(value, str) and value:
        return value
    raise _Bad("must be a path on the server, or false")


@dataclass(frozen=True, slots=True)
class Key:
    check: Check
    param: str  # the click parameter it sets
    doc: str


#: Target keys: name → how to check it, and which flag it stands for.
KEYS: dict[str, Key] = {
    "url": Key(_str, "remote", "sftp://user@host[:port]/path or user@host:path"),
    "source": Key(_path, "local_dir", "local directory, relative to this file"),
    "delete": Key(_bool, "delete", "push: delete what we deployed and the source dropped"),
    "delete_foreign": Key(_bool, "delete_foreign", "… and what we did not deploy"),
    "protect": Key(_strings, "protect", "never deleted, besides .well-known/, .htaccess…"),
    "exclude": Key(_strings, "excludes", "gitignore-style patterns"),
    "jobs": Key(_int(1, 256), "jobs", "files in flight at once"),
    "chmod": Key(_chmod, "chmod", "modes, rsync --chmod syntax (default D755,F644)"),
    "perms": Key(_bool, "perms", "the source's permission bits as they are"),
    "no_perms": Key(_bool, "no_perms", "set no permission bits (the server's defaults)"),
    "manifest": Key(_manifest, "manifest", "manifest path on the server, or false"),
    "local_manifest": Key(_path, "local_manifest", "keep the manifest in this local file"),
    "verify": Key(_bool, "verify", "hash remote files the manifest cannot vouch for"),
    "pages_last": Key(_joined, "pages_last", "endings uploaded after everything else"),
    "allow_empty_source": Key(_bool, "allow_empty_source", "let an empty source empty the site"),
    "max_delete": Key(_int(0), "max_delete", "refuse to delete more files than this"),
    "max_delete_percent": Key(_float(0, 100), "max_delete_percent", "… or this share"),
    "auth": Key(_joined, "auth_methods", "login methods in order"),
    "password_env": Key(_str, "password_env", "environment variable holding the password"),
    "password_file": Key(_path, "password_file", "file holding the password (mode 600)"),
    "password_command": Key(_str, "password_command", "command printing the password"),
    "identity": Key(_paths, "identities", "private key(s); only these are offered"),
    "max_keys": Key(_int(0, 100), "max_keys", "agent/ssh_config keys offered at most"),
    "known_hosts": Key(_path, "known_hosts", "known_hosts file"),
    "accept_new_host_key": Key(_bool, "accept_new_host_key", "trust a first-seen host key"),
    "ssh_config": Key(_path, "ssh_config", "ssh_config file"),
    "timeout": Key(_float(1, 3600), "timeout", "seconds for connection and login"),
    "reconnects": Key(_int(0, 100), "reconnects", "times a lost connection is made again"),
    "lock_wait": Key(_float(0, 86400), "lock_wait", "seconds to wait for another deploy's lock"),
    "keep": Key(_int(0, 1000), "keep", "deploys whose replaced files are kept (rollback)"),
    "refuse_older": Key(_bool, "refuse_older", "refuse a git commit older than the live one"),
    "release": Key(_release, "release", "symlink: a release per deploy, a link swapped"),
}
REQUIRED = ("url", "source")
PASSWORD_KEYS = ("password_env", "password_file", "password_command")
PERMS_KEYS = ("chmod", "perms", "no_perms")  # one choice: a flag sets aside the target's


@dataclass(frozen=True, slots=True)
class Target:
    """One ``[targets.NAME]`` table, checked: ``values`` maps click parameter → value."""

    name: str
    file: Path
    url: str
    source: Path
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    file: Path
    targets: dict[str, Target]

    def target(self, name: str | None) -> Target:
        """The named target; with no name, the only one there is."""
        names = ", ".join(self.targets) or "none"
        if name is None:
            if len(self.targets) == 1:
                return next(iter(self.targets.values()))
            raise UsageError(f"{self.file}: name a target (targets: {names})")
        try:
            return self.targets[name]
        except KeyError:
            raise UsageError(f"{self.file}: no target {name!r} (targets: {names})") from None


def find_config(start: Path | None = None) -> Path | None:
    """``sftpmirror.toml`` in ``start`` (default: the current directory) or the nearest parent."""
    here = (start or Path.cwd()).absolute()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def load_config(path: Path) -> Config:
    """Read and check the whole file; any problem is a UsageError naming file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{path}: {_toml_error(str(e))}") from None
    lines = _Lines(text, path)
    for key in data:
        if key != "targets":
            raise lines.error(None, key, "unknown key (targets go in [targets.NAME] tables)")
    tables = data.get("targets", {})
    if not isinstance(tables, dict):
        raise lines.error(None, "targets", "must be a table of [targets.NAME] tables")
    targets: dict[str, Target] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise lines.error(None, f"targets.{name}", "must be a [targets.NAME] table")
        targets[name] = _target(name, table, path, lines)
    if not targets:
        raise UsageError(f"{path}: no targets (add a [targets.NAME] table with url and source)")
    return Config(path, targets)


def _target(name: str, table: dict[str, Any], path: Path, lines: _Lines) -> Target:
    base = path.parent
    values: dict[str, Any] = {}
    for key, raw in table.items():
        spec = KEYS.get(key)
        if spec is None:
            close = _close(key)
            hint = f" (did you mean {close}?)" if close else ""
            raise lines.error(name, key, f"unknown key{hint}")
        try:
            values[spec.param] = spec.check(raw, base)
        except _Bad as e:
            raise lines.error(name, key, str(e)) from None
    for key in REQUIRED:
        if KEYS[key].param not in values:
            raise lines.error(name, None, f"{key} is required")
    given = [k for k in PASSWORD_KEYS if KEYS[k].param in values]
    if len(given) > 1:
        raise lines.error(name, given[1], f"give one of {', '.join(PASSWORD_KEYS)}, not several")
    if values.get("no_perms") and (values.get("perms") or "chmod" in values):
        raise lines.error(name, "no_perms", "cannot go with perms or chmod")
    url = values.pop("remote")
    source = values.pop("local_dir")
    return Target(name, path, url, source, values)


def _close(key: str) -> str | None:
    normal = key.replace("-", "_").lower()
    if normal in KEYS:
        return normal
    for known in KEYS:
        if normal.rstrip("s") == known.rstrip("s"):
            return known
    return None


def _toml_error(message: str) -> str:
    """tomllib says 'Invalid value (at line 3, column 7)': put the line first."""
    match = re.search(r"\(at line (\d+), column \d+\)$", message)
    if match:
        return f"line {match[1]}: {message[: match.start()].strip()}"
    return message


class _Lines:
    """Finds the line of a key, for error messages (tomllib keeps no positions)."""

    _HEADER = re.compile(r"^\s*\[\s*targets\s*\.\s*(\"[^\"]*\"|'[^']*'|[\w-]+)\s*\]")
    _KEY = re.compile(r"^\s*(\"[^\"]*\"|'[^']*'|[\w-]+)\s*=")

    def __init__(self, text: str, path: Path) -> None:
        self.lines = text.splitlines()
        self.path = path

    def error(self, target: str | None, key: str | None, message: str) -> UsageError:
        line = self._find(target, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        what = f"[targets.{target}]" if target is not None else ""
        if key is not None:
            what = f"{what} {key}".strip()
        return UsageError(f"{where}: {what}: {message}")

    def _find(self, target: str | None, key: str | None) -> int | None:
        section: str | None = None
        header_line: int | None = None
        for number, line in self._numbered():
            if header := self._HEADER.match(line):
                section = header[1].strip("\"'")
                if section == target:
                    header_line = number
                continue
            if line.lstrip().startswith("["):
                section = None
                continue
            if key is None:
                continue
            match = self._KEY.match(line)
            if match and match[1].strip("\"'") == key and section == target:
                return number
        return header_line

    def _numbered(self) -> Iterator[tuple[int, str]]:
        return ((i + 1, line) for i, line in enumerate(self.lines))


def starter_config(
    name: str, url: str, source: str, auth: str | None = None, identity: str | None = None
) -> str:
    """A commented sftpmirror.toml: one target, and every other key, commented out, with its
    meaning (the same table the checks use, so the two cannot drift apart)."""
    lines = [
        "# sftpmirror.toml: named deploy targets; `sftpmirror push NAME` uses one.",
        "# Keys are the long names of push's flags; a flag given on the command line wins.",
        "# Paths are relative to this file. Never put a password here: use password_env,",
        "# password_file (mode 600) or password_command.",
        "",
        f"[targets.{_toml_key(name)}]",
        f"url = {_toml_string(url)}",
        f"source = {_toml_string(source)}",
        "delete = true                # like lftp mirror -Rev: remove what the build dropped",
        '# password_env = "SFTPMIRROR_PASSWORD"',
    ]
    if auth == "password":
        lines.append(
            'auth = ["password"]          # no key is offered: none can use up MaxAuthTries'
        )
    elif auth == "key" and identity:
        lines.append(f"identity = {_toml_string(identity)}   # only this key is offered")
    recorded = {"auth"} if auth == "password" else {"identity"} if auth == "key" else set()
    examples: dict[str, str] = {
        "exclude": '["*.map", "drafts/"]',
        "delete_foreign": "false",
        "protect": '["uploads/", "robots.txt"]',
        "jobs": "64",
        "chmod": '"D755,F644"',
        "perms": "false",
        "no_perms": "false",
        "manifest": '".sftpmirror-manifest.json.gz"',
        "local_manifest": '".deploy/production.manifest.json.gz"',
        "verify": "false",
        "pages_last": '[".html", ".htm", ".xml", ".json", ".txt"]',
        "allow_empty_source": "false",
        "max_delete": "500",
        "max_delete_percent": "50",
        "auth": '["password"]',
        "password_file": '"~/.config/sftpmirror/production.password"',
        "password_command": '"pass show web/production"',
        "identity": '"~/.ssh/deploy_ed25519"',
        "max_keys": "5",
        "known_hosts": '"known_hosts"',
        "accept_new_host_key": "false",
        "ssh_config": '"~/.ssh/config"',
        "timeout": "30",
        "reconnects": "3",
        "lock_wait": "0",
        "keep": "3",
        "refuse_older": "false",
        "release": '"inplace"',
    }
    for key, example in examples.items():
        if key not in recorded:
            lines.append(f"# {key} = {example}".ljust(48) + f"  # {KEYS[key].doc}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_string(name)
