"""SELECT of the applet (§1): FCP, P2 variants, foreign AIDs, the unselected card, sessions."""

from __future__ import annotations

import pytest
from emu_helpers import (
    PIN,
    Card,
    fresh_card,
    initialize,
    initialized_card,
    lc,
    query_user,
    select_applet,
    verify_user,
)

from hsm_lifecycle.emulator import Profile, VirtualToken
from hsm_lifecycle import protocol, tlv


def proprietary(fcp: bytes) -> bytes:
    outer = tlv.decode_exact(fcp)
    assert outer.tag == protocol.TAG_FCP
    return tlv.require(outer.children(), protocol.TAG_FCP_PROPRIETARY).value


def test_select_answers_fcp_with_tag_85() -> None:
    card = fresh_card()
    data, sw = card.send(select_applet())
    assert sw == 0x9000
    major, minor = protocol.DEFAULT_VERSION
    assert proprietary(data) == bytes([0x00, 0x00, 0xFF, major, minor])


def test_fcp_shows_options_after_initialize() -> None:
    card = fresh_card()
    assert card.sw(initialize(options=0x0003)) == "9000"
    data, _ = card.send(select_applet())
    assert proprietary(data)[:3] == bytes([0x00, 0x03, 0xFF])


def test_fcp_version_follows_profile() -> None:
    card = fresh_card(profile=Profile(version=(4, 1)))
    data, _ = card.send(select_applet())
    assert proprietary(data)[-2:] == b"\x04\x01"


@pytest.mark.parametrize("p2", [0x00, 0x04])
def test_select_p2_00_and_04_answer_fcp(p2: int) -> None:
    card = fresh_card()
    data, sw = card.send(select_applet(p2))
    assert sw == 0x9000 and data[0] == protocol.TAG_FCP
    # CardContact's tools send P2=04 without Le.
    data, sw = card.send(select_applet(p2, le=False))
    assert sw == 0x9000 and data[0] == protocol.TAG_FCP


def test_select_p2_0c_answers_nothing() -> None:
    card = fresh_card()
    assert card.send(select_applet(0x0C, le=False)) == (b"", 0x9000)


@pytest.mark.parametrize("p2", [0x01, 0x02, 0x08, 0x10])
def test_select_other_p2_is_6a86(p2: int) -> None:
    card = Card(VirtualToken.manufacture())
    assert card.sw(select_applet(p2)) == "6A86"


@pytest.mark.parametrize(
    "aid",
    [
        "A0000001160300",  # coolkey-style
        "A00000000101",  # muscle
        "E82B0601040181C31F02",  # our AID, one byte short
        "E82B0601040181C31F020102",  # one byte long
        "A000000003000000",  # a card manager
    ],
)
def test_foreign_aids_are_6a82(aid: str) -> None:
    card = Card(VirtualToken.manufacture())
    assert card.sw(bytes.fromhex("00A40400") + lc(bytes.fromhex(aid)) + b"\x00") == "6A82"
    # Still not selected: the applet's commands are unknown.
    assert card.sw(query_user()) == "6D00"


def test_failed_select_keeps_applet_and_login() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(bytes.fromhex("00A4040007A000000116030000")) == "6A82"
    assert card.sw(query_user()) == "9000"


@pytest.mark.parametrize(
    "capdu",
    ["00200081", "00200088", "80500000 03 800200", "0024008110" + "00" * 16, "002C0181083132333435363738"],
)
def test_commands_before_select_are_6d00(capdu: str) -> None:
    card = Card(VirtualToken.manufacture())
    card.token.power_on()
    assert card.sw(capdu) == "6D00"


def test_select_ef_before_applet_is_6a82() -> None:
    card = Card(VirtualToken.manufacture())
    assert card.sw("00A40000022F0200") == "6A82"


def test_reselect_ends_session() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(query_user()) == "9000"
    assert card.sw(select_applet()) == "9000"
    assert card.sw(query_user()) == "63C3"


@pytest.mark.parametrize("how", ["reset", "power"])
def test_reset_and_power_off_end_session_and_deselect(how: str) -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    if how == "reset":
        assert card.token.reset() == protocol.ATR
    else:
        card.token.power_off()
        assert card.token.power_on() == protocol.ATR
    assert card.sw(query_user()) == "6D00"
    assert card.sw(select_applet()) == "9000"
    assert card.sw(query_user()) == "63C3"


def test_atr_is_the_standard_one() -> None:
    token = VirtualToken.manufacture()
    assert token.power_on() == protocol.ATR
    assert token.reset() == protocol.ATR


def test_transmit_powers_on_an_unpowered_token() -> None:
    token = VirtualToken.manufacture()
    assert not token.powered
    assert token.transmit(select_applet())[-2:] == b"\x90\x00"
    assert token.powered
