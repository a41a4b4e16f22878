"""The layout tells the architecture, and this keeps it true: an AST check of every import in
src/ (DESIGN §7). A module may import only from its own layer and the layers it stands on;
asyncssh only inside transport/ and the embedded server; sshd/ nothing of the client stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sftpmirror"

# Each layer, and what it may import besides itself. Leaves first.
BASE = {"defaults", "errors", "findings", "methods", "url"}
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "engine": {"base"},
    "reporting": {"base", "engine"},
    "sshd": {"base"},
    "transport": {"base", "engine"},
    "trees": {"base", "engine", "transport"},
    "config": {"base", "engine"},
    "result": {"base", "engine", "reporting"},
    "api": {"base", "engine", "reporting", "transport", "trees", "result", "config"},
    "doctor": {"base", "engine", "transport", "trees", "reporting"},
    "server": {"base", "transport"},
    "cli": {
        "base",
        "engine",
        "reporting",
        "sshd",
        "transport",
        "trees",
        "config",
        "result",
        "api",
        "doctor",
        "server",
        "package",
    },
    "package": {
        "base",
        "engine",
        "reporting",
        "transport",
        "trees",
        "config",
        "result",
        "api",
    },
}
ASYNCSSH_ALLOWED = {"transport", "server"}
HEAVY = ("asyncssh", "cryptography")


def _layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "sftpmirror":
        raise ValueError(module)
    if len(parts) == 1 or parts[1] == "__main__":
        return "package" if len(parts) == 1 else "cli"
    head = parts[1]
    return "base" if head in BASE else head


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _parse(path: Path) -> ast.Module:
    """``ast.parse``, tried once more on CPython 3.11's spurious "AST constructor recursion
    depth mismatch" (python/cpython#106905: the constructor's depth counter is shared, and a
    thread switch in the middle of a parse can leave it off; fixed in 3.12). Seen once in a
    full suite run, where the servers' threads run beside the test; the file parses the
    second time."""
    source = path.read_text()
    try:
        return ast.parse(source, str(path))
    except SystemError:
        return ast.parse(source, str(path))


def _imports(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every module imported, at any depth (function-level imports count too), except those
    under ``if TYPE_CHECKING:``, which name a type and load nothing."""
    tree = _parse(path)
    module = module or _module_of(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # for the type checker only: no dependency when the code runs
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def _sources() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer() -> None:
    for path in _sources():
        assert _layer(_module_of(path)) in ALLOWED, path


def _upward(path: Path, module: str) -> list[str]:
    layer = _layer(module)
    return [
        f"{module}:{line}: {layer} imports {name} ({_layer(name)})"
        for line, name in _imports(path, module)
        if name.startswith("sftpmirror")
        and _layer(name) != layer
        and _layer(name) not in ALLOWED[layer]
    ]


def _heavy(path: Path, module: str) -> list[str]:
    if _layer(module) in ASYNCSSH_ALLOWED:
        return []
    return [
        f"{module}:{line}: imports {name}"
        for line, name in _imports(path, module)
        if name.split(".")[0] in HEAVY
    ]


def test_imports_point_down() -> None:
    wrong = [w for path in _sources() for w in _upward(path, _module_of(path))]
    assert not wrong, "\n".join(wrong)


def test_asyncssh_only_in_transport_and_the_server() -> None:
    wrong = [w for path in _sources() for w in _heavy(path, _module_of(path))]
    assert not wrong, "\n".join(wrong)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself can fail: an engine module importing transport, or asyncssh."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from sftpmirror.transport import connect\n"
        "def later() -> None:\n    import asyncssh\n"
        "if TYPE_CHECKING:\n    from sftpmirror.api import Result\n"
    )
    assert _upward(probe, "sftpmirror.engine.probe") == [
        "sftpmirror.engine.probe:2: engine imports sftpmirror.transport (transport)"
    ]
    assert _heavy(probe, "sftpmirror.engine.probe") == [
        "sftpmirror.engine.probe:4: imports asyncssh"
    ]
    assert _heavy(probe, "sftpmirror.transport.probe") == []


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    "code",
    [
        "import sftpmirror.engine.mirror, sftpmirror.engine.plan",
        "import sftpmirror; sftpmirror.plan; sftpmirror.MirrorOptions; sftpmirror.Result",
        "import sftpmirror.sshd.audit, sftpmirror.cli.sshd",
        "import sftpmirror.cli.app",
    ],
)
def test_cheap_imports_load_no_asyncssh(code: str) -> None:
    loaded = _loaded_after(code)
    assert not loaded & set(HEAVY), code


def _run_cli(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``python -m sftpmirror ARGS``, and every module it imported (``-X importtime`` lists
    each one on stderr as it is loaded)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sftpmirror", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )
    imported = {
        line.rpartition("|")[2].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:")
    }
    return result, imported


def _tops(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["init", "--help"],
        ["push", "--help"],
        ["history", "--help"],
        ["doctor", "--help"],
        ["sshd", "--help"],
        ["sshd", "check", "--help"],
    ],
)
def test_help_and_version_load_only_the_declarations(args: list[str], tmp_path: Path) -> None:
    """What --help and --version show is declared in cli/app.py, cli/options.py, cli/sshd.py
    and sftpmirror.defaults: no asyncssh, cryptography or rich, and not even asyncio, the engine
    or the commands' bodies (cli/commands.py)."""
    result, imported = _run_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sftpmirror.cli.app" in imported  # the check sees the imports
    assert not _tops(imported) & {*HEAVY, "rich", "asyncio"}, args
    library = {
        m for m in imported if m.startswith(("sftpmirror.engine", "sftpmirror.cli.commands"))
    }
    assert not library, args


SSHD_CONFIG = """\
Subsystem sftp internal-sftp
Match User nobody
    ChrootDirectory /srv/sftp/nobody
    ForceCommand internal-sftp
"""


@pytest.mark.parametrize("command", ["init", "sshd check"])
def test_commands_that_do_not_connect_load_no_client_stack(command: str, tmp_path: Path) -> None:
    """``init`` and ``sshd check`` run without asyncssh, cryptography or rich, and without
    asyncio: they do not connect."""
    if command == "init":
        written = tmp_path / "sftpmirror.toml"
        args = ["init", "--url", "sftp://user01@example.org/public_html", "--config", str(written)]
    else:
        (tmp_path / "sshd_config").write_text(SSHD_CONFIG)
        args = ["sshd", "check", "--config", str(tmp_path / "sshd_config"), "--parser", "builtin"]
    result, imported = _run_cli(args, tmp_path)
    if command == "init":
        assert result.returncode == 0, result.stderr[-2000:]
        assert "[targets.production]" in written.read_text()
    else:
        assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: problems found
        assert "sftpmirror sshd check" in result.stdout
        assert "--user nobody" in result.stdout
    assert not _tops(imported) & {*HEAVY, "rich", "asyncio"}, command


def test_the_startup_check_sees_asyncssh_when_a_command_connects(tmp_path: Path) -> None:
    """The check above can fail: a push loads asyncssh (then stops: no such directory)."""
    result, imported = _run_cli(["push", "missing", "sftp://u@127.0.0.1:9/x"], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert {"asyncssh", "cryptography"} <= _tops(imported)


def test_the_library_still_loads_asyncssh_when_it_is_used() -> None:
    assert "asyncssh" in _loaded_after("import sftpmirror; sftpmirror.push")
