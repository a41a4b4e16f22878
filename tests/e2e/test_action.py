"""The GitHub Action (action.yml, action/deploy.sh, action/helper.py) run here, against the real
OpenSSH fixture: the deploy step's ``run:`` line, with the environment action.yml's ``env:``
makes of the inputs (their defaults from action.yml), as a runner would run it; and checks
that action.yml, deploy.sh and the helper agree on inputs and outputs. No password anywhere."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml

from tests.conftest import Target
from tests.e2e.helpers import assert_same_tree, make_site
from tests.e2e.test_output import check_summary

ROOT = Path(__file__).parents[2]
ACTION = ROOT / "action.yml"
SCRIPT = ROOT / "action" / "deploy.sh"
HELPER = ROOT / "action" / "helper.py"
VENV_BIN = Path(sys.executable).parent  # .venv/bin: sftpmirror and python3 resolve there
SITE = {"mkdir": 8, "copy": 11}  # what make_site() takes to deploy


def action() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ACTION.read_text())
    return loaded


def step(step_id: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = action()["runs"]["steps"]
    return next(s for s in steps if s.get("id") == step_id)


def step_env(inputs: dict[str, str]) -> dict[str, str]:
    """The deploy step's ``env:``, its ``${{ inputs.NAME }}`` expressions evaluated."""
    env: dict[str, str] = {}
    for name, value in step("deploy")["env"].items():
        match = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value)
        assert match, f"{name}: {value} is not an input"
        env[name] = inputs[match[1]]
    return env


def parse_outputs(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT's ``name=value`` lines and ``name<<DELIMITER`` blocks."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            block: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                block.append(inner)
            else:
                raise AssertionError(f"{name}: no closing {delimiter}")
            values[name] = "\n".join(block)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


@dataclass(frozen=True)
class Deploy:
    code: int
    stdout: str
    stderr: str
    output_file: str
    outputs: dict[str, str]
    step_summary: str

    def errors(self) -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith("::error")]

    def summary_object(self) -> dict[str, Any]:
        obj: dict[str, Any] = json.loads(self.outputs["json"])
        return obj


def deploy(
    tmp_path: Path,
    server: Target | None,
    password: str | None = None,
    *,
    xtrace: bool = False,
    inputs: dict[str, str] | None = None,
    **given: str,
) -> Deploy:
    """Run the action's deploy step in ``tmp_path`` with these inputs (``dry_run`` for
    ``dry-run``), the others at action.yml's defaults; url, known_hosts and the password from
    ``server`` unless given."""
    values = {name: spec.get("default", "") for name, spec in action()["inputs"].items()}
    if server is not None:
        values |= {"url": server.url(), "known_hosts": server.known_hosts.read_text()}
        password = server.password if password is None else password
    for name, value in {**(inputs or {}), **given}.items():
        values["dry-run" if name == "dry_run" else name] = value
    values["password"] = password or ""
    runner = tmp_path / "runner"
    runner.mkdir(exist_ok=True)
    venv = runner / "sftpmirror-venv"
    if not venv.exists():
        venv.symlink_to(VENV_BIN.parent)  # what the install step makes
    output_file, summary_file = runner / "output", runner / "summary.md"
    output_file.write_text("")
    summary_file.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path / "home"),  # no ~/.ssh of this machine
        "RUNNER_TEMP": str(runner),
        "GITHUB_ACTION_PATH": str(ROOT),
        "GITHUB_OUTPUT": str(output_file),
        "GITHUB_STEP_SUMMARY": str(summary_file),
        **step_env(values),
    }
    if xtrace:
        env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
        argv = ["bash", "-x", str(SCRIPT)]
    else:  # as a runner does: bash --noprofile --norc -eo pipefail {0}
        script = runner / "deploy-step.sh"
        script.write_text(step("deploy")["run"])
        argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)]
    proc = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    result = Deploy(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        output_file.read_text(),
        parse_outputs(output_file.read_text()),
        summary_file.read_text(),
    )
    if password:
        for name, text in vars(result).items():
            assert password not in str(text), f"the password is in {name}"
    return result


