"""The defaults a user sees in ``--help`` (and the choices it lists), in one module that imports
nothing: the command line declares its flags with them without loading the code that uses them
(``sftpmirror --version`` and ``--help`` stay fast), and that code reads them from here."""

from __future__ import annotations

CONFIG_NAME = "sftpmirror.toml"

# push and pull
DEFAULT_JOBS = 64  # files in flight at once over the one connection
DEFAULT_RECONNECTS = 3  # after a connection lost mid-run; waits 2, 4, 8 s: 14 s in all
DEFAULT_KEEP = 3  # deploys whose replaced and deleted files are kept on the server
DEFAULT_MANIFEST = ".sftpmirror-manifest.json.gz"
DEFAULT_CHMOD = "D755,F644"
PAGE_SUFFIXES = (".html", ".htm", ".xhtml", ".xml", ".rss", ".atom")
# Paths a host puts in a web root that a deploy must not remove unless told to (gitignore style).
DEFAULT_PROTECT = (".well-known/", ".htaccess", ".user.ini", "cgi-bin/")
DEFAULT_TIMEOUT = 30.0  # seconds for the connection, the login and any awaited answer

# sshd check
SSHD_CONFIG = "/etc/ssh/sshd_config"
SSHD_PARSERS = ("auto", "builtin", "sshd")
MATCH_ADDR = "198.51.100.1"  # the client address Match lines are tested with (TEST-NET-2)
MATCH_LADDR = "0.0.0.0"
