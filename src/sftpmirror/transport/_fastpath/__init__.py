"""asyncssh's insides, used where its public API costs round trips or CPU: each feature named
with every private it touches in ``surface.py``, and each falls back to the public API when one
of them changed or ``SFTPMIRROR_NO_FASTPATH`` turns it off."""

from sftpmirror.transport._fastpath.surface import FEATURES, SWITCH, enabled, log_status, status

__all__ = ["FEATURES", "SWITCH", "enabled", "log_status", "status"]
