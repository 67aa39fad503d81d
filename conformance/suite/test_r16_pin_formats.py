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
    CLA_PROPRIETARY,
    OPTION_RESET_RETRY_COUNTER,
    TAG_INIT_OPTIONS,
    TAG_INIT_SO_PIN,
    TAG_INIT_USER_PIN,
    TAG_INIT_USER_PIN_RETRY,
    Ins,
)

SHORT_USER = b"12345"  # 5 bytes
ERROR = "an error status word"


@pytest.mark.rule("R16")
@pytest.mark.cost("free")
def test_r16_wrong_length_user_pin_in_verify_spends_nothing(hsm):
    hsm.provision()
    hsm.step(C.query_user())
    with hsm.checking("R16.verify-short-user-pin-free"):
        hsm.steps(C.verify_user("wrong_length"), C.query_user(), C.verify_user("wrong_length"), C.query_user())
    with hsm.checking("R16.verify-long-user-pin-free"):
        hsm.steps(C.verify_user("over_long"), C.query_user(), C.verify_user("over_long"), C.query_user())


@pytest.mark.rule("R16")
@pytest.mark.cost("tries")
def test_r16_wrong_length_pins_in_change_and_rrc_spend_nothing(hsm):
    hsm.provision(options=OPTION_RESET_RETRY_COUNTER)
    with hsm.checking("R16.change-user-wrong-length-free"):
        hsm.steps(C.change_user_pin("wrong_length"), C.change_user_pin("over_long"), C.query_user())
        hsm.steps(C.select(), C.verify_user("right"))  # the old PIN is still the PIN
    with hsm.checking("R16.rrc-user-wrong-length-free"):
        hsm.steps(C.reset_retry_counter("wrong_length", True), C.reset_retry_counter("over_long", True), C.query_so())
        hsm.steps(C.select(), C.verify_user("right"))
    with hsm.checking("R16.so-pin-wrong-length-free"):
        hsm.steps(C.change_so_pin("wrong_length"), C.change_so_pin("over_long"), C.query_so())
        hsm.steps(C.reset_retry_counter("wrong_length", False), C.reset_retry_counter("over_long", False), C.query_so())


@pytest.mark.rule("R16")
@pytest.mark.cost("wipes")
def test_r16_wrong_length_pins_in_initialize_spend_nothing(hsm):
    hsm.provision(keys=1)
    pins, check = hsm.mapper.pins, "R16.initialize-wrong-length-free"
    with hsm.checking(check):
        hsm.steps(C.initialize("wrong_length"), C.initialize("over_long"), C.query_so(), C.query_user())
        # A user PIN of the wrong length in INITIALIZE is outside the alphabet (its SO-PIN is right).
        body = b"".join((
            tlv.encode(TAG_INIT_OPTIONS, OPTION_RESET_RETRY_COUNTER.to_bytes(2, "big")),
            tlv.encode(TAG_INIT_USER_PIN, SHORT_USER), tlv.encode(TAG_INIT_SO_PIN, pins.so_pin), tlv.encode(TAG_INIT_USER_PIN_RETRY, b"\x03"),
        ))  # fmt: skip
        what = f"INITIALIZE with a {len(SHORT_USER)}-byte user PIN"
        raw.expect_sw(hsm, check, what, apdu(CLA_PROPRIETARY, Ins.INITIALIZE_DEVICE, 0, 0, body), raw.REFUSED, ERROR)
        hsm.steps(C.query_so(), C.query_user())
        hsm.check_keys()
