"""INITIALIZE DEVICE (§2): tags, first initialization, re-initialization, refusals."""

from __future__ import annotations

import pytest
from emu_helpers import (
    PIN,
    PIN2,
    SO,
    SO2,
    WRONG_SO,
    fresh_card,
    init_body,
    initialize,
    initialized_card,
    lc,
    query_so,
    query_user,
    select_applet,
    tlv,
    verify_so,
    verify_user,
)

from hsm_lifecycle.emulator import Profile
from hsm_lifecycle import protocol


def test_first_initialize_takes_any_code_and_sets_15_tries() -> None:
    card = fresh_card()
    assert card.sw(query_so()) == "6A88"
    assert card.sw(initialize(so=SO2, retries=5)) == "9000"
    assert card.sw(query_so()) == "63CF"
    assert card.sw(query_user()) == "63C5"
    assert card.sw(verify_so(SO2)) == "9000"
    assert card.status.initialized and card.status.user_max == 5


def test_all_tags_accepted() -> None:
    extra = (
        tlv(0x92, b"\x02")
        + tlv(0x93, b"\x03\x02")
        + tlv(0x95, bytes.fromhex("A000000001"))
        + tlv(0x96, bytes.fromhex("A000000002"))
        + tlv(0x97, b"\x04")
    )
    card = fresh_card()
    assert card.sw(initialize(options=0x0005, extra=extra)) == "9000"
    state = card.token._applet.state  # noqa: SLF001 - checking what was stored
    assert state.dkek is not None and state.dkek.shares == 2 and state.dkek.outstanding == 2
    assert state.public_key_auth == b"\x03\x02"
    assert state.bio_aids == (bytes.fromhex("A000000001"), bytes.fromhex("A000000002"))
    assert state.key_domains == 4 and state.options == 0x0005


def test_retry_counter_defaults_to_3_without_tag_91() -> None:
    card = fresh_card()
    assert card.sw(initialize(retries=None)) == "9000"
    assert card.sw(query_user()) == "63C3"


@pytest.mark.parametrize("retries", [1, 3, 10])
def test_retry_counter_in_range(retries: int) -> None:
    card = fresh_card()
    assert card.sw(initialize(retries=retries)) == "9000"
    assert card.sw(query_user()) == f"63C{retries:X}"


@pytest.mark.parametrize("retries", [0, 11, 15, 255])
def test_retry_counter_out_of_range_is_6a80(retries: int) -> None:
    card = fresh_card()
    assert card.sw(initialize(retries=retries)) == "6A80"
    assert card.sw(query_so()) == "6A88"


@pytest.mark.parametrize(
    "body",
    [
        init_body(so=SO[:7]),  # SO-PIN 7 bytes
        init_body(so=SO + b"\x00"),  # 9 bytes
        init_body(pin=b"12345"),  # user PIN too short
        init_body(pin=b"1" * 17),  # too long
        tlv(0x80, b"\x00\x01") + tlv(0x81, PIN) + tlv(0x91, b"\x03"),  # no SO-PIN
        tlv(0x80, b"\x00\x01") + tlv(0x82, SO),  # no user PIN
        init_body(options=1)[:-1],  # truncated TLV
        init_body() + b"\x82",  # trailing garbage
        init_body() + tlv(0x82, SO),  # duplicate tag
        init_body() + tlv(0x99, b"\x01"),  # unknown tag
        bytes.fromhex("800100") + tlv(0x81, PIN) + tlv(0x82, SO),  # options 1 byte
        init_body(extra=tlv(0x92, b"")),  # empty DKEK count
        init_body(extra=tlv(0x93, b"\x02\x03")),  # M > N
        init_body(extra=tlv(0x93, b"\x5b\x01")),  # N 91
        init_body(extra=tlv(0x95, b"")),  # empty bio AID
        init_body(extra=tlv(0x97, b"\x01\x02")),  # key domains 2 bytes
        bytes.fromhex("8080"),  # indefinite length
    ],
)
def test_malformed_bodies_are_6a80_and_change_nothing(body: bytes) -> None:
    card = initialized_card()
    before = card.status
    assert card.sw(bytes.fromhex("80500000") + lc(body)) == "6A80"
    assert card.status == before  # no SO try spent for a malformed body


def test_no_data_is_6700_and_wrong_p1p2_is_6a86() -> None:
    card = fresh_card()
    assert card.sw("80500000") == "6700"
    assert card.sw(bytes.fromhex("80500100") + lc(init_body())) == "6A86"
    assert card.sw(query_so()) == "6A88"


