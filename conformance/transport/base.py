"""The transport interface: how the suite reaches a device (emulator or real token).

A transport moves raw APDUs; it knows nothing about the lifecycle. Implementations:
`conformance.transport.inprocess.InProcessTransport` (a `VirtualToken` in this process) and
`conformance.transport.pcsc.PcscTransport` (pyscard; real tokens and `emulator:vpcd`).
`DeadlineTransport` wraps either with a per-exchange deadline, so a hung device cannot hang a run.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class TransportError(Exception):
    """The device could not be reached or answered garbage. The message is one sentence that
    says what happened and what to do (e.g. "pcscd is not running: start it with ...")."""


class CardRemovedError(TransportError):
    """The card went away in the middle of an exchange."""


@dataclass(frozen=True)
class Response:
    data: bytes
    sw: int

    @property
    def sw_hex(self) -> str:
        return f"{self.sw:04X}"


class Transport(ABC):
    """One connection to one device. Not thread-safe: one test drives it at a time."""

    @abstractmethod
    def connect(self) -> bytes:
        """Connect (power the card on if needed) and return the ATR."""

    @abstractmethod
    def transmit(self, capdu: bytes) -> Response:
        """Send one command APDU, return data and SW. Handles 61xx/6Cxx transparently.
        Raises TransportError (never returns garbage) if the device answers < 2 bytes."""

    @abstractmethod
    def reset(self) -> bytes:
        """Warm reset: ends the card session. Returns the ATR."""

    @abstractmethod
    def power_cycle(self) -> bytes:
        """Power off, then on: ends the card session. Returns the ATR."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; idempotent."""

    @abstractmethod
    def describe(self) -> dict[str, str]:
        """What the evidence report says about the target: {"kind": "emulator"|"pcsc", "reader": ...}."""

    def reinsert(self, timeout: float) -> bytes:
        """The card came back after losing power (a power-cut rig): let go of the old
        connection and connect again, waiting up to `timeout` seconds for it. Returns the ATR."""
        self.close()
        return self.connect()

    def __enter__(self) -> "Transport":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransportWrapper(Transport):
    """A transport that adds one concern (tracing, guarding, a deadline...) to `inner` and
    passes everything else through; subclasses override only what they change."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def connect(self) -> bytes:
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> Response:
        return self.inner.transmit(capdu)

    def reset(self) -> bytes:
        return self.inner.reset()

    def power_cycle(self) -> bytes:
        return self.inner.power_cycle()

    def close(self) -> None:
        self.inner.close()

    def reinsert(self, timeout: float) -> bytes:
        return self.inner.reinsert(timeout)

    def describe(self) -> dict[str, str]:
        return self.inner.describe()


class TransportTimeout(TransportError):
    """The device gave no answer within the per-APDU deadline."""


class DeadlineTransport(TransportWrapper):
    """Gives every exchange with `inner` at most `seconds`, so a card or reader that stops
    answering fails the test in progress (TransportTimeout) instead of hanging the run.

    Each exchange runs on a daemon thread (pyscard releases the GIL inside SCardTransmit, so
    the wait is real); after a timeout that thread may stay stuck in the device, so the
    transport refuses every later call with the same error rather than queue behind it.
    """

    def __init__(self, inner: Transport, seconds: float = 30.0) -> None:
        super().__init__(inner)
        self.seconds = seconds
        self.dead: str | None = None

    def _call(self, what: str, fn: Callable[..., T], *args: object) -> T:
        if self.dead is not None:
            raise TransportTimeout(self.dead)
        outcome: list[object] = []

        def exchange() -> None:
            try:
                outcome.append(("ok", fn(*args)))
            except BaseException as exc:  # noqa: BLE001 - handed over to the caller's thread
                outcome.append(("raised", exc))

        worker = threading.Thread(target=exchange, name=f"hsm-{what}", daemon=True)
        worker.start()
        worker.join(self.seconds)
        if not outcome:
            self.dead = (f"the device gave no answer to {what} within {self.seconds:g} s: it hangs; re-insert it "
                         "(or restart the emulator) and restart the run")
            raise TransportTimeout(self.dead)
        kind, value = outcome[0]  # type: ignore[misc]
        if kind == "raised":
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]

    def connect(self) -> bytes:
        return self._call("connect", self.inner.connect)

    def transmit(self, capdu: bytes) -> Response:
        return self._call("APDU " + capdu[:4].hex().upper(), self.inner.transmit, capdu)

    def reset(self) -> bytes:
        return self._call("reset", self.inner.reset)

    def power_cycle(self) -> bytes:
        return self._call("power cycle", self.inner.power_cycle)

    def reinsert(self, timeout: float) -> bytes:
        return self._call("reconnect", self.inner.reinsert, timeout)

    def close(self) -> None:
        if self.dead is None:
            self._call("close", self.inner.close)
            return
        # The device is stuck in an exchange: try to let go, but never wait longer than a call.
        closer = threading.Thread(target=self.inner.close, name="hsm-close", daemon=True)
        closer.start()
        closer.join(self.seconds)
