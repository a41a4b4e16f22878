"""SSH authentication method names (RFC 4252) and the cap on keys offered before a password:
shared by the client's login and the server-side ``sshd check``."""

from __future__ import annotations

PUBLICKEY = "publickey"
PASSWORD = "password"
KBDINT = "keyboard-interactive"
METHODS = (PUBLICKEY, KBDINT, PASSWORD)
PASSWORD_METHODS = (PASSWORD, KBDINT)
# One less than OpenSSH's default MaxAuthTries (6), so a password still gets its turn.
DEFAULT_MAX_KEYS = 5
