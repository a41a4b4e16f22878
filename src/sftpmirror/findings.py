"""The statuses a check reports and how they print: shared by ``doctor`` (client side) and
``sshd check`` (server side), which otherwise share nothing."""

from __future__ import annotations

OK, WARNING, PROBLEM, SKIPPED, INFO = "ok", "warning", "problem", "skipped", "info"

SYMBOLS = {
    OK: "ok     ",
    WARNING: "WARNING",
    PROBLEM: "PROBLEM",
    SKIPPED: "skipped",
    INFO: "info   ",
}
