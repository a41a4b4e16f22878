"""parse_remote / is_remote / RemoteSpec: sftp:// URLs and scp-style locations."""

from __future__ import annotations

import pytest

from sftpmirror.errors import ExitStatus, UsageError
from sftpmirror.url import RemoteSpec, is_remote, parse_remote, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "sftp://u@h/public_html", RemoteSpec("h", "public_html", "u"), id="url-relative"
        ),
        pytest.param("sftp://h", RemoteSpec("h"), id="url-host-only"),
        pytest.param("sftp://h/", RemoteSpec("h"), id="url-host-slash"),
        pytest.param("SFTP://H/x", RemoteSpec("H", "x"), id="url-scheme-case"),
        pytest.param(
            "sftp://u@h:2222//srv/www/", RemoteSpec("h", "/srv/www", "u", 2222), id="url-absolute"
        ),
        pytest.param("sftp://h///srv", RemoteSpec("h", "/srv"), id="url-absolute-many-slashes"),
        pytest.param("sftp://u@[::1]:22/~/x", RemoteSpec("::1", "x", "u", 22), id="url-ipv6-tilde"),
        pytest.param("sftp://[::1]", RemoteSpec("::1"), id="url-ipv6-bare"),
        pytest.param("sftp://h/~", RemoteSpec("h"), id="url-tilde-alone"),
        pytest.param("sftp://h/~x", RemoteSpec("h", "~x"), id="url-tilde-user-not-expanded"),
        pytest.param("sftp://h:/x", RemoteSpec("h", "x"), id="url-empty-port"),
        pytest.param("sftp://h:65535/x", RemoteSpec("h", "x", port=65535), id="url-max-port"),
        pytest.param(
            "sftp://web%40example.com@h/my%20site",
            RemoteSpec("h", "my site", "web@example.com"),
            id="url-percent-decoding",
        ),
        pytest.param("sftp://h/a/./b//c/", RemoteSpec("h", "a/b/c"), id="url-cleaned"),
        pytest.param("sftp://@h/x", RemoteSpec("h", "x"), id="url-empty-user"),
        pytest.param("sftp://alias/x", RemoteSpec("alias", "x"), id="url-alias"),
        pytest.param("u@h:public_html", RemoteSpec("h", "public_html", "u"), id="scp-relative"),
        pytest.param("h:/abs", RemoteSpec("h", "/abs"), id="scp-absolute"),
        pytest.param("alias:", RemoteSpec("alias"), id="scp-empty-path"),
        pytest.param("u@h:a%20b", RemoteSpec("h", "a%20b", "u"), id="scp-no-percent-decoding"),
        pytest.param("[::1]:www/", RemoteSpec("::1", "www"), id="scp-ipv6"),
        pytest.param("h:a:b", RemoteSpec("h", "a:b"), id="scp-colon-in-path"),
    ],
)
def test_parse_remote(text: str, expected: RemoteSpec) -> None:
    assert parse_remote(text) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param("sftp://u@h:99999/x", "port", id="port-too-big"),
        pytest.param("sftp://u@h:0/x", "port", id="port-zero"),
        pytest.param("sftp://u@h:abc/x", "port", id="port-not-a-number"),
        pytest.param("sftp://u@h:-1/x", "port", id="port-negative"),
        pytest.param("sftp://", "malformed", id="url-empty"),
        pytest.param("sftp:///x", "malformed", id="url-no-host"),
        pytest.param("sftp://:22/x", "malformed", id="url-port-no-host"),
        pytest.param(
            "sftp://u@/x",
            "host",
            id="url-user-no-host",
        ),
        pytest.param("sftp://h/a%00b", "NUL", id="url-nul"),
        pytest.param("h:a\0b", "NUL", id="scp-nul"),
        pytest.param("public", "not a remote", id="local-word"),
        pytest.param("./a:b", "not a remote", id="local-dot-colon"),
        pytest.param("/tmp/x", "not a remote", id="local-absolute"),
        pytest.param("/tmp/a:b", "not a remote", id="local-absolute-colon"),
        pytest.param("~/a:b", "not a remote", id="local-home-colon"),
        pytest.param("dir/a:b", "not a remote", id="local-slash-before-colon"),
        pytest.param("", "not a remote", id="empty"),
    ],
)
def test_parse_remote_errors(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_remote(text)
    assert needle in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE
    assert int(info.value.exit_status) == 2


def test_superscript_port_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="port"):
        parse_remote("sftp://h:²/x")


def test_host_never_contains_at() -> None:
    # Like ssh's user@host: the last "@" ends the user name (an e-mail-like login works).
    spec = parse_remote("sftp://a@b@h/x")
    assert (spec.user, spec.host) == ("a@b", "h")


