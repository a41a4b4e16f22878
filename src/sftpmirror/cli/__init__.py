"""The command line: a thin layer of flags over the library (``app.py``), typed options
(``options.py``) and the server-side ``sshd`` commands (``sshd.py``)."""

from __future__ import annotations


def main() -> None:
    from sftpmirror.cli.app import main as run

    run()
