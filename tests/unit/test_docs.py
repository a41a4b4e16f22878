"""Every ``sftpmirror …`` command line in the docs names a real subcommand and real options of it
(checked against the click command tree), and docs/ci.md lists every input and output of
action.yml."""

from __future__ import annotations

import re
import shlex
import textwrap
import tomllib
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


def blocks(text: str, languages: set[str]) -> list[tuple[int, str]]:
    """(first line number, text) of each fenced block in one of ``languages``."""
    found: list[tuple[int, str]] = []
    language: str | None = None
    start = 0
    lines: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*```(\S*)", raw)
        if fence and language is None:
            language, start, lines = fence[1].lower(), number + 1, []
        elif fence:
            if language in languages:
                found.append((start, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(raw)
    return found


ALL_DOCS = sorted({*DOCS, *(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))})


@pytest.mark.parametrize("doc", ALL_DOCS)
def test_every_yaml_block_parses(doc: str) -> None:
    """A workflow copied from the docs must load: docs/ci.md's headline one had an unquoted
    ": " in a run: value. Snippets of a larger file are parsed dedented."""
    for line, text in blocks((ROOT / doc).read_text(), {"yaml", "yml"}):
        try:
            yaml.safe_load(textwrap.dedent(text))
        except yaml.YAMLError as e:
            pytest.fail(f"{doc}:{line}: YAML does not parse: {e}")


@pytest.mark.parametrize("doc", ALL_DOCS)
def test_every_toml_block_parses(doc: str) -> None:
    for line, text in blocks((ROOT / doc).read_text(), {"toml"}):
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            pytest.fail(f"{doc}:{line}: TOML does not parse: {e}")


def test_the_yaml_check_can_fail() -> None:
    bad = "```yaml\nsteps:\n  - run: echo a: b\n```\n"
    ((_, text),) = blocks(bad, {"yaml"})
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load(text)


def test_no_doc_installs_from_an_index_we_are_not_on() -> None:
    for doc in ALL_DOCS:
        text = (ROOT / doc).read_text()
        assert not re.search(
            r"pip install sftpmirror\b(?!\S)",
            text.replace("`pip install sftpmirror` does not work", ""),
        ), doc
        assert "sftpmirror==" not in text, doc
