"""doctor reads a token without spending anything, in every abstract state."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.doctor import DoctorRefusal, ReadOnlyTransport, diagnose, read_token
from hsm_lifecycle.conformance.interlocks import Apdu, apdu_cost
from hsm_lifecycle.model.cost import CostClass
from hsm_lifecycle.protocol import AID

from doctor_tokens import STATE_RECIPES, SpyTransport, firmware_reset_token

# The only APDU shapes doctor may send (header, or the whole command where it is fixed).
ALLOWED_EXACT = {
    bytes.fromhex("00A404000B") + AID + b"\x00",  # SELECT the applet
    bytes.fromhex("00200081"),  # user-PIN status query, no data
    bytes.fromhex("00200088"),  # SO-PIN status query, no data
    bytes.fromhex("80580000000000"),  # ENUMERATE OBJECTS, extended Le
}
READ_2F02 = bytes.fromhex("00B12F02")


def _assert_only_free_reads(sent: list[bytes]) -> None:
    assert sent, "doctor sent nothing"
    for capdu in sent:
        assert capdu in ALLOWED_EXACT or capdu.startswith(READ_2F02), f"unexpected APDU {capdu.hex().upper()}"
        parsed = Apdu.parse(capdu)
        assert apdu_cost(parsed, set()) == CostClass.FREE
        assert not (parsed.ins == 0x20 and parsed.data), "a PIN was presented"


@pytest.mark.parametrize("state", [*sorted(STATE_RECIPES), "firmware-reset"])
def test_each_state_is_named_and_nothing_is_spent(state, token_in):
    built = firmware_reset_token()[0] if state == "firmware-reset" else token_in(state)
    before = built.token.status()
    spy = SpyTransport(built.transport)
    reading = read_token(spy)
    _assert_only_free_reads(spy.sent)
    after = built.token.status()
    # Counters, keys, options, identity: all as they were.
    for name in ("initialized", "so_tries", "user_tries", "options", "keys", "serial", "identity_generation"):
        assert getattr(after, name) == getattr(before, name), name
    diag = diagnose(reading)
    if state in ("shipped", "firmware-reset"):
        assert diag.states == ("shipped", "firmware-reset")  # the same from outside
    else:
        assert diag.states == (state,)
    assert reading.key_ids is None or len(reading.key_ids) == built.keys
    assert reading.identity is not None and reading.identity.verified
    assert reading.identity.serial == built.token.serial


def test_reading_of_the_forum_threads_token(token_in):
    reading = read_token(token_in("initialized").transport)
    assert (reading.so_tries, reading.user_tries, reading.options) == (7, 2, 0x0001)
    assert reading.version is not None and reading.version.count(".") == 1
    assert reading.key_ids == (1, 2)
    assert not reading.identity.genuine  # the emulator chains to the project's TEST root


@pytest.mark.parametrize(
    "capdu",
    [
        "0020008106363438323139",  # VERIFY with a PIN
        "0020008808" + "3537363231383830",  # VERIFY SO with data
        "80500000",  # INITIALIZE
        "002C010008" + "3537363231383830",  # RESET RETRY COUNTER
        "00E4020002CC01",  # DELETE a key
    ],
)
def test_the_guard_refuses_anything_but_free_reads(capdu, token_in):
    spy = SpyTransport(token_in("initialized").transport)
    guard = ReadOnlyTransport(spy)
    guard.connect()
    with pytest.raises(DoctorRefusal):
        guard.transmit(bytes.fromhex(capdu))
    assert spy.sent == []


def test_after_a_firmware_update_the_token_shows_its_new_identity():
    built, old_serial = firmware_reset_token()
    reading = read_token(built.transport)
    assert not reading.initialized and reading.key_ids in (None, ())
    assert reading.identity is not None and reading.identity.verified
    assert reading.identity.serial == built.token.serial != old_serial
