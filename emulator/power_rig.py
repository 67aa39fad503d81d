"""A scripted power-cut rig served beside a persistent emulated token.

`hsm-lifecycle emulate --power-rig SOCKET` serves the token to pcscd through vpcd AND listens on
a local Unix socket (0600) where the suite (conformance.power_rig) arms a power cut, as a lab
would drive a USB power switch in front of a real token. When the armed moment comes, the token
loses power right there: no answer leaves it, the vpcd connection drops as if the token had
been pulled, and after `OFF_SECONDS` it comes back powered on (pcscd sees a removal, then an
insertion). The state file then holds exactly what a real card's EEPROM would: every write
that reached storage before the cut, nothing after it.

Protocol (docs/power-rig.md): one line per request, one line back.
    arm pin-check   -> armed pin-check    cut the instant the next PIN comparison has decided
    arm try-spent   -> armed try-spent    cut right after the next try's decrement is stored
    arm apdu        -> armed apdu         cut as the next command APDU arrives, before it runs
    disarm          -> disarmed
    status          -> idle | armed MOMENT | cut MOMENT   (cut: the armed cut happened)
    ping            -> pong
Anything else answers "error: <one sentence>".
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from hsm_lifecycle.emulator.store import PersistencePoint, PowerEvent, PowerLoss, Stage
from hsm_lifecycle.emulator.line_server import LineServer
from hsm_lifecycle.emulator.token import VirtualToken
from hsm_lifecycle.protocol import CutMoment

LOG = logging.getLogger("hsm_lifecycle.power_rig")
OFF_SECONDS = 1.0  # how long the token stays unpowered: longer than pcscd's ~0.4 s poll
MAX_LINE = 256


_SPENT = (PersistencePoint.USER_TRY_SPENT, PersistencePoint.SO_TRY_SPENT)


class PowerRigService:
    """The rig's answers for one token. Every change to the token happens under `lock`, the
    lock the vpcd bridge (and the portal) take around each call to the token."""

    def __init__(self, token: VirtualToken, lock: threading.Lock) -> None:
        self.token = token
        self.lock = lock
        self.armed: CutMoment | None = None
        self.fired: CutMoment | None = None
        self.cuts = 0

    def handle(self, line: str) -> str:
        words = line.split()
        if not words:
            return "error: empty request; use arm MOMENT, disarm, status or ping"
        verb, args = words[0].lower(), words[1:]
        if verb == "ping" and not args:
            return "pong"
        if verb == "status" and not args:
            with self.lock:
                if self.armed is not None:
                    return f"armed {self.armed.value}"
                return f"cut {self.fired.value}" if self.fired is not None else "idle"
        if verb == "disarm" and not args:
            with self.lock:
                self._set(None)
            return "disarmed"
        if verb == "arm" and len(args) == 1:
            try:
                moment = CutMoment(args[0].lower())
            except ValueError:
                return f"error: unknown moment {args[0][:20]!r}; use one of {', '.join(m.value for m in CutMoment)}"
            with self.lock:
                self._set(moment)
            return f"armed {moment.value}"
        return f"error: unknown request {line.strip()[:40]!r}; use arm MOMENT, disarm, status or ping"

    def _set(self, moment: CutMoment | None) -> None:
        self.armed, self.fired = moment, None
        hooked = moment in (CutMoment.PIN_CHECK, CutMoment.TRY_SPENT)
        self.token.set_power_loss_hook(self._hook if hooked else None)

    def _hook(self, event: PowerEvent) -> None:
        """Called by the token at every persistence event while a cut is armed."""
        due = (self.armed is CutMoment.PIN_CHECK and event.point is PersistencePoint.PIN_COMPARED) or (
            self.armed is CutMoment.TRY_SPENT and event.point in _SPENT and event.stage is Stage.AFTER
        )
        if due:
            self._fire()
            raise PowerLoss(f"power-cut rig: cut at {event.point.value} ({event.stage.value})")

    def _fire(self) -> None:
        assert self.armed is not None
        LOG.info("power-cut rig: power cut (%s)", self.armed.value)
        self.fired, self.armed = self.armed, None
        self.cuts += 1
        self.token.set_power_loss_hook(None)  # one cut per arming

    def cut_before_apdu(self) -> bool:
        """Whether the APDU arriving now is where an armed `apdu` cut happens (lock held)."""
        if self.armed is not CutMoment.APDU:
            return False
        self._fire()
        return True


class RiggedCard:
    """The token as the vpcd bridge sees it behind the rig: every call under the shared lock;
    an armed cut raises PowerLoss out of `transmit`, which the bridge turns into a dropped link."""

    def __init__(self, token: VirtualToken, rig: PowerRigService) -> None:
        self._token = token
        self._rig = rig

    def power_on(self) -> bytes:
        with self._rig.lock:
            return self._token.power_on()

    def power_off(self) -> None:
        with self._rig.lock:
            self._token.power_off()

    def reset(self) -> bytes:
        with self._rig.lock:
            return self._token.reset()

    def transmit(self, capdu: bytes) -> bytes:
        with self._rig.lock:
            if self._rig.cut_before_apdu():
                self._token.power_off()
                raise PowerLoss("power-cut rig: cut as the APDU arrived")
            return self._token.transmit(capdu)


class PowerRigServer(LineServer):
    """A Unix-socket server for one `PowerRigService`, on a daemon thread."""

    def __init__(self, path: Path, service: PowerRigService) -> None:
        super().__init__(path, service, "power-rig", LOG, MAX_LINE)

    def start(self) -> PowerRigServer:
        super().start()
        return self

