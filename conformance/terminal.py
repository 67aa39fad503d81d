"""Handing the terminal to a person in the middle of a pytest run (the operator steps).

Two things stand between a prompt and the person: pytest's output capture (while it captures,
`sys.stdin` reads nothing and fd 0 is /dev/null, so stdin never looks like a terminal) and
`hsm-lifecycle run`'s live progress display (it would draw over the prompt). Each registers a
pause here; `handed_over()` enters them all, so a prompt works with or without `-s`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

Pause = Callable[[], AbstractContextManager[None]]

CAPTURE = "capture"  # pytest's capture of the running session
DISPLAY = "display"  # hsm-lifecycle run's progress display

_pauses: list[tuple[str, Pause]] = []


def add_pause(kind: str, pause: Pause) -> None:
    """Register a pause of `kind`; a later one of the same kind stands in for the earlier (a
    pytest session run inside another, as the project's own tests do, pauses its own capture:
    suspending the outer one too would put the outer session's stdin back)."""
    _pauses.append((kind, pause))


def remove_pause(pause: Pause) -> None:
    _pauses[:] = [(k, p) for k, p in _pauses if p != pause]  # == : a bound method is new each time


@contextlib.contextmanager
def handed_over() -> Iterator[None]:
    """The person's terminal on sys.stdin / sys.stdout until the block ends."""
    latest: dict[str, Pause] = {}
    for kind, pause in _pauses:
        latest.pop(kind, None)  # re-inserted: the order is that of the latest registrations
        latest[kind] = pause
    with contextlib.ExitStack() as stack:
        for pause in latest.values():  # resumed in reverse order
            stack.enter_context(pause())
        yield


def stdin_is_terminal() -> bool:
    """Whether a person could answer a prompt: stdin as it is once the terminal is handed over."""
    with handed_over():
        stream = sys.stdin
        try:
            return stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):  # closed or detached
            return False


class CapturePause:
    """Suspends pytest's capture, stdin included (as pytest's own debugger does), and puts it
    back as it was: between phases (e.g. while plugins configure) pytest keeps stdout
    uncaptured but stdin captured, and a plain resume would start capturing stdout there."""

    def __init__(self, capture_manager: Any) -> None:
        self.capture_manager = capture_manager

    def _capturing_output(self) -> bool:
        # pytest offers no public view of the global capture's state.
        multi = getattr(self.capture_manager, "_global_capturing", None)
        return bool(multi is not None and multi.is_started())

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        was_capturing = self._capturing_output()
        self.capture_manager.suspend(in_=True)
        try:
            yield
        finally:
            self.capture_manager.resume()
            if not was_capturing:
                self.capture_manager.suspend_global_capture()  # stdout free again, stdin captured
