"""Every output mode against real servers: --json and --json-lines as docs/json.md documents
them, plain progress lines, -q, the live display on a pseudo-terminal; no password anywhere."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import Result

from sftpmirror.errors import ExitStatus
from tests.conftest import Target
from tests.e2e.helpers import make_site, run_cli

DOC = Path(__file__).parents[2] / "docs" / "json.md"
TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _table(heading: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``heading`` in docs/json.md."""
    text = DOC.read_text()
    section = text[text.index(heading) :]
    rows: list[list[str]] = []
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("|") and not line.startswith("| ---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows and not line.startswith("|"):
            break
    return rows[1:]  # without the header row


def documented_keys() -> dict[str, tuple[type, ...]]:
    keys: dict[str, tuple[type, ...]] = {}
    for key, types, _ in _table("## The summary object"):
        allowed = tuple(t for name in types.split(" or ") for t in TYPES[name])
        keys[key.strip("`")] = allowed
    return keys


def documented_events() -> dict[str, set[str]]:
    events: dict[str, set[str]] = {}
    for event, keys, _ in _table("## Events"):
        name = event.strip("`")
        if keys == "the summary object's keys":
            events[name] = set(documented_keys())
        else:
            events[name] = {k.strip().strip("`") for k in keys.split(",")}
    return events


def check_summary(obj: dict[str, Any], exit_code: int) -> None:
    keys = documented_keys()
    assert set(obj) == set(keys), (
        f"undocumented {set(obj) - set(keys)}, missing {set(keys) - set(obj)}"
    )
    for key, value in obj.items():
        assert isinstance(value, keys[key]), f"{key}: {value!r} is not {keys[key]}"
        assert not (isinstance(value, bool) and bool not in keys[key]), key
    assert obj["schema"] == "sftpmirror.summary/1"
    assert obj["exit_code"] == exit_code
    assert obj["ok"] is (exit_code == 0)


class Seen:
    """Every byte a test's runs printed, to search for the password at the end."""

    outputs: ClassVar[list[str]] = []


def cli(*args: str, target: Target, password: str | None = None) -> Result:
    result = run_cli(*args, target=target, password=password)
    Seen.outputs += [result.stdout, result.stderr]
    return result


@pytest.fixture(autouse=True)
def _no_password_anywhere(request: pytest.FixtureRequest) -> Any:
    servers = [n for n in request.fixturenames if n in ("target", "embedded", "openssh")]
    passwords = [request.getfixturevalue(name).password for name in servers]
    Seen.outputs = []
    yield
    assert passwords
    assert Seen.outputs
    for password in passwords:
        for text in Seen.outputs:
            assert password not in text


def test_json_summary_of_a_push(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = cli("push", "--json", "-v", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)  # stdout is the object and nothing else, even with -v
    check_summary(obj, 0)
    assert obj["command"] == "push"
    assert obj["source"] == str(site)
    assert obj["destination"] == target.url()
    assert obj["done"] == obj["planned"]
    assert obj["done"]["copy"] == 11
    assert (
        obj["bytes"]
        == obj["planned_bytes"]
        == sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    )
    assert obj["error"] is None
    assert obj["failures"] == []
    assert obj["actions"] == []
    assert obj["summary"].startswith("done: ")
    assert "copy     index.html" in result.stderr  # -v goes to stderr with --json
    assert obj["summary"] in result.stderr


def test_json_dry_run_lists_the_actions(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (target.disk / "stale.html").write_text("old")
    args = ("push", "--json", "-n", "--delete", "--delete-foreign", str(site), target.url())
    result = cli(*args, target=target)
    assert result.exit_code == 0, result.output
    obj = json.loads(result.stdout)
    check_summary(obj, 0)
    assert obj["dry_run"] is True
    assert obj["done"] == {}
    actions = {(a["op"], a["path"]): a for a in obj["actions"]}
    assert set(actions[("delete", "stale.html")]) == {"op", "path", "kind", "size", "reason"}
    assert actions[("delete", "stale.html")]["reason"] == "not in source"
    assert actions[("copy", "big.bin")]["size"] == 700_000
    assert len(obj["actions"]) == sum(obj["planned"].values())
    assert not (target.disk / "index.html").exists()


def test_json_with_failed_files(openssh: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (site / "locked").mkdir()
    (site / "locked" / "index.html").write_text("new")
    (openssh.disk / "locked").mkdir()  # root-owned: the account cannot write in it
    (openssh.disk / "stale.html").write_text("x")
    args = ("push", "--json", "--delete", "--delete-foreign", str(site), openssh.url())
    result = cli(*args, target=openssh)
    assert result.exit_code == ExitStatus.FAILED_ITEMS, result.output
    obj = json.loads(result.stdout)
    check_summary(obj, 1)
    assert [(f["op"], f["path"]) for f in obj["failures"]] == [("copy", "locked/index.html")]
    assert "permission denied" in obj["failures"][0]["message"]
    assert obj["not_run"] == 1
    assert "1 FAILED" in obj["summary"]
    assert obj["error"] is None


def test_json_when_login_fails(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    wrong = "wrong-Pass-91c2"
    result = cli("push", "--json", str(site), target.url(), target=target, password=wrong)
    assert result.exit_code == ExitStatus.AUTH, result.output
    obj = json.loads(result.stdout)
    check_summary(obj, 4)
    assert obj["error"]["kind"] == "AuthError"
    assert obj["error"]["message"].startswith(f"login to {target.user}@")
    assert any("password" in line for line in obj["error"]["details"])
    assert obj["summary"] is None
    assert obj["seconds"] is None
    assert wrong not in result.stdout + result.stderr


def test_json_when_the_arguments_are_wrong(embedded: Target, tmp_path: Path) -> None:
    os.chdir(tmp_path)  # no sftpmirror.toml up from here
    try:
        result = cli("pull", "--json", "production", target=embedded)
    finally:
        os.chdir(Path(__file__).parent)
    assert result.exit_code == ExitStatus.USAGE, result.output
    obj = json.loads(result.stdout)
    check_summary(obj, 2)
    assert obj["command"] == "pull"
    assert obj["source"] is None
    assert obj["error"]["kind"] == "UsageError"


def test_json_when_click_refuses_the_arguments(embedded: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    for flag in ("--json", "--json-lines"):
        result = cli("push", flag, "--jobs", "0", str(site), embedded.url(), target=embedded)
        assert result.exit_code == ExitStatus.USAGE, result.output
        obj = json.loads(result.stdout)
        assert obj.pop("event", None) == ("summary" if flag == "--json-lines" else None)
        assert (flag == "--json-lines") is (result.stdout.count("\n") == 1)
        check_summary(obj, 2)
        assert obj["command"] == "push"
        assert obj["error"]["kind"] == "UsageError"
        assert "'--jobs': 0 is not in the range" in obj["error"]["message"]
        assert "Error: Invalid value" in result.stderr  # click's own message, as without JSON
    result = cli("push", "--bogus", str(site), embedded.url(), target=embedded)
    assert result.exit_code == ExitStatus.USAGE
    assert result.stdout == ""  # no JSON unless asked for


def test_json_names_the_conflicts(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (target.disk / "index.html").mkdir()  # a directory where the source has a page
    for dry_run in (["-n"], []):
        result = cli("push", "--json", *dry_run, str(site), target.url(), target=target)
        obj = json.loads(result.stdout)
        check_summary(obj, result.exit_code)
        assert [(c["op"], c["path"], c["kind"]) for c in obj["conflicts"]] == [
            ("copy", "index.html", "file")
        ]
        assert "use --delete to replace it" in obj["conflicts"][0]["reason"]
    assert result.exit_code == ExitStatus.FAILED_ITEMS
    assert [f["path"] for f in obj["failures"]] == ["index.html"]
    assert (target.disk / "index.html").is_dir()


def test_json_lines_one_event_per_action(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    (target.disk / "stale.html").write_text("x")
    args = ("push", "--json-lines", "-v", "--delete", "--delete-foreign", str(site), target.url())
    result = cli(*args, target=target)
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    documented = documented_events()
    for event in events:
        assert set(event) - {"event"} == documented[event["event"]], event
    assert events[-1]["event"] == "summary"
    check_summary({k: v for k, v in events[-1].items() if k != "event"}, 0)
    plan = [e for e in events if e["event"] == "plan"]
    assert len(plan) == 1
    done = [(e["op"], e["path"]) for e in events if e["event"] == "done"]
    assert len(done) == len(set(done)) == sum(plan[0]["counts"].values())
    assert ("delete", "stale.html") in done
    assert ("copy", "posts/hello-world/cover.jpg") in done
    phases = [e["name"] for e in events if e["event"] == "phase"]
    assert phases[:3] == ["connecting", "scanning", "comparing"]
    assert phases.index("assets") < phases.index("pages") < phases.index("delete")


def test_plain_lines_when_stderr_is_not_a_terminal(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = cli("push", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[:3] == ["sftpmirror: connecting", "sftpmirror: scanning", "sftpmirror: comparing"]
    assert "sftpmirror: copying pages: 6 item(s) (82 B)" in lines
    assert "\x1b[" not in result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        r"done: 8 mkdir, 11 copy; 686\.6 KiB in \d+\.\ds \(\d+(\.\d)? [KM]iB/s\)", summary
    ), summary


def test_quiet_prints_errors_only(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    result = cli("push", "-q", str(site), target.url(), target=target)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == ""
    result = cli("push", "-q", str(site), target.url(), target=target, password="wrong-1")
    assert result.exit_code == ExitStatus.AUTH
    assert result.stdout == ""
    assert result.stderr.startswith("sftpmirror: error: login to ")
    assert "connecting" not in result.stderr


def _on_a_terminal(args: list[str], password: str) -> tuple[int, str, str]:
    """Run sftpmirror with stderr on a pseudo-terminal; returns status, stdout, terminal text."""
    main_fd, child_fd = pty.openpty()
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "SFTPMIRROR_PASSWORD": password,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sftpmirror", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child_fd, env=env,
    )  # fmt: skip
    os.close(child_fd)
    terminal = b""
    while select.select([main_fd], [], [], 30)[0]:
        try:
            data = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        terminal += data
    os.close(main_fd)
    assert proc.stdout is not None
    with proc.stdout:
        stdout = proc.stdout.read().decode()
    return proc.wait(timeout=30), stdout, terminal.decode(errors="replace")


def test_live_display_on_a_terminal(target: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    args = ["push", "--known-hosts", str(target.known_hosts), str(site), target.url()]
    status, stdout, terminal = _on_a_terminal(args, target.password)
    Seen.outputs += [stdout, terminal]
    assert status == 0, terminal
    assert "\x1b[?25l" in terminal  # the live display hides the cursor while it draws
    assert "copying pages" in terminal
    assert re.search(r"\d+/\d+ ", terminal), terminal
    assert re.search(r"\d+(\.\d)?/\d+(\.\d)? KiB", terminal), terminal  # bytes done/total
    assert re.search(r"\d+(\.\d)? [KM]iB/s", terminal), terminal  # the summary line's units
    assert "MB/s" not in terminal
    assert "kB/s" not in terminal
    assert "sftpmirror: scanning" not in terminal  # no plain phase lines under the live one
    assert terminal.count("sftpmirror: connecting…") == 1  # said once, before the live line
    assert stdout.startswith("done: 8 mkdir, 11 copy; ")

    status, stdout, terminal = _on_a_terminal([*args[:1], "--debug", *args[1:]], target.password)
    Seen.outputs += [stdout, terminal]
    assert status == 0, terminal
    assert "\x1b[?25l" not in terminal  # --debug: the trace, not the live display
    assert "debug: " in terminal
    assert stdout.startswith("done: nothing to do")