@pytest.mark.parametrize(
    ("text", "password"),
    [
        pytest.param("sftp://u:hunter2@h/x", "hunter2", id="plain"),
        pytest.param("sftp://u:hunter2@h:22/x", "hunter2", id="with-port"),
        pytest.param("sftp://:hunter2@h/x", "hunter2", id="no-user"),
        pytest.param("sftp://u:@h/x", "", id="empty-password"),
        pytest.param("SFTP://u:hunter2@[::1]/x", "hunter2", id="ipv6"),
        pytest.param(
            "sftp://u:hunter2@/x",
            "hunter2",
            id="no-host",
        ),
        pytest.param(
            "sftp://u:hun/ter2@h/x",
            "hun/ter2",
            id="slash-in-password",
        ),
        pytest.param(
            "sftp://u:1234/pw@h/x",
            "1234/pw",
            id="digits-slash-password",
        ),
    ],
)
def test_password_in_url_is_refused_and_not_echoed(text: str, password: str) -> None:
    assert password not in redact(text) or not password
    with pytest.raises(UsageError) as info:
        parse_remote(text)
    assert "password" in str(info.value)
    assert info.value.exit_status == 2
    if password:
        assert password not in str(info.value)
        assert password not in repr(info.value)
        assert password not in (info.value.hint or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("sftp://u@h/public_html", True, id="url"),
        pytest.param("SFTP://h", True, id="url-upper"),
        pytest.param("sftp://u:pw@h/x", True, id="url-with-password-still-remote"),
        pytest.param("u@h:public_html", True, id="scp"),
        pytest.param("h:/abs", True, id="scp-absolute"),
        pytest.param("alias:", True, id="scp-alias"),
        pytest.param("[::1]:x", True, id="scp-ipv6"),
        pytest.param("public", False, id="local-word"),
        pytest.param("./a:b", False, id="local-dot-colon"),
        pytest.param("../a:b", False, id="local-dotdot-colon"),
        pytest.param("/tmp/x", False, id="local-absolute"),
        pytest.param("/tmp/a:b", False, id="local-absolute-colon"),
        pytest.param("~/a:b", False, id="local-home-colon"),
        pytest.param("dir/a:b", False, id="local-slash-before-colon"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_remote(text: str, expected: bool) -> None:
    assert is_remote(text) is expected


@pytest.mark.parametrize(
    "text",
    ["sftp://u@h/x", "u@h:x", "h:/abs", "alias:", "public", "./a:b", "/tmp/x", "~/a:b"],
)
def test_is_remote_agrees_with_parse_remote(text: str) -> None:
    try:
        parse_remote(text)
    except UsageError:
        parsed = False
    else:
        parsed = True
    assert parsed is is_remote(text)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        pytest.param(RemoteSpec("h", "public_html"), "sftp://h/public_html", id="relative"),
        pytest.param(RemoteSpec("h", "/srv/www"), "sftp://h//srv/www", id="absolute"),
        pytest.param(RemoteSpec("h"), "sftp://h/", id="empty"),
        pytest.param(RemoteSpec("h", "x", "u", 2222), "sftp://u@h:2222/x", id="user-port"),
        pytest.param(RemoteSpec("::1", "x", "u", 22), "sftp://u@[::1]:22/x", id="ipv6"),
    ],
)
def test_remote_spec_str(spec: RemoteSpec, text: str) -> None:
    assert str(spec) == text


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(RemoteSpec("h", "public_html"), id="relative"),
        pytest.param(RemoteSpec("h", "a/b/c"), id="relative-nested"),
        pytest.param(RemoteSpec("h", "/srv/www"), id="absolute"),
        pytest.param(RemoteSpec("h", "/"), id="absolute-root"),
        pytest.param(RemoteSpec("h"), id="empty"),
        pytest.param(RemoteSpec("h", "x", "u", 2222), id="user-port"),
        pytest.param(RemoteSpec("::1", "/srv", "u"), id="ipv6"),
        pytest.param(RemoteSpec("h", "my site"), id="space"),
        pytest.param(
            RemoteSpec("h", "x", "web@example.com"),
            id="user-with-at",
        ),
        pytest.param(
            RemoteSpec("h", "100%25"),
            id="percent-in-path",
        ),
    ],
)
def test_remote_spec_round_trips(spec: RemoteSpec) -> None:
    assert parse_remote(str(spec)) == spec


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("sftp://u:hunter2@h/x", "sftp://u:***@h/x"),
        ("SFTP://u:hun/ter2@h/x", "SFTP://u:***@h/x"),
        ("u:hunter2@h:public_html", "u:***@h:public_html"),
        ("sftp://u@h:2222/x", "sftp://u@h:2222/x"),
        ("u@h:public_html", "u@h:public_html"),
        ("public", "public"),
    ],
)
def test_redact_hides_a_password_and_nothing_else(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    ("text", "suggested"),
    [
        ("user@127.0.0.1:2222/public_html", "sftp://user@127.0.0.1:2222/public_html"),
        ("host:3501", "sftp://host:3501/"),
        ("host:3501/", "sftp://host:3501/"),
    ],
)
def test_a_port_after_the_colon_is_refused_with_the_url_form(text: str, suggested: str) -> None:
    """scp reads host:3501/x as the directory 3501/x on port 22: a newcomer's port, uploaded
    to the wrong place (and saved by init)."""
    with pytest.raises(UsageError) as info:
        parse_remote(text)
    assert suggested in str(info.value)
    assert info.value.exit_status == 2


@pytest.mark.parametrize("text", ["host:./3501", "host:3501x", "host:/3501", "host:public_html"])
def test_a_directory_named_with_digits_can_still_be_said(text: str) -> None:
    assert parse_remote(text).port is None