def site_in(tmp_path: Path) -> Path:
    """make_site() as the build's ``public`` directory, the action's default source."""
    return make_site(tmp_path / "public")


def test_deploys_the_site_then_changes_nothing(openssh: Target, tmp_path: Path) -> None:
    site = site_in(tmp_path)
    first = deploy(tmp_path, openssh)
    assert first.code == 0, first.stderr
    assert_same_tree(site, openssh.disk)
    obj = first.summary_object()
    check_summary(obj, 0)
    assert obj["done"] == SITE
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    assert first.outputs == {
        "exit-code": "0",
        "ok": "true",
        "summary": obj["summary"],
        "bytes": str(size),
        "changed": str(sum(SITE.values())),
        "planned": str(sum(SITE.values())),
        "json": first.outputs["json"],
    }
    assert obj["summary"].startswith("done: 8 mkdir, 11 copy;")
    assert set(first.outputs) == set(action()["outputs"])
    assert re.search(r"^json<<(\S+)\n\{\n.*\n\}\n\1$", first.output_file, re.M | re.S)
    assert f"| to | {openssh.url()} |" in first.step_summary
    assert "### sftpmirror push: done" in first.step_summary
    assert first.errors() == []
    assert "sftpmirror-action: running: sftpmirror push --json" in first.stderr

    second = deploy(tmp_path, openssh)
    assert second.code == 0, second.stderr
    assert (second.outputs["changed"], second.outputs["planned"]) == ("0", "0")
    assert second.outputs["bytes"] == "0"
    assert_same_tree(site, openssh.disk)


def test_dry_run_changes_nothing(openssh: Target, tmp_path: Path) -> None:
    site_in(tmp_path)
    result = deploy(tmp_path, openssh, dry_run="true")
    assert result.code == 0, result.stderr
    assert list(openssh.disk.iterdir()) == []
    assert result.outputs["changed"] == "0"
    assert result.outputs["planned"] == str(sum(SITE.values()))
    obj = result.summary_object()
    check_summary(obj, 0)
    assert obj["dry_run"] is True
    assert len(obj["actions"]) == sum(SITE.values())
    assert "### sftpmirror push: dry run" in result.step_summary
    # The files it would publish are listed: in the summary and in the log (it listed none).
    first = obj["actions"][-1]
    assert f"- {first['op']} `{first['path']}`" in result.step_summary
    assert f"would {first['op']} {first['path']}" in result.stdout


def test_delete_by_default_and_not_when_false(openssh: Target, tmp_path: Path) -> None:
    site = site_in(tmp_path)
    assert deploy(tmp_path, openssh).code == 0
    stale = openssh.disk / "stale.html"
    stale.write_text("old page\n")
    shutil.chown(stale, openssh.user, openssh.user)

    kept = deploy(tmp_path, openssh, delete="false", args="--delete-foreign")
    assert kept.code == 0, kept.stderr
    assert stale.exists()
    assert kept.outputs["changed"] == "0"

    removed = deploy(tmp_path, openssh, args="--delete-foreign")  # the default: delete
    assert removed.code == 0, removed.stderr
    assert not stale.exists()
    assert removed.summary_object()["done"] == {"delete": 1}
    assert removed.outputs["changed"] == "1"
    assert_same_tree(site, openssh.disk)


def test_with_a_target_its_delete_key_decides(openssh: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "public")
    stale = openssh.disk / "stale.html"
    stale.write_text("old page\n")
    shutil.chown(stale, openssh.user, openssh.user)
    for delete, kept in (("false", True), ("true", False)):
        (tmp_path / "sftpmirror.toml").write_text(
            f'[targets.production]\nurl = "{openssh.url()}"\nsource = "public"\n'
            f'known_hosts = "{openssh.known_hosts}"\ndelete = {delete}\ndelete_foreign = true\n'
        )
        result = deploy(tmp_path, None, openssh.password, target="production")
        assert result.code == 0, result.stderr
        assert stale.exists() is kept
    assert_same_tree(site, openssh.disk)


