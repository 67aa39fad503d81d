"""Errors the command line turns into one sentence and exit status 2.

Kept apart from `hsm_lifecycle.conformance.cli` so that `python -m hsm_lifecycle.conformance.cli` (which runs cli.py as
`__main__`, a second copy of the module) still catches the class the commands raise.
"""

from __future__ import annotations


class UsageError(Exception):
    """A user mistake: printed as one sentence, exit status 2, no traceback."""
