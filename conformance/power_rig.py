"""The suite's side of a power-cut rig: the device that takes the token's power away at a moment
the suite arms (docs/power-rig.md). `hsm-lifecycle emulate --power-rig SOCKET` serves one for
the emulated token; a lab drives a real token's power (a USB power switch, say) with a small
program that speaks the same one-line protocol on a Unix socket. No public rig exists.

The client never trusts a cut it did not see confirmed: after the command it armed the rig for
went unanswered, `status` must say the cut happened at that moment.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from hsm_lifecycle.protocol import CutMoment

__all__ = ["CutMoment", "PowerRig", "RigError", "RigState", "RigStatus"]
ANSWER_TIMEOUT_S = 10.0
MAX_ANSWER = 256


class RigState(Enum):
    IDLE = "idle"
    ARMED = "armed"
    CUT = "cut"


class RigError(Exception):
    """The rig is unreachable or answered outside its protocol (one sentence: what to do)."""


@dataclass(frozen=True)
class RigStatus:
    state: RigState
    moment: CutMoment | None = None

    @classmethod
    def parse(cls, answer: str) -> RigStatus:
        words = answer.split()
        try:
            state = RigState(words[0])
            moment = CutMoment(words[1]) if len(words) == 2 else None
        except (IndexError, ValueError):
            raise RigError(f"the power-cut rig answered {answer[:60]!r} to status, which is no state of its protocol "
                           "(docs/power-rig.md)") from None
        if (moment is None) != (state is RigState.IDLE) or len(words) > 2:
            raise RigError(f"the power-cut rig answered {answer[:60]!r} to status, which is no state of its protocol "
                           "(docs/power-rig.md)")
        return cls(state, moment)

    @property
    def cut_at(self) -> CutMoment | None:
        return self.moment if self.state is RigState.CUT else None


@dataclass(frozen=True)
class PowerRig:
    """A rig on a Unix socket; one connection per request, so a rig restarted between two
    requests is fine."""

    path: Path
    timeout_s: float = ANSWER_TIMEOUT_S

    def ping(self) -> None:
        self._expect("ping", "pong")

    def arm(self, moment: CutMoment) -> None:
        self._expect(f"arm {moment.value}", f"armed {moment.value}")

    def disarm(self) -> None:
        self._expect("disarm", "disarmed")

    def status(self) -> RigStatus:
        return RigStatus.parse(self._ask("status"))

    def _expect(self, request: str, answer: str) -> None:
        got = self._ask(request)
        if got != answer:
            raise RigError(f"the power-cut rig answered {got[:60]!r} to {request!r} instead of {answer!r}: "
                           "check that it speaks the protocol of docs/power-rig.md")

    def _ask(self, request: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall(request.encode() + b"\n")
                with sock.makefile("rb") as stream:
                    line = stream.readline(MAX_ANSWER + 1)
        except OSError as exc:
            raise RigError(f"the power-cut rig at {self.path} does not answer ({exc.strerror or exc}): start it "
                           "(hsm-lifecycle emulate --power-rig SOCKET for the emulator) or give its socket") from None
        answer = line.decode("utf-8", "replace").strip()
        if not answer:
            raise RigError(f"the power-cut rig at {self.path} closed the connection without answering {request!r}")
        if answer.startswith("error:"):
            raise RigError(f"the power-cut rig refused {request!r}: {answer[6:].strip()}")
        return answer
