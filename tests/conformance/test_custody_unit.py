"""The custody layer and its journal on an in-process token (fast; the PC/SC proofs with OpenSC
are tests/pcsc/test_custody.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.custody import Custody, restore_from_journal
from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.journal import Entry, Journal
from hsm_lifecycle.conformance.observe import CredentialError
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.conformance.transport.base import Response, TransportError, TransportWrapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import VirtualToken

PIN = b"648219"
SO = bytes.fromhex("3537363231383830")
ALT = b"12345678"
SELECT = bytes.fromhex("00A404000BE82B0601040181C31F020100")


def owned() -> VirtualToken:
    token = VirtualToken.manufacture()
    AsRealTarget.set_up_as_owner(token)
    token.power_on()
    return token


def custody_on(token: VirtualToken, pin: bytes | None = PIN, so: bytes | None = SO, inner=None) -> Custody:
    c = Custody(pin=pin, so_pin=so, so_floor=5, may_wipe=lambda: False)
    c.wrap(inner or InProcessTransport(token, kind="pcsc", reader="unit"))
    return c


def counters(token: VirtualToken) -> tuple[int, int]:
    s = token.status()
    return s.so_tries, s.user_tries


def case3(hexhead: str, data: bytes) -> bytes:
    return bytes.fromhex(hexhead) + bytes([len(data)]) + data


def test_the_journal_is_atomic_private_and_round_trips(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state" / "UTEM1.json")
    entry = Entry("UTEM1", "r", PIN.hex(), SO.hex(), (PIN.hex(),), (SO.hex(),), 3, 15, ("CC01",))
    journal.write(entry)
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    assert journal.load() == entry
    assert [p.name for p in journal.path.parent.iterdir()] == ["UTEM1.json"]  # no temporary left
    journal.remove()
    assert not journal.exists()


def test_begin_proves_both_pins_with_one_presentation_each_and_spends_nothing() -> None:
    token = owned()
    c = custody_on(token)
    c.begin(token.serial, c.transport, spending=True)
    assert c.user_proven and c.so_proven
    assert counters(token) == (15, 3)
    assert Journal.for_serial(token.serial).exists()
    out = c.finish()
    assert out.pins_in_place and not Journal.for_serial(token.serial).exists()


@pytest.mark.parametrize("which", ["user", "so"])
def test_a_wrong_pin_costs_exactly_one_try_even_with_the_restore(which: str) -> None:
    token = owned()
    c = custody_on(token, pin=b"111111" if which == "user" else PIN, so=bytes(8) if which == "so" else SO)
    with pytest.raises(CredentialError, match="refused"):
        c.begin(token.serial, c.transport, spending=True)
    c.finish()
    assert counters(token) == ((15, 2) if which == "user" else (14, 3))


def test_without_pins_nothing_that_can_spend_a_try_passes() -> None:
    token = owned()
    c = custody_on(token, pin=None, so=None)
    c.begin(token.serial, c.transport, spending=True)
    for capdu in (case3("00200081", b"000000"), case3("00240088", bytes(16)), case3("002C0181", SO), case3("00200081", b"12345")):
        with pytest.raises(InterlockRefused):
            c.transport.transmit(capdu)
    c.transport.transmit(SELECT)  # free reads pass
    assert counters(token) == (15, 3)


def test_no_apdu_that_costs_goes_before_the_counters_are_read() -> None:
    token = owned()
    c = custody_on(token)
    with pytest.raises(InterlockRefused, match="before"):
        c.transport.transmit(case3("00200081", PIN))


def test_a_wrong_user_pin_that_would_block_needs_the_way_back() -> None:
    token = owned()
    c = custody_on(token, so=None)  # no SO-PIN: RESET RETRY COUNTER cannot bring it back
    c.begin(token.serial, c.transport, spending=True)
    c.transport.transmit(SELECT)
    c.transport.transmit(case3("00200081", b"000000"))
    c.transport.transmit(case3("00200081", b"000000"))
    with pytest.raises(InterlockRefused, match="block"):
        c.transport.transmit(case3("00200081", b"000000"))
    c.finish()
    assert counters(token) == (15, 3)


class DiesAfter(TransportWrapper):
    """Passes `capdu` to the token, then loses the answer (the token was pulled mid-APDU)."""

    def __init__(self, inner, capdu: bytes) -> None:
        super().__init__(inner)
        self.capdu, self.dead = capdu, False

    def transmit(self, capdu: bytes) -> Response:
        if self.dead:
            raise TransportError("card removed")
        rsp = self.inner.transmit(capdu)
        if capdu == self.capdu:
            self.dead = True
            raise TransportError("card removed")
        return rsp


@pytest.mark.parametrize("pin_ref", ["81", "88"])
def test_a_token_lost_inside_a_pin_change_gets_its_owner_pin_back_from_the_journal(pin_ref: str) -> None:
    token = owned()
    change = case3("002400" + pin_ref, PIN + ALT if pin_ref == "81" else SO + bytes.fromhex("3132333435363738"))
    c = custody_on(token, inner=DiesAfter(InProcessTransport(token, kind="pcsc", reader="unit"), change))
    c.begin(token.serial, c.transport, spending=True)
    c.transport.transmit(SELECT)
    if pin_ref == "81":
        c.transport.transmit(case3("00200081", PIN))
    with pytest.raises(TransportError):
        c.transport.transmit(change)
    journal = Journal.for_serial(token.serial)
    entry = journal.load()
    assert len(entry.user_pins if pin_ref == "81" else entry.so_pins) == 2  # old or new: unknown
    assert "CHANGE REFERENCE DATA" in entry.pending
    out = c.finish()
    assert not out.pins_in_place and journal.exists() and "restore" in out.sentence
    # The token is back (a new process, knowing nothing but the journal).
    later = custody_on(token, pin=None, so=None)
    done = restore_from_journal(later, journal, later.transport)
    assert done.pins_in_place, done.sentence
    assert counters(token) == (15, 3) and not journal.exists()
    check = custody_on(token)
    check.begin(token.serial, check.transport, spending=True)  # both owner's PINs prove again
    assert check.user_proven and check.so_proven and counters(token) == (15, 3)
