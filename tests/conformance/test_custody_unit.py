"""The custody layer and its journal on an in-process token (fast; the PC/SC proofs with OpenSC
are tests/pcsc/test_custody.py)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hsm_lifecycle.conformance.custody import Custody, PinRefused, restore_from_journal
from hsm_lifecycle.conformance.interlocks import InterlockRefused
from hsm_lifecycle.conformance.journal import Entry, Journal
from hsm_lifecycle.conformance.targets import AsRealTarget
from hsm_lifecycle.conformance.transport.base import Response, TransportError, TransportWrapper
from hsm_lifecycle.conformance.transport.inprocess import InProcessTransport
from hsm_lifecycle.emulator import Profile, VirtualToken

PIN = b"648219"
SO = bytes.fromhex("3537363231383830")
ALT = b"12345678"
SELECT = bytes.fromhex("00A404000BE82B0601040181C31F020100")


def owned(profile: Profile = Profile()) -> VirtualToken:
    token = VirtualToken.manufacture(profile=profile)
    AsRealTarget.set_up_as_owner(token)
    token.power_on()
    return token


def custody_on(token: VirtualToken, pin: bytes | None = PIN, so: bytes | None = SO, inner=None, may_wipe: bool = False) -> Custody:
    c = Custody(pin=pin, so_pin=so, so_floor=5, may_wipe=lambda: may_wipe)
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


def test_begin_proves_the_user_pin_and_the_so_pin_waits_for_its_first_use() -> None:
    token = owned()
    c = custody_on(token)
    c.begin(token.serial, c.transport, spending=True)
    assert c.user_proven and not c.so_proven  # nothing needed the SO-PIN yet: never presented
    sent = c.apdus
    c.transport.transmit(SELECT)
    c.transport.transmit(case3("00240088", SO + SO))  # its first use: proven first, then let through
    assert c.so_proven and c.apdus == sent + 4  # SELECT, the proof, its free counter query, the APDU
    assert counters(token) == (15, 3)
    assert Journal.for_serial(token.serial).exists()
    out = c.finish()
    assert out.pins_in_place and not Journal.for_serial(token.serial).exists()


@pytest.mark.parametrize("which", ["user", "so"])
def test_a_wrong_pin_costs_exactly_one_try_even_with_the_restore(which: str) -> None:
    token = owned()
    c = custody_on(token, pin=b"111111" if which == "user" else PIN, so=bytes(8) if which == "so" else SO)
    if which == "user":
        with pytest.raises(PinRefused, match="refused"):
            c.begin(token.serial, c.transport, spending=True)
    else:
        c.begin(token.serial, c.transport, spending=True)  # a run that never needs it never presents it
        assert counters(token) == (15, 3)
        with pytest.raises(PinRefused, match="refused") as stop:
            c.transport.transmit(case3("002C0081", bytes(8) + PIN))  # its first use: RESET RETRY COUNTER
        assert stop.value.exit_code == 3 and c.stopped is stop.value
    c.finish()
    assert counters(token) == ((15, 2) if which == "user" else (14, 3))


def test_the_so_floor_holds_for_the_first_presentation_too() -> None:
    token = owned()
    for _ in range(10):  # the owner mistyped it: 5 left, the floor
        token_transmit(token, case3("00240088", bytes(8) + bytes(8)))
    c = custody_on(token)
    c.begin(token.serial, c.transport, spending=True)
    with pytest.raises(InterlockRefused, match="floor"):
        c.transport.transmit(case3("00240088", SO + SO))
    c.finish()
    assert counters(token) == (5, 3)


def token_transmit(token: VirtualToken, capdu: bytes) -> str:
    t = InProcessTransport(token, kind="pcsc", reader="unit")
    t.transmit(SELECT)
    return t.transmit(capdu).sw_hex


@pytest.mark.parametrize("restores", [True, False])
def test_so_success_restores_is_seen_for_free_below_the_maximum(restores: bool) -> None:
    token = owned(Profile(so_success_restores=restores))
    token_transmit(token, case3("00240088", bytes(16)))  # the owner mistyped it once: 14
    c = custody_on(token)
    c.begin(token.serial, c.transport, spending=True)
    assert c.so_restores is None
    c.transport.transmit(case3("00240088", SO + SO))
    assert c.so_restores is restores and counters(token) == ((15 if restores else 14), 3)
    wrong = case3("00240088", bytes(8) + SO)
    if restores:  # seen to give a try back: a wrong SO-PIN may be tested, and the restore gives it back
        c.transport.transmit(wrong)
        assert counters(token)[0] == 14
    else:
        with pytest.raises(InterlockRefused, match="for good"):
            c.transport.transmit(wrong)
    out = c.finish()
    assert out.pins_in_place and counters(token) == (14, 3)  # the tries it started with


@pytest.mark.parametrize("may_wipe", [False, True])
def test_at_the_maximum_a_wrong_so_pin_waits_for_consent_to_lose_it(may_wipe: bool) -> None:
    token = owned(Profile(so_success_restores=False))
    c = custody_on(token, may_wipe=may_wipe)
    c.begin(token.serial, c.transport, spending=True)
    wrong = case3("00240088", bytes(8) + SO)
    if not may_wipe:
        with pytest.raises(InterlockRefused, match="--hsm-serial"):
            c.transport.transmit(wrong)
        c.finish()
        assert counters(token) == (15, 3)  # zero SO tries that nothing gives back
        return
    c.transport.transmit(wrong)  # consented: the try is spent to learn whether it comes back
    c.transport.transmit(case3("00240088", SO + SO))
    c.transport.transmit(bytes.fromhex("00200088"))
    assert c.so_restores is False
    with pytest.raises(InterlockRefused, match="for good"):
        c.transport.transmit(wrong)  # seen not to come back: never a second one
    c.finish()
    assert counters(token) == (14, 3)


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
    assert check.prove_so("the check")
    assert check.user_proven and check.so_proven and counters(token) == (15, 3)
