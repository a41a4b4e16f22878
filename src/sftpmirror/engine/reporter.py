"""What the engine tells whoever watches a run (the protocol is the engine's, so the engine
imports nothing above it; ``reporting/`` implements it for people and for JSON).

The engine calls, in order: ``phase("connecting")``, ``phase("scanning")``,
``phase("comparing")``, ``planned(plan)``, then for each of the plan's phases that has work
``phase(name)`` with ``done`` or ``failed`` per action and ``transferred`` as bytes are
acknowledged; ``warning`` at any time. ``NullReporter`` does nothing (the library's default).
"""

from __future__ import annotations

from typing import Protocol

from sftpmirror.engine.model import Action, Plan


class Reporter(Protocol):
    def phase(self, name: str) -> None: ...

    def planned(self, plan: Plan) -> None: ...

    def transferred(self, nbytes: int) -> None: ...

    def warning(self, message: str) -> None: ...

    def done(self, action: Action, nbytes: int) -> None: ...

    def failed(self, action: Action, message: str) -> None: ...


class NullReporter:
    def phase(self, name: str) -> None:
        pass

    def planned(self, plan: Plan) -> None:
        pass

    def transferred(self, nbytes: int) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def done(self, action: Action, nbytes: int) -> None:
        pass

    def failed(self, action: Action, message: str) -> None:
        pass
