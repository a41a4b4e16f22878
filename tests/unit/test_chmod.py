"""rsync --chmod rules: parsing, application, and refusals that name the bad item."""

from __future__ import annotations

import pytest

from sftpmirror.engine.chmod import DEFAULT_CHMOD, DEFAULT_RULES, parse_chmod
from sftpmirror.errors import ExitStatus, UsageError


@pytest.mark.parametrize(
    ("rules", "mode", "is_dir", "expected"),
    [
        (DEFAULT_CHMOD, 0o600, False, 0o644),
        (DEFAULT_CHMOD, 0o700, True, 0o755),
        (DEFAULT_CHMOD, 0o777, False, 0o644),
        ("644", 0o700, True, 0o644),  # no D/F: both kinds
        ("F640", 0o700, True, 0o700),  # F leaves directories alone
        ("D750", 0o600, False, 0o600),
        ("Fgo-w", 0o666, False, 0o644),
        ("go-w", 0o777, True, 0o755),
        ("u+x", 0o600, False, 0o700),
        ("a+r", 0o600, False, 0o644),
        ("+r", 0o200, False, 0o644),  # no who: all
        ("o=", 0o777, False, 0o770),
        ("g=rw", 0o700, False, 0o760),
        ("u=rwX,go=rX", 0o600, False, 0o644),  # X: no x for a file nobody may execute
        ("u=rwX,go=rX", 0o700, False, 0o755),  # … but x for a file someone may
        ("u=rwX,go=rX", 0o600, True, 0o755),  # … and for every directory
        ("D755,F600,Fg+r", 0o777, False, 0o640),  # items apply in order
        (" D755 , F644 ", 0o600, False, 0o644),  # spaces around items
        ("0644", 0o600, False, 0o644),  # four digits, no special bits
    ],
)
def test_rules_apply(rules: str, mode: int, is_dir: bool, expected: int) -> None:
    assert parse_chmod(rules).apply(mode, is_dir=is_dir) == expected


def test_default_rules_and_text() -> None:
    assert str(DEFAULT_RULES) == DEFAULT_CHMOD == "D755,F644"
    assert str(parse_chmod("Fgo-w")) == "Fgo-w"


def test_only_permission_bits_come_out() -> None:
    assert parse_chmod("go-w").apply(0o104755, is_dir=False) == 0o755


@pytest.mark.parametrize(
    ("rules", "named", "why"),
    [
        ("D755,,F644", "''", "is empty"),
        ("", "''", "is empty"),
        ("D", "'D'", "needs a mode"),
        ("F8", "'F8'", "is not an octal mode"),
        ("D75x", "'D75x'", "is not an octal mode"),
        ("Dz+r", "'Dz+r'", "is not an octal mode"),
        ("g+q", "'g+q'", "is not an octal mode"),
        ("4755", "'4755'", "set-id or sticky"),
        ("Dg+s", "'Dg+s'", "set-id or sticky"),
        ("+t", "'+t'", "set-id or sticky"),
        ("u+rw;go+r", "'u+rw;go+r'", "is not an octal mode"),
    ],
)
def test_bad_rules_are_named(rules: str, named: str, why: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_chmod(rules)
    message = caught.value.message
    assert message.startswith(f"--chmod {rules!r}: {named} ")
    assert why in message
    assert "\n" not in message
    assert caught.value.exit_status is ExitStatus.USAGE
