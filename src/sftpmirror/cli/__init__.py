"""The command line: the commands and their flags declared (``app.py``, ``options.py``), what
they do (``commands.py``, ``starter.py`` for init, ``exits.py`` for an error's status), the
flags and a target resolved into the library's options (``resolve.py``), and the server-side
``sshd`` commands (``sshd.py``)."""

from __future__ import annotations


def main() -> None:
    from sftpmirror.cli.app import main as run

    run()
