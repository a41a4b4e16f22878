"""How a command ends on an error: its message, details and hint on stderr; its exit status."""

from __future__ import annotations

import traceback

import click

from sftpmirror.errors import SftpMirrorError


def die(error: SftpMirrorError, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    click.echo(f"sftpmirror: error: {error.message}", err=True)
    for line in error.details:
        click.echo(f"  {line}", err=True)
    if error.hint:
        click.echo(f"sftpmirror: hint: {error.hint}", err=True)
    return int(error.exit_status)
