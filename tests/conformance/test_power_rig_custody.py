"""Custody around a power cut the suite arms itself (a power-cut rig): the cut command spends a
try by design, so it passes the gate only with the restoring PIN proven; the journal written
before it says what is pending while the power is off; the run goes on (no "token lost") and the
try is given back at the end."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.custody import Custody, TokenLost
from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.journal import Journal
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.conformance.transport.base import CardRemovedError, Response, TransportError, TransportWrapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken

PIN = b"648219"
SO = bytes.fromhex("3537363231383830")
WRONG_VERIFY = bytes.fromhex("0020008106") + b"000000"


class CutAnswer(TransportWrapper):
    """The token runs `capdu` (its try is spent), then loses power before answering."""

    def __init__(self, inner, capdu: bytes, serial: str) -> None:
        super().__init__(inner)
        self.capdu, self.serial = capdu, serial
        self.pending_at_cut: str | None = None

    def transmit(self, capdu: bytes) -> Response:
        if capdu == self.capdu and self.pending_at_cut is None:
            self.pending_at_cut = Journal.for_serial(self.serial).load().pending
            self.inner.transmit(capdu)
            raise CardRemovedError("the card was removed (power cut)")
        return self.inner.transmit(capdu)


def owned() -> VirtualToken:
    token = VirtualToken.manufacture()
    AsRealTarget.set_up_as_owner(token)
    token.power_on()
    return token


def custody(token: VirtualToken, pin: bytes | None = PIN, so: bytes | None = SO) -> tuple[Custody, CutAnswer]:
    cutting = CutAnswer(InProcessTransport(token, kind="pcsc", reader="unit"), WRONG_VERIFY, token.serial)
    c = Custody(pin=pin, so_pin=so, so_floor=5, may_wipe=lambda: False)
    c.wrap(cutting)
    return c, cutting


def test_an_armed_cut_is_journaled_before_it_and_the_run_goes_on() -> None:
    token = owned()
    c, cutting = custody(token)
    c.begin(token.serial, c.transport, spending=True)
    with c.power_cut(), pytest.raises(TransportError) as raised:
        c.transport.transmit(WRONG_VERIFY)
    assert not isinstance(raised.value, TokenLost) and c.lost is None and c.cuts == 1
    assert cutting.pending_at_cut and "VERIFY" in cutting.pending_at_cut.upper()  # the window was journaled
    assert Journal.for_serial(token.serial).load().pending == ""  # written again after the cut
    assert c.t.user_tries is None  # unknown until read again: no answer came
    assert token.status().user_tries == 2
    assert c.transport.transmit(bytes.fromhex("00200081")).sw == 0x63C2  # the token is still ours
    out = c.finish()
    assert out.pins_in_place and token.status().user_tries == 3


def test_an_unarmed_loss_still_stops_the_run() -> None:
    token = owned()
    c, _ = custody(token)
    c.begin(token.serial, c.transport, spending=True)
    with pytest.raises(TokenLost):
        c.transport.transmit(WRONG_VERIFY)
    assert c.lost is not None


def test_a_cut_needs_the_restoring_pin_proven() -> None:
    token = owned()
    c, cutting = custody(token, pin=None)
    c.begin(token.serial, c.transport, spending=True)
    with c.power_cut(), pytest.raises(InterlockRefused, match="--hsm-pin"):
        c.transport.transmit(WRONG_VERIFY)
    assert cutting.pending_at_cut is None and token.status().user_tries == 3  # nothing reached the token
