"""R16 pin-formats: the SO-PIN is exactly 8 bytes, the user PIN 6..16 bytes; a PIN of the wrong
length is refused without spending a try, whichever command carries it (the SW is the open
behaviour wrong-length-pin-sw). The ASCII-hex trap is a tool requirement: `doctor` flags it
(tests/doctor), no device answer decides it."""

import pytest

from hsm_lifecycle import tlv
from hsm_lifecycle.conformance import offalphabet as raw
from hsm_lifecycle.conformance.mapper import apdu
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.protocol import (
    CLA_ISO,
    CLA_PROPRIETARY,
    OPTION_RESET_RETRY_COUNTER,
    PIN_SO,
    PIN_USER,
    TAG_INIT_OPTIONS,
    TAG_INIT_SO_PIN,
    TAG_INIT_USER_PIN,
    TAG_INIT_USER_PIN_RETRY,
    Ins,
)

SHORT_USER, LONG_USER = b"12345", b"12345678901234567"  # 5 and 17 bytes
ERROR = "an error status word"


@pytest.mark.rule("R16")
@pytest.mark.cost("free")
def test_r16_wrong_length_user_pin_in_verify_spends_nothing(hsm):
    hsm.provision()
    hsm.step(C.query_user())
    with hsm.checking("R16.verify-short-user-pin-free"):
        hsm.steps(C.verify_user("wrong_length"), C.query_user(), C.verify_user("wrong_length"), C.query_user())
    with hsm.checking("R16.verify-long-user-pin-free"):
        raw.expect_sw(hsm, "R16.verify-long-user-pin-free", "VERIFY 81 with 17 bytes", apdu(CLA_ISO, Ins.VERIFY, 0, PIN_USER, LONG_USER), raw.REFUSED, ERROR)
        hsm.step(C.query_user())


@pytest.mark.rule("R16")
@pytest.mark.cost("tries")
def test_r16_wrong_length_pins_in_change_and_rrc_spend_nothing(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    pins = hsm.mapper.pins
    with hsm.checking("R16.change-user-wrong-length-free"):
        for new in (SHORT_USER, LONG_USER):
            capdu = apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_USER, pins.user_pin + new)
            raw.expect_sw(hsm, "R16.change-user-wrong-length-free", f"CHANGE 81 to a {len(new)}-byte PIN", capdu, raw.REFUSED, ERROR)
        hsm.steps(C.select(), C.query_user(), C.verify_user("right"))  # the old PIN is still the PIN
    with hsm.checking("R16.rrc-user-wrong-length-free"):
        capdu = apdu(CLA_ISO, Ins.RESET_RETRY_COUNTER, 0x00, PIN_USER, pins.so_pin + SHORT_USER)
        raw.expect_sw(hsm, "R16.rrc-user-wrong-length-free", "RESET RETRY COUNTER to a 5-byte PIN", capdu, raw.REFUSED, ERROR)
        hsm.steps(C.query_so(), C.select(), C.verify_user("right"))
    with hsm.checking("R16.so-pin-wrong-length-free"):
        for old in (pins.so_pin[:7], pins.so_pin + b"\x00"):
            capdu = apdu(CLA_ISO, Ins.CHANGE_REFERENCE_DATA, 0, PIN_SO, old + pins.next_so_pin)
            raw.expect_sw(hsm, "R16.so-pin-wrong-length-free", f"CHANGE 88 with a {len(old)}-byte SO-PIN", capdu, raw.REFUSED, ERROR)
        hsm.step(C.query_so())


@pytest.mark.rule("R16")
@pytest.mark.cost("wipes")
def test_r16_wrong_length_pins_in_initialize_spend_nothing(hsm):
    hsm.provision(keys=1)
    pins, check = hsm.mapper.pins, "R16.initialize-wrong-length-free"
    with hsm.checking(check):
        for so, user in ((pins.so_pin[:7], pins.user_pin), (pins.so_pin, SHORT_USER)):
            body = b"".join((
                tlv.encode(TAG_INIT_OPTIONS, OPTION_RESET_RETRY_COUNTER.to_bytes(2, "big")),
                tlv.encode(TAG_INIT_USER_PIN, user), tlv.encode(TAG_INIT_SO_PIN, so), tlv.encode(TAG_INIT_USER_PIN_RETRY, b"\x03"),
            ))  # fmt: skip
            what = f"INITIALIZE with a {len(so)}-byte SO-PIN and a {len(user)}-byte user PIN"
            raw.expect_sw(hsm, check, what, apdu(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, body), raw.REFUSED, ERROR)
        hsm.steps(C.query_so(), C.query_user())
        hsm.check_keys()
