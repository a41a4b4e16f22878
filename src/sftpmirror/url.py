"""Where the remote tree is: ``sftp://user@host:port/path`` or scp-style ``user@host:path``.

Paths follow OpenSSH's ``sftp`` client: ``sftp://host/public_html`` and ``host:public_html`` are
relative to the login directory (what lftp's ``cd public_html`` does); ``sftp://host//srv/www``
and ``host:/srv/www`` are absolute; ``sftp://host/~/x`` is ``x`` in the login directory. The
host may be an alias from ``~/.ssh/config``. A password in the URL is refused: it would sit in
the shell history and in ``ps`` output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from sftpmirror.errors import UsageError

_HOST = re.compile(r"^(?P<host>\[[^\]/@]+\]|[^:/\[\]@]+)(?::(?P<port>[^/]*))?$")
_SCP = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]]+\]|[^:/\[\]@]+):(?P<path>.*)$")


@dataclass(frozen=True, slots=True)
class RemoteSpec:
    host: str
    path: str = ""
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        user = f"{quote(self.user, safe='')}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"sftp://{user}{host}{port}/{quote(self.path, safe='/~')}"


# user:password@ at the start (a password may hold "/"; the URL parser refuses these too).
_USERINFO_PASSWORD = re.compile(r"^(?P<head>[^@/:]*):[^@]*@")


def redact(text: str) -> str:
    """``text`` with any password in its userinfo replaced by ``***`` (for JSON, logs and
    messages: a refused URL must not echo what it refused)."""
    scheme = text[: len("sftp://")] if text.lower().startswith("sftp://") else ""
    rest = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:***@", text[len(scheme) :], count=1)
    return scheme + rest


def is_remote(text: str) -> bool:
    """True for ``sftp://…`` and ``[user@]host:path``; a local path with a colon needs ``./``."""
    if text.lower().startswith("sftp://"):
        return True
    return bool(_SCP.match(text)) and not text.startswith(("/", ".", "~"))


_PASSWORD_REFUSED = (
    "a password in the URL is refused (it would show in ps and shell history); "
    "use --password-file FILE or SFTPMIRROR_PASSWORD"
)
# scp-style whose path starts with a number: "host:2222/www" or "host:2222"
_SCP_PORT = re.compile(r"^([0-9]{1,5})(?:/|$)")
# scp-style with a password: user:password@host:path (else read as host "user")
_SCP_PASSWORD = re.compile(r"^[^@/:]+:[^@]*@[^:/]+:")


def parse_remote(text: str) -> RemoteSpec:
    if text.lower().startswith("sftp://"):
        return _parse_url(text)
    if _SCP_PASSWORD.match(text):
        raise UsageError(_PASSWORD_REFUSED)
    match = _SCP.match(text)
    if not match or text.startswith(("/", ".", "~")):
        raise UsageError(
            f"not a remote location: {redact(text)!r} (expected sftp://user@host/path)"
        )
    if port := _SCP_PORT.match(match["path"]):
        # host:3501/public_html is scp's "directory 3501/public_html", and surely a port meant
        user = f"{match['user']}@" if match["user"] else ""
        rest = match["path"][len(port[0]) :]
        raise UsageError(
            f"{redact(text)!r} reads as the directory {match['path'] or '.'!r} on port 22; "
            f"for port {port[1]} write sftp://{user}{match['host']}:{port[1]}/{rest.lstrip('/')} "
            f"(or -p {port[1]}); for a directory named {port[1]}, write {match['host']}:./"
            f"{match['path']}"
        )
    return RemoteSpec(
        host=_host(match["host"], text), path=_clean(match["path"]), user=match["user"]
    )


def _parse_url(text: str) -> RemoteSpec:
    rest = text[len("sftp://") :]
    authority, slash, raw_path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if (at and ":" in userinfo) or (":" in authority and not at and "@" in raw_path):
        raise UsageError(_PASSWORD_REFUSED)
    match = _HOST.match(hostport)
    if not match:
        raise UsageError("malformed URL: expected sftp://user@host[:port]/path")
    port: int | None = None
    if match["port"]:
        if not re.fullmatch(r"[0-9]{1,5}", match["port"]) or not 0 < int(match["port"]) < 65536:
            raise UsageError(f"bad port {match['port']!r} in the URL")
        port = int(match["port"])
    raw = unquote(slash + raw_path)
    if raw.startswith("//"):
        path = "/" + raw.lstrip("/")
    elif raw.startswith("/~/") or raw == "/~":
        path = raw[3:]
    else:
        path = raw[1:]
    user = unquote(userinfo) or None
    return RemoteSpec(host=_host(match["host"], text), path=_clean(path), user=user, port=port)


def _host(raw: str, text: str) -> str:
    host = raw[1:-1] if raw.startswith("[") else raw
    if not host:
        raise UsageError("no host in the remote location")
    return host


def _clean(path: str) -> str:
    """Drop trailing slashes and ``.`` components; keep a leading ``/``; refuse NUL."""
    if "\0" in path:
        raise UsageError("NUL byte in remote path")
    absolute = path.startswith("/")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    joined = "/".join(parts)
    return "/" + joined if absolute else joined
