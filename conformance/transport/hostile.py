"""A misbehaving device, for the project's own tests of the suite: wraps any `Transport` and,
from a chosen APDU on, answers garbage, fewer than two bytes, answers of the wrong length,
stops answering, or disappears.

The sabotage plan is shared by every transport of a run, as a real device's faults are: a card
pulled out stays out for the next test too, and "the 40th APDU" counts across the session.
What is injected is logged in the plan, so a test can check the suite's verdict names it.

    plan = Sabotage(Misbehaviour.GARBAGE, after=40)
    transport = HostileTransport(InProcessTransport(token), plan)

Never used against a real token: it only ever sits in front of a transport the tests made.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import Enum

from hsm_lifecycle.conformance.transport.base import CardRemovedError, Response, Transport, TransportError, TransportWrapper

BLOCK_LIMIT_S = 600.0  # a blocked exchange gives up by itself after this, so nothing waits forever


class Misbehaviour(Enum):
    GARBAGE = "garbage"  # random bytes for the whole answer: data and status word
    SHORT = "short"  # 0 or 1 bytes: not even a status word
    TRUNCATED = "truncated"  # the real answer with its data cut short, the status word kept
    PADDED = "padded"  # the real answer with junk appended to its data
    BLOCK = "block"  # no answer at all until the transport is closed (a hung card or reader)
    REMOVED = "removed"  # the card is pulled out: CardRemovedError now and ever after


@dataclass
class Sabotage:
    """How and when the device misbehaves: faithfully for `after` APDUs, then on every
    `every`-th one (1: all of them)."""

    kind: Misbehaviour
    after: int = 0
    every: int = 1
    seed: int = 0
    seen: int = 0  # APDUs asked of the device so far, across every transport
    injected: list[str] = field(default_factory=list)
    removed: bool = False
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def strikes(self) -> bool:
        """Count one APDU; whether this one misbehaves."""
        self.seen += 1
        over = self.seen - self.after
        return over > 0 and (over - 1) % self.every == 0

    def junk(self, low: int, high: int) -> bytes:
        return self._rng.randbytes(self._rng.randint(low, high))


def _split(raw: bytes, capdu: bytes) -> Response:
    """What any conforming transport does with a raw answer (base.Transport.transmit)."""
    if len(raw) < 2:
        shown = raw.hex().upper() or "nothing"
        raise TransportError(f"the card answered {shown} to {capdu[:4].hex().upper()}, not even a status word: "
                             "re-insert it and retry")
    return Response(raw[:-2], int.from_bytes(raw[-2:], "big"))


class HostileTransport(TransportWrapper):
    def __init__(self, inner: Transport, sabotage: Sabotage) -> None:
        super().__init__(inner)
        self.sabotage = sabotage
        self._closed = threading.Event()  # a blocked exchange waits for this

    def __getattr__(self, name: str) -> object:
        # Whatever else the wrapped transport offers (the emulator's `token`, key notes).
        return getattr(self.inner, name)

    def _present(self, what: str) -> None:
        if self.sabotage.removed:
            raise CardRemovedError(f"the card was removed during the run ({what}): re-insert it and restart the run")

    def connect(self) -> bytes:
        self._present("connect")
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> Response:
        self._present("APDU " + capdu[:4].hex().upper())
        plan = self.sabotage
        if not plan.strikes():
            return self.inner.transmit(capdu)
        kind = plan.kind
        plan.injected.append(f"{kind.value} at APDU {plan.seen} ({capdu[:4].hex().upper()})")
        if kind is Misbehaviour.REMOVED:
            plan.removed = True
            self._present("APDU " + capdu[:4].hex().upper())
        if kind is Misbehaviour.BLOCK:
            self._closed.wait(BLOCK_LIMIT_S)
            raise TransportError(f"no answer to {capdu[:4].hex().upper()}: the transport was closed while waiting")
        if kind is Misbehaviour.GARBAGE:
            return _split(plan.junk(2, 300), capdu)
        if kind is Misbehaviour.SHORT:
            return _split(plan.junk(0, 1), capdu)
        real = self.inner.transmit(capdu)
        if kind is Misbehaviour.TRUNCATED:
            return Response(real.data[: len(real.data) // 2], real.sw)
        return Response(real.data + plan.junk(1, 40), real.sw)  # PADDED

    def reset(self) -> bytes:
        self._present("reset")
        return self.inner.reset()

    def power_cycle(self) -> bytes:
        self._present("power cycle")
        return self.inner.power_cycle()

    def close(self) -> None:
        self._closed.set()
        self.inner.close()

    def describe(self) -> dict[str, str]:
        return {**self.inner.describe(), "hostile": self.sabotage.kind.value}