def test_target_of_sftpmirror_toml_and_extra_args(openssh: Target, tmp_path: Path) -> None:
    site = make_site(tmp_path / "build")
    (site / "js" / "app.js.map").write_text("{}")
    (tmp_path / "sftpmirror.toml").write_text(
        f'[targets.production]\nurl = "{openssh.url()}"\nsource = "build"\n'
        f'known_hosts = "{openssh.known_hosts}"\n'
    )
    result = deploy(
        tmp_path, None, openssh.password, target="production", args="--exclude '*.map' -v"
    )
    assert result.code == 0, result.stderr
    assert result.summary_object()["target"] == "production"
    assert not (openssh.disk / "js" / "app.js.map").exists()
    (site / "js" / "app.js.map").unlink()
    assert_same_tree(site, openssh.disk)


def test_wrong_password_exit_4_with_an_annotation(openssh: Target, tmp_path: Path) -> None:
    site_in(tmp_path)
    wrong = "not-the-Password-1b9e4c"
    result = deploy(tmp_path, openssh, wrong)
    assert result.code == 4
    assert list(openssh.disk.iterdir()) == []
    (error,) = result.errors()
    assert error.startswith("::error title=sftpmirror (exit 4)::login to ")
    assert result.outputs["exit-code"] == "4"
    assert result.outputs["ok"] == "false"
    assert result.outputs["summary"].startswith("error: login to ")
    obj = result.summary_object()
    check_summary(obj, 4)
    assert obj["error"]["kind"] == "AuthError"
    assert "failed (exit 4)" in result.step_summary


def test_failed_files_exit_1_one_annotation_each(openssh: Target, tmp_path: Path) -> None:
    site = site_in(tmp_path)
    for name in ("a.html", "b,c: d%.html"):  # the title and message escapes, too
        (site / "locked" / name).parent.mkdir(exist_ok=True)
        (site / "locked" / name).write_text("new")
    (openssh.disk / "locked").mkdir()  # root-owned: the account cannot write in it
    result = deploy(tmp_path, openssh)
    assert result.code == 1, result.stderr
    failed = sorted(line for line in result.errors() if "copy failed" in line)
    assert len(failed) == 2, result.stdout
    assert failed[0].startswith("::error title=sftpmirror%3A copy failed::locked/a.html: ")
    assert failed[1].startswith("::error title=sftpmirror%3A copy failed::locked/b,c: d%25.html: ")
    assert "permission denied" in failed[0]
    assert result.outputs["exit-code"] == "1"
    assert result.outputs["ok"] == "false"
    assert "2 FAILED" in result.outputs["summary"]
    check_summary(result.summary_object(), 1)
    assert "2 failed:" in result.step_summary
    assert "- copy `locked/a.html`: " in result.step_summary


def _other_key_line(openssh: Target) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    return f"[{openssh.host}]:{openssh.port} {key[0]} {key[1]}\n"


@pytest.mark.parametrize("kind", ["changed key", "unknown host"])
def test_bad_known_hosts_exit_3(openssh: Target, tmp_path: Path, kind: str) -> None:
    site_in(tmp_path)
    lines = _other_key_line(openssh)
    if kind == "unknown host":
        lines = lines.replace(f"[{openssh.host}]:{openssh.port}", "[example.org]:2222")
    result = deploy(tmp_path, openssh, known_hosts=lines)
    assert result.code == 3, result.stderr
    assert list(openssh.disk.iterdir()) == []
    (error,) = result.errors()
    assert error.startswith("::error title=sftpmirror (exit 3)::")
    assert result.outputs["exit-code"] == "3"
    assert result.summary_object()["error"]["kind"] == "HostKeyError"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "give url (sftp://user@host/path) or target"),
        ({"url": "sftp://u@h/p", "target": "production"}, "give url or target, not both"),
        ({"url": "sftp://u@h/p"}, "known_hosts is required with url"),
        ({"target": "production", "source": "site"}, "give no source"),
        ({"target": "production", "delete": "yes"}, "delete must be true or false, not 'yes'"),
        ({"target": "production", "dry_run": "1"}, "dry-run must be true or false, not '1'"),
        ({"target": "production", "args": "--exclude 'x"}, "args: No closing quotation"),
    ],
)
def test_bad_inputs_exit_2(tmp_path: Path, inputs: dict[str, str], message: str) -> None:
    result = deploy(tmp_path, None, "pw-of-bad-inputs-3c1d", inputs=inputs)
    assert result.code == 2
    (error,) = result.errors()
    assert error.startswith("::error title=sftpmirror (exit 2)::")
    assert message in error
    assert result.outputs["exit-code"] == "2"
    assert result.outputs["ok"] == "false"
    assert result.outputs["json"] == ""
    assert message in result.outputs["summary"]
    assert message in result.step_summary