def test_reinit_with_right_so_pin_sets_new_user_pin_and_keeps_so_pin() -> None:
    card = initialized_card(retries=3)
    assert card.sw(verify_so(WRONG_SO)) == "63CE"
    assert card.sw(initialize(so=SO, pin=PIN2, retries=7, options=0)) == "9000"
    assert card.sw(query_so()) == "63CF"  # so-success-restores (default true)
    assert card.sw(query_user()) == "63C7"
    assert card.sw(verify_user(PIN)) == "63C6"
    assert card.sw(verify_user(PIN2)) == "9000"
    assert card.sw(verify_so(SO)) == "9000"
    data, _ = card.send(select_applet())
    assert data[-5:-3] == b"\x00\x00"  # options from the new INITIALIZE


def test_reinit_cannot_change_the_so_pin() -> None:
    card = initialized_card()
    assert card.sw(initialize(so=SO2)) == "63CE"
    assert card.sw(verify_so(SO2)) == "63CD"
    assert card.sw(verify_so(SO)) == "9000"


def test_wrong_so_pin_spends_one_try_each_time_down_to_blocked() -> None:
    card = initialized_card()
    for left in range(14, 0, -1):
        assert card.sw(initialize(so=WRONG_SO)) == f"63C{left:X}"
        assert card.status.so_tries == left
    assert card.sw(initialize(so=WRONG_SO)) == "63C0"  # last-wrong-try-sw default
    assert card.sw(query_so()) == "6983"
    # R03: not even the right code re-initializes now; the user PIN keeps working.
    assert card.sw(initialize(so=SO)) == "6983"
    assert card.status.so_tries == 0
    assert card.sw(verify_user(PIN)) == "9000"


@pytest.mark.parametrize("setting", ["6900", "6982", "6985", "6986"])
def test_init_wrong_so_sw_profile(setting: str) -> None:
    card = initialized_card(profile=Profile(init_wrong_so_sw=setting))
    assert card.sw(initialize(so=WRONG_SO)) == setting
    assert card.status.so_tries == 14


def test_wrong_init_keeps_session_and_objects() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(initialize(so=WRONG_SO, pin=PIN2)) == "63CE"
    assert card.sw(query_user()) == "9000"
    assert card.sw(verify_user(PIN)) == "9000"


@pytest.mark.parametrize("auth_after_init", [False, True])
def test_auth_after_init_profile(auth_after_init: bool) -> None:
    card = fresh_card(profile=Profile(auth_after_init=auth_after_init))
    assert card.sw(initialize()) == "9000"
    assert card.sw(query_user()) == ("9000" if auth_after_init else "63C3")
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(initialize()) == "9000"
    assert card.sw(query_user()) == ("9000" if auth_after_init else "63C3")


def test_so_success_restores_false_keeps_counter() -> None:
    card = initialized_card(profile=Profile(so_success_restores=False))
    assert card.sw(verify_so(WRONG_SO)) == "63CE"
    assert card.sw(initialize()) == "9000"
    assert card.sw(query_so()) == "63CE"


@pytest.mark.parametrize(("pin", "allowed"), [(b"123456", 3), (b"1234567", 5), (b"12345678", 10)])
def test_retries_by_pin_length_profile(pin: bytes, allowed: int) -> None:
    strict = fresh_card(profile=Profile(retries_by_pin_length=True))
    assert strict.sw(initialize(pin=pin, retries=allowed + 1 if allowed < 10 else 11)) == "6A80"
    assert strict.sw(initialize(pin=pin, retries=allowed)) == "9000"
    lax = fresh_card()
    assert lax.sw(initialize(pin=pin, retries=10)) == "9000"


def test_transport_option_sets_transport_mode() -> None:
    card = fresh_card(profile=Profile(auth_after_init=True))
    assert card.sw(initialize(options=protocol.OPTION_TRANSPORT_PIN)) == "9000"
    assert card.status.transport_pin
    assert not card.status.authenticated  # no session under a transport PIN (R11)
    assert card.sw(query_user()) == "6984"


def test_dkek_shares_zero_makes_a_random_dkek() -> None:
    card = fresh_card()
    assert card.sw(initialize(extra=tlv(0x92, b"\x00"))) == "9000"
    dkek = card.token._applet.state.dkek  # noqa: SLF001
    assert dkek is not None and dkek.outstanding == 0 and dkek.kcv != bytes(8)
