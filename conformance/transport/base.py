"""The transport interface: how the suite reaches a device (emulator or real token).

A transport moves raw APDUs; it knows nothing about the lifecycle. Implementations:
`conformance.transport.inprocess.InProcessTransport` (a `VirtualToken` in this process) and
`conformance.transport.pcsc.PcscTransport` (pyscard; real tokens and `emulator:vpcd`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


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

    def __enter__(self) -> "Transport":
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