@pytest.mark.parametrize("password", ["right", "wrong"])
def test_the_password_is_on_no_command_line(openssh: Target, tmp_path: Path, password: str) -> None:
    """bash -x prints every command the script runs, arguments expanded: the password (a
    marker, when wrong) must not be among them; deploy() checks every output besides."""
    site_in(tmp_path)
    secret = openssh.password if password == "right" else "Marker-5e0b7f2a"
    result = deploy(tmp_path, openssh, secret, xtrace=True)
    assert result.code == (0 if password == "right" else 4), result.stderr
    assert "+ sftpmirror push --json --known-hosts " in result.stderr  # the trace is there
    assert openssh.known_hosts.read_text().split()[2] in result.stderr  # with values expanded
    assert secret not in result.stderr


def test_no_password_in_the_scripts() -> None:
    """deploy.sh never reads the password; action.yml passes it in one env entry only, and no
    ``run:`` interpolates an expression (script injection)."""
    for path in (SCRIPT, HELPER):
        assert not re.search(r"\$\{?SFTPMIRROR_PASSWORD|PASSWORD\"?\]|getenv", path.read_text())
    text = ACTION.read_text()
    assert text.count("inputs.password") == 1
    assert step("deploy")["env"]["SFTPMIRROR_PASSWORD"] == "${{ inputs.password }}"
    for item in action()["runs"]["steps"]:
        assert "${{" not in item.get("run", "")


def test_action_yml_inputs_env_and_outputs_agree() -> None:
    """Every input is used by a step's env; every INPUT_ variable deploy.sh reads is set by the
    deploy step (named after its input); the outputs are the helper's, from the deploy step."""
    spec = action()
    assert spec["runs"]["using"] == "composite"
    used: set[str] = set()
    for item in spec["runs"]["steps"]:
        for value in (item.get("env") or {}).values():
            used |= set(re.findall(r"inputs\.([\w-]+)", value))
    assert used == set(spec["inputs"])
    for name, input_spec in spec["inputs"].items():
        assert input_spec["description"], name
        assert "default" in input_spec, name

    env = step("deploy")["env"]
    for name, value in env.items():
        if name != "SFTPMIRROR_PASSWORD":
            (input_name,) = re.findall(r"inputs\.([\w-]+)", value)
            assert name == "INPUT_" + input_name.upper().replace("-", "_")
    read = set(re.findall(r"\bINPUT_[A-Z_]+\b", SCRIPT.read_text()))
    assert read == {n for n in env if n.startswith("INPUT_")}
    install = next(s for s in spec["runs"]["steps"] if s.get("name") == "Install sftpmirror")
    assert install["env"]["INPUT_VERSION"] == "${{ inputs.version }}"
    assert '"${INPUT_VERSION:-$GITHUB_ACTION_PATH}"' in install["run"]

    loader = importlib.util.spec_from_file_location("helper", HELPER)
    assert loader is not None
    assert loader.loader is not None
    helper = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(helper)
    assert set(spec["outputs"]) == set(helper.OUTPUTS)
    for name, output in spec["outputs"].items():
        assert output["value"] == f"${{{{ steps.deploy.outputs.{name} }}}}"
