"""Errors the command line turns into one sentence and exit status 2.

Kept apart from `hsm_lifecycle.conformance.cli` so that `python -m hsm_lifecycle.conformance.cli` (which runs cli.py as
`__main__`, a second copy of the module) still catches the class the commands raise.
"""

from __future__ import annotations

import signal


class UsageError(Exception):
    """A user mistake: printed as one sentence, exit status 2, no traceback."""


class RunStopped(KeyboardInterrupt):
    """The run stops before its end (architecture.md's exit codes): Ctrl-C (SIGINT) is an
    interruption, exit 130; anything else (SIGTERM, SIGHUP, a PIN the token refused) stopped it,
    exit 3. A KeyboardInterrupt, so that no `except Exception` of a test swallows it and pytest
    ends the session the way it ends one on Ctrl-C (the bundle written, marked incomplete)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    @classmethod
    def by_signal(cls, signum: int) -> "RunStopped":
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            return cls(f"interrupted ({name})", 130)
        return cls(f"stopped by {name}", 3)
