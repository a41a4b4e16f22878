"""sftpmirror.toml: what is accepted, and errors that name the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from sftpmirror.cli.app import pull, push
from sftpmirror.config import (
    CONFIG_NAME,
    KEYS,
    find_config,
    load_config,
    parse_config,
    starter_config,
)
from sftpmirror.errors import ExitStatus, UsageError

MINIMAL = """\
[targets.production]
url = "sftp://user01@example.org/public_html"
source = "public"
"""


def test_minimal_form_from_the_issue(tmp_path: Path) -> None:
    config = parse_config(MINIMAL, tmp_path / CONFIG_NAME)
    target = config.target("production")
    assert target.url == "sftp://user01@example.org/public_html"
    assert target.source == tmp_path / "public"  # relative to the file, not the cwd
    assert target.values == {}
    assert config.target(None) is target  # the only target needs no name


def test_every_key_has_its_flags_type(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + """\
delete = true
exclude = ["*.map", "drafts/"]
jobs = 8
manifest = false
pages_last = [".html", ".xml"]
max_delete = 0
max_delete_percent = 12.5
auth = "password"
password_env = "PROD_PW"
identity = ["~/k1", "keys/k2"]
timeout = 5
"""
    )
    values = parse_config(text, tmp_path / CONFIG_NAME).target("production").values
    assert values == {
        "delete": True,
        "excludes": ("*.map", "drafts/"),
        "jobs": 8,
        "manifest": False,
        "pages_last": ".html,.xml",
        "max_delete": 0,
        "max_delete_percent": 12.5,
        "auth_methods": "password",
        "password_env": "PROD_PW",
        "identities": (Path("~/k1").expanduser(), tmp_path / "keys" / "k2"),
        "timeout": 5.0,
    }


@pytest.mark.parametrize("command", [push, pull], ids=["push", "pull"])
def test_every_key_names_a_flag_of_push_and_pull(command: click.Command) -> None:
    """A key whose flag does not exist would be accepted and then silently ignored."""
    params = {p.name for p in command.params}
    missing = {k for k, spec in KEYS.items() if spec.param not in params}
    assert missing <= {"url", "source"}, missing


@pytest.mark.parametrize(
    ("extra", "line", "needle"),
    [
        pytest.param(
            'colour = "red"\n', 4, "[targets.production] colour: unknown key", id="unknown"
        ),
        pytest.param("max-delete = 3\n", 4, "did you mean max_delete?", id="did-you-mean-dash"),
        pytest.param("excludes = []\n", 4, "did you mean exclude?", id="did-you-mean-plural"),
        pytest.param('delete = "yes"\n', 4, "delete: must be true or false", id="bool"),
        pytest.param("jobs = 0\n", 4, "jobs: must be between 1 and 256", id="range"),
        pytest.param("jobs = 2.5\n", 4, "jobs: must be a whole number", id="int"),
        pytest.param("jobs = true\n", 4, "jobs: must be a whole number", id="bool-is-not-int"),
        pytest.param("exclude = [1]\n", 4, "must be a string or a list of strings", id="list"),
        pytest.param('manifest = ""\n', 4, "manifest: must be a path on the server", id="manifest"),
        pytest.param("max_delete_percent = 101\n", 4, "between 0 and 100", id="percent"),
        pytest.param(
            'password_env = "A"\npassword_command = "pass x"\n',
            5,
            "give one of password_env, password_file, password_command",
            id="two-passwords",
        ),
    ],
)
def test_bad_values_name_file_line_and_key(
    tmp_path: Path, extra: str, line: int, needle: str
) -> None:
    path = tmp_path / CONFIG_NAME
    with pytest.raises(UsageError) as info:
        parse_config(MINIMAL + extra, path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert needle in str(info.value)
    assert info.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        pytest.param(
            '[targets.p]\nurl = "sftp://h/x"\n',
            ":1: [targets.p]: source is required",
            id="no-source",
        ),
        pytest.param(
            '[targets.p]\nsource = "x"\n', ":1: [targets.p]: url is required", id="no-url"
        ),
        pytest.param('url = "x"\n', ":1: url: unknown key (targets go in", id="top-level-key"),
        pytest.param("targets = 3\n", ":1: targets: must be a table", id="targets-not-table"),
        pytest.param("[targets]\np = 1\n", ": targets.p: must be a [targets.NAME]", id="flat"),
        pytest.param("", ": no targets", id="empty"),
        pytest.param('[targets.p]\nurl = "x\n', ": line 2: ", id="toml-syntax"),
        pytest.param('[targets.p]\nurl = "a"\nurl = "b"\n', ": line 3: ", id="duplicate-key"),
    ],
)
def test_file_level_errors(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / CONFIG_NAME
    with pytest.raises(UsageError) as info:
        parse_config(text, path)
    assert needle in str(info.value)
    assert str(info.value).startswith(str(path))


def test_line_is_found_in_the_right_target(tmp_path: Path) -> None:
    text = MINIMAL + '\n[targets.staging]\nurl = "sftp://h/s"\nsource = "public"\njobs = 999\n'
    with pytest.raises(UsageError) as info:
        parse_config(text, tmp_path / CONFIG_NAME)
    assert ":8: [targets.staging] jobs: must be between 1 and 256" in str(info.value)


def test_unknown_or_unnamed_target_lists_the_targets(tmp_path: Path) -> None:
    text = MINIMAL + '[targets.staging]\nurl = "sftp://h/s"\nsource = "public"\n'
    config = parse_config(text, tmp_path / CONFIG_NAME)
    with pytest.raises(UsageError, match=r"no target 'prod' \(targets: production, staging\)"):
        config.target("prod")
    with pytest.raises(UsageError, match=r"name a target \(targets: production, staging\)"):
        config.target(None)


def test_find_config_walks_up(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text(MINIMAL)
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) == tmp_path / CONFIG_NAME
    (deep / CONFIG_NAME).write_text(MINIMAL)
    assert find_config(deep) == deep / CONFIG_NAME  # the nearest wins


def test_load_config_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / CONFIG_NAME
    bad.write_bytes(b"\xff\xfe[targets]")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_config(bad)


def test_starter_config_parses_and_documents_every_key(tmp_path: Path) -> None:
    text = starter_config("prod site", 'sftp://u@h/p"q', "_site")
    config = parse_config(text, tmp_path / CONFIG_NAME)
    target = config.target("prod site")
    assert target.url == 'sftp://u@h/p"q'
    assert target.source == tmp_path / "_site"
    assert target.values == {"delete": True}
    for key in KEYS:
        assert f"{key} = " in text, key
    # Each commented example is itself valid: uncommented, the file still loads.
    skip = ("# password_file", "# password_command")  # one password source at a time
    lines = [
        line[2:] if line.startswith("# ") and " = " in line and not line.startswith(skip) else line
        for line in text.splitlines()
    ]
    loaded = parse_config("\n".join(lines), tmp_path / CONFIG_NAME).target("prod site")
    assert loaded.values["jobs"] == 64
    assert loaded.values["manifest"] == ".sftpmirror-manifest.json.gz"
    assert loaded.values["password_env"] == "SFTPMIRROR_PASSWORD"
