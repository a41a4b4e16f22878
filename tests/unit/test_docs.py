"""Every ``sftpmirror …`` command line in the docs names a real subcommand and real options of it
(checked against the click command tree), and docs/ci.md lists every input and output of
action.yml."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from sftpmirror.cli.app import main

ROOT = Path(__file__).parents[2]
DOCS = ["README.md", "docs/ci.md", "docs/recipes.md", "docs/json.md"]
SHELL_BLOCKS = {"sh", "bash", "shell", "yaml", "yml"}  # every line may be a command
PROMPT_BLOCKS = {"console", ""}  # only "$ " lines are commands; the rest is output
SHELL_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&", "2>", "(", ")"}


def commands(text: str) -> list[str]:
    """The ``sftpmirror …`` lines of a Markdown text's code blocks: prompts, YAML list dashes,
    ``run:``, ``sudo`` and ``VAR=value`` prefixes stripped, continuation lines joined."""
    found: list[str] = []
    language: str | None = None
    pending = ""
    for raw in text.splitlines():
        fence = re.match(r"\s*```(\S*)", raw)
        if fence:
            language = None if language is not None else fence[1].lower()
            pending = ""
            continue
        if language is None or (language not in SHELL_BLOCKS | PROMPT_BLOCKS):
            continue
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if line.startswith("$ "):
            line = line[2:]
        elif language in PROMPT_BLOCKS:
            continue
        line = re.sub(r"^(- )?(run: )?", "", line)
        line = re.sub(r"^(sudo |[A-Za-z_][A-Za-z0-9_]*=\S* )+", "", line)
        if line.startswith("sftpmirror "):
            found.append(line)
    return found


def _options(command: click.Command) -> dict[str, click.Option | None]:
    """Option names of a command, to the option (None for the help option click adds)."""
    opts: dict[str, click.Option | None] = {"--help": None, "-h": None}
    for param in command.params:
        if isinstance(param, click.Option):
            opts |= dict.fromkeys([*param.opts, *param.secondary_opts], param)
    return opts


def problems(line: str) -> list[str]:
    """What is wrong with one command line: an unknown subcommand, an unknown option, an
    option that takes a value given none. Empty when it is fine."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    if words and words[-1] in SHELL_OPERATORS:
        words.pop()
    cut = next((i for i, w in enumerate(words) if w in SHELL_OPERATORS), len(words))
    words = words[1:cut]  # without "sftpmirror" and whatever the shell does after it
    command: click.Command = main
    path = ["sftpmirror"]
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        name = words.pop(0)
        sub = command.commands.get(name)
        if sub is None:
            return [f"{' '.join(path)}: no subcommand {name!r}"]
        command, path = sub, [*path, name]
    options = _options(command)
    found: list[str] = []
    rest = iter(words)
    for word in rest:
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            continue
        name, has_value = (word.split("=", 1)[0], True) if "=" in word else (word, False)
        if re.fullmatch(r"-[A-Za-z]{2,}", name):  # -nv: short flags together
            flags = [f"-{c}" for c in name[1:]]
            found += [f"{' '.join(path)}: no option {f}" for f in flags if f not in options]
            continue
        if name not in options:
            found.append(f"{' '.join(path)}: no option {name}")
            continue
        option = options[name]
        if option is not None and not option.is_flag and not has_value:
            value = next(rest, None)
            if value is None or value.startswith("--"):
                found.append(f"{' '.join(path)}: {name} needs a value")
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_in_the_docs_exists(doc: str) -> None:
    lines = commands((ROOT / doc).read_text())
    assert lines, f"{doc}: no sftpmirror commands found"
    assert [(line, p) for line in lines for p in problems(line)] == []


def test_commands_are_extracted_as_a_shell_reads_them() -> None:
    text = "\n".join([
        "```sh",
        "$ sftpmirror push --delete \\",
        "    public host:www   # a comment",
        "SFTPMIRROR_PASSWORD=x sudo sftpmirror doctor host:www",
        "echo sftpmirror push --nope",
        "```",
        "```yaml",
        "  script:",
        "    - sftpmirror push --known-hosts \"$FILE\" public host:www",
        "```",
        "```console",
        "$ sftpmirror sshd check --user deploy",
        "sftpmirror sshd check output line --bogus",
        "```",
        "```toml",
        "sftpmirror = 1",
        "```",
        "sftpmirror push --not-in-a-block",
    ])  # fmt: skip
    assert commands(text) == [
        "sftpmirror push --delete public host:www   # a comment",
        "sftpmirror doctor host:www",
        'sftpmirror push --known-hosts "$FILE" public host:www',
        "sftpmirror sshd check --user deploy",
    ]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("sftpmirror push --no-such-flag public h:w", "sftpmirror push: no option --no-such-flag"),
        ("sftpmirror deploy public host:www", "sftpmirror: no subcommand 'deploy'"),
        ("sftpmirror sshd chek --user x", "sftpmirror sshd: no subcommand 'chek'"),
        ("sftpmirror sshd check --identity x", "sftpmirror sshd check: no option --identity"),
        ("sftpmirror doctor --delete host:www", "sftpmirror doctor: no option --delete"),
        ("sftpmirror push -nx public host:www", "sftpmirror push: no option -x"),
        ("sftpmirror push public host:www --jobs", "sftpmirror push: --jobs needs a value"),
        ("sftpmirror push --exclude --delete a b", "sftpmirror push: --exclude needs a value"),
    ],
)  # fmt: skip
def test_the_checker_finds_what_is_wrong(line: str, problem: str) -> None:
    assert problems(line) == [problem]


@pytest.mark.parametrize(
    "line",
    [
        "sftpmirror push --delete -nv --exclude '*.map' public host:www  # why",
        "sftpmirror push --json production > deploy.json || {",
        "sftpmirror push --jobs=8 -j 4 -- public host:www",
        "sftpmirror sshd snippet --user deploy --root /srv/sftp/deploy --password",
        "sftpmirror --version",
    ],
)
def test_the_checker_passes_good_lines(line: str) -> None:
    assert problems(line) == []


def test_ci_doc_lists_every_input_and_output() -> None:
    spec = yaml.safe_load((ROOT / "action.yml").read_text())
    text = (ROOT / "docs" / "ci.md").read_text()
    for name in [*spec["inputs"], *spec["outputs"]]:
        assert f"| `{name}` |" in text, name
