"""APDU builders and a small driver for the emulator's unit tests.

Written from the protocol digest by hand (not through conformance's mapper), so these tests
check the emulator against the digest independently of the suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_lifecycle.emulator import VirtualToken
from hsm_lifecycle import protocol

SO = protocol.DEFAULT_SO_PIN  # "57621880" in ASCII
SO2 = bytes.fromhex("3132333435363738")
WRONG_SO = bytes(8)
PIN = protocol.DEFAULT_USER_PIN  # b"648219"
PIN2 = b"12345678"
WRONG_PIN = b"000000"
SHORT_PIN = b"12345"


def lc(data: bytes) -> bytes:
    """Short Lc || data."""
    assert 0 < len(data) < 256
    return bytes([len(data)]) + data


def tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([tag, len(value)]) + value


def select_applet(p2: int = 0x00, le: bool = True) -> bytes:
    return bytes([0x00, 0xA4, 0x04, p2]) + lc(protocol.AID) + (b"\x00" if le else b"")


def init_body(
    so: bytes = SO,
    pin: bytes = PIN,
    options: int = protocol.OPTION_RESET_RETRY_COUNTER,
    retries: int | None = 3,
    extra: bytes = b"",
) -> bytes:
    body = tlv(0x80, options.to_bytes(2, "big")) + tlv(0x81, pin) + tlv(0x82, so)
    if retries is not None:
        body += tlv(0x91, bytes([retries]))
    return body + extra


def initialize(**kwargs: object) -> bytes:
    return bytes([0x80, 0x50, 0x00, 0x00]) + lc(init_body(**kwargs))  # type: ignore[arg-type]


def verify(ref: int, pin: bytes = b"") -> bytes:
    return bytes([0x00, 0x20, 0x00, ref]) + (lc(pin) if pin else b"")


def query_user() -> bytes:
    return verify(protocol.PIN_USER)


def query_so() -> bytes:
    return verify(protocol.PIN_SO)


def verify_user(pin: bytes) -> bytes:
    return verify(protocol.PIN_USER, pin)


def verify_so(pin: bytes) -> bytes:
    return verify(protocol.PIN_SO, pin)


def change_user(old: bytes, new: bytes) -> bytes:
    return bytes([0x00, 0x24, 0x00, 0x81]) + lc(old + new)


def change_so(old: bytes, new: bytes) -> bytes:
    return bytes([0x00, 0x24, 0x00, 0x88]) + lc(old + new)


def rrc(so: bytes, new_pin: bytes | None = None) -> bytes:
    if new_pin is None:
        return bytes([0x00, 0x2C, 0x01, 0x81]) + lc(so)
    return bytes([0x00, 0x2C, 0x00, 0x81]) + lc(so + new_pin)


@dataclass
class Card:
    """A token and the last answer: `card.sw(apdu)` sends and returns the SW as "63C2"."""

    token: VirtualToken
    data: bytes = b""

    def send(self, capdu: bytes) -> tuple[bytes, int]:
        rapdu = self.token.transmit(capdu)
        assert len(rapdu) >= 2
        self.data = rapdu[:-2]
        assert self.token.last_internal_error is None, self.token.last_internal_error
        return self.data, int.from_bytes(rapdu[-2:], "big")

    def sw(self, capdu: bytes | str) -> str:
        if isinstance(capdu, str):
            capdu = bytes.fromhex(capdu.replace(" ", ""))
        return f"{self.send(capdu)[1]:04X}"

    @property
    def status(self):  # type: ignore[no-untyped-def]
        return self.token.status()


def fresh_card(**manufacture: object) -> Card:
    """A shipped token, powered, applet selected."""
    card = Card(VirtualToken.manufacture(**manufacture))  # type: ignore[arg-type]
    card.token.power_on()
    assert card.sw(select_applet()) == "9000"
    return card


def initialized_card(
    options: int = protocol.OPTION_RESET_RETRY_COUNTER, retries: int = 3, **manufacture: object
) -> Card:
    card = fresh_card(**manufacture)
    assert card.sw(initialize(options=options, retries=retries)) == "9000"
    return card
