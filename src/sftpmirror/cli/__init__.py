"""The command line: the commands and their flags declared (``app.py``, ``options.py``), what
they do (``commands.py``, ``starter.py`` for init, ``exits.py`` for an error's status), the
flags and a target resolved into the library's options (``resolve.py``), and the server-side
``sshd`` commands (``sshd.py``)."""

from __future__ import annotations

import gc


def main() -> None:
    from sftpmirror.cli.app import main as run

    try:
        run()
    finally:
        # The process ends here: what is left is freed by the exit, and not walked again by
        # the cyclic collector's passes while the interpreter shuts down (0.1 s after a push
        # of 1,281 files, a tenth of the run).
        gc.freeze()
