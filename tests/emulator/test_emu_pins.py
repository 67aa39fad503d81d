"""VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER (§3, docs/design.md's table)."""

from __future__ import annotations

import pytest
from emu_helpers import (
    PIN,
    PIN2,
    SHORT_PIN,
    SO,
    SO2,
    WRONG_PIN,
    WRONG_SO,
    change_so,
    change_user,
    fresh_card,
    initialize,
    initialized_card,
    lc,
    query_so,
    query_user,
    rrc,
    select_applet,
    verify,
    verify_so,
    verify_user,
)

from hsm_lifecycle.emulator import Profile
from hsm_lifecycle import protocol

# --- not initialized (R20) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "capdu",
    [
        query_user(),
        query_so(),
        verify_user(PIN),
        verify_so(SO),
        change_user(PIN, PIN2),
        change_so(SO, SO2),
        rrc(SO),
        rrc(SO, PIN),
    ],
)
def test_uninitialized_answers_6a88_and_changes_nothing(capdu: bytes) -> None:
    card = fresh_card()
    before = card.status
    assert card.sw(capdu) == "6A88"
    assert card.status == before
    assert card.token.writes == 0


# --- VERIFY 81 ---------------------------------------------------------------------------


def test_query_is_free_and_reports_tries() -> None:
    card = initialized_card(retries=5)
    writes = card.token.writes
    for _ in range(20):
        assert card.sw(query_user()) == "63C5"
        assert card.sw(query_so()) == "63CF"
    assert card.token.writes == writes


def test_wrong_pin_spends_and_right_pin_restores() -> None:
    card = initialized_card(retries=3)
    assert card.sw(verify_user(WRONG_PIN)) == "63C2"
    assert card.sw(query_user()) == "63C2"
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(query_user()) == "9000"  # authenticated in this session
    assert card.status.user_tries == 3


def test_wrong_pin_ends_authentication() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(verify_user(WRONG_PIN)) == "63C2"
    assert card.sw(query_user()) == "63C2"


@pytest.mark.parametrize(("setting", "expected"), [("63C0", "63C0"), ("6983", "6983")])
def test_last_wrong_try_profile_and_block(setting: str, expected: str) -> None:
    card = initialized_card(retries=2, profile=Profile(last_wrong_try_sw=setting))
    assert card.sw(verify_user(WRONG_PIN)) == "63C1"
    assert card.sw(verify_user(WRONG_PIN)) == expected
    assert card.sw(query_user()) == "6983"
    assert card.sw(verify_user(PIN)) == "6983"  # R05: even the right PIN
    assert card.sw(verify_user(WRONG_PIN)) == "6983"
    assert card.status.user_tries == 0 and not card.status.authenticated


@pytest.mark.parametrize("pin", [SHORT_PIN, b"1", b"1" * 17, b"1" * 40])
@pytest.mark.parametrize("setting", ["6A80", "6700", "63Cx"])
def test_wrong_length_pin_spends_nothing(pin: bytes, setting: str) -> None:
    card = initialized_card(profile=Profile(wrong_length_pin_sw=setting))
    expected = "63C3" if setting == "63Cx" else setting
    assert card.sw(verify_user(pin)) == expected
    assert card.status.user_tries == 3


def test_wrong_length_where_blocked_or_transport() -> None:
    card = initialized_card(retries=1)
    card.sw(verify_user(WRONG_PIN))
    assert card.sw(verify_user(SHORT_PIN)) == "6983"
    transport = initialized_card(options=protocol.OPTION_TRANSPORT_PIN)
    assert transport.sw(verify_user(SHORT_PIN)) == "6984"


@pytest.mark.parametrize("p2", [0x85, 0x86])
def test_verify_bio_references_are_6a88(p2: int) -> None:
    card = initialized_card()
    assert card.sw(verify(p2)) == "6A88"
    assert card.sw(verify(p2, PIN)) == "6A88"


@pytest.mark.parametrize("p1p2", ["0181", "0001", "0082", "0080", "FF88"])
def test_verify_bad_p1_p2_is_6a86(p1p2: str) -> None:
    card = initialized_card()
    assert card.sw("0020" + p1p2) == "6A86"


def test_sixteen_byte_pin_accepted() -> None:
    card = fresh_card()
    long_pin = b"1234567812345678"
    assert card.sw(initialize(pin=long_pin)) == "9000"
    assert card.sw(verify_user(long_pin)) == "9000"


# --- VERIFY 88 ---------------------------------------------------------------------------


def test_verify_so_checks_and_spends() -> None:
    card = initialized_card()
    assert card.sw(verify_so(WRONG_SO)) == "63CE"
    assert card.sw(verify_so(SO)) == "9000"
    assert card.sw(query_so()) == "63CF"
    assert card.sw(query_user()) == "63C3"  # the SO-PIN logs nobody in (R09)


def test_verify_so_wrong_length_spends_nothing() -> None:
    card = initialized_card()
    assert card.sw(verify_so(SO[:7])) == "6A80"
    assert card.sw(verify_so(SO + SO)) == "6A80"
    assert card.status.so_tries == 15


def test_so_pin_blocks_after_15() -> None:
    card = initialized_card()
    for left in range(14, -1, -1):
        assert card.sw(verify_so(WRONG_SO)) == f"63C{left:X}"
    assert card.sw(verify_so(SO)) == "6983"
    assert card.sw(query_so()) == "6983"


# --- CHANGE REFERENCE DATA -------------------------------------------------------------------


def test_change_user_pin() -> None:
    card = initialized_card()
    assert card.sw(verify_user(WRONG_PIN)) == "63C2"
    assert card.sw(change_user(PIN, PIN2)) == "9000"
    assert card.status.user_tries == 3
    assert card.sw(query_user()) == "63C3"  # auth-after-change default false
    assert card.sw(verify_user(PIN2)) == "9000"
    assert card.sw(change_user(PIN2, b"1234567812345678")) == "9000"
    assert card.sw(verify_user(b"1234567812345678")) == "9000"


def test_change_user_pin_wrong_old_spends() -> None:
    card = initialized_card()
    assert card.sw(verify_user(PIN)) == "9000"
    assert card.sw(change_user(WRONG_PIN, PIN2)) == "63C2"
    assert card.sw(query_user()) == "63C2"
    assert card.sw(verify_user(PIN)) == "9000"


def test_change_user_pin_old_length_comes_from_the_card() -> None:
    card = initialized_card()
    # "64821912345678": the card splits after 6 bytes, whatever the client meant.
    assert card.sw(change_user(PIN + b"1", b"2345678")) == "9000"
    assert card.sw(verify_user(b"12345678")) == "9000"


@pytest.mark.parametrize("new", [b"", b"12345", b"1" * 17])
def test_change_user_wrong_new_length_spends_nothing(new: bytes) -> None:
    card = initialized_card()
    capdu = change_user(PIN, new) if new else bytes.fromhex("00240081") + lc(PIN)
    assert card.sw(capdu) == "6A80"
    assert card.status.user_tries == 3
    assert card.sw(verify_user(PIN)) == "9000"


def test_change_user_blocked_is_6983() -> None:
    card = initialized_card(retries=1)
    card.sw(verify_user(WRONG_PIN))
    assert card.sw(change_user(PIN, PIN2)) == "6983"


def test_auth_after_change_profile() -> None:
    card = initialized_card(profile=Profile(auth_after_change=True))
    assert card.sw(change_user(PIN, PIN2)) == "9000"
    assert card.sw(query_user()) == "9000"


def test_change_so_pin() -> None:
    card = initialized_card()
    assert card.sw(change_so(SO, SO2)) == "9000"
    assert card.sw(verify_so(SO)) == "63CE"
    assert card.sw(verify_so(SO2)) == "9000"
    assert card.sw(change_so(WRONG_SO, SO)) == "63CE"
    assert card.sw(change_so(SO2[:7], SO)) == "6A80"
    assert card.status.so_tries == 14


def test_change_so_blocked_is_6983() -> None:
    card = initialized_card()
    for _ in range(15):
        card.sw(verify_so(WRONG_SO))
    assert card.sw(change_so(SO, SO2)) == "6983"


def test_change_needs_data_and_p1_00() -> None:
    card = initialized_card()
    assert card.sw("00240081") == "6700"
    assert card.sw(bytes.fromhex("00240181") + lc(PIN + PIN2)) == "6A86"
    assert card.sw(bytes.fromhex("00240085") + lc(PIN + PIN2)) == "6A88"
    assert card.sw(bytes.fromhex("00240082") + lc(PIN + PIN2)) == "6A86"


# --- transport PIN (R11) ------------------------------------------------------------------------


def test_transport_pin_until_change() -> None:
    card = initialized_card(options=protocol.OPTION_TRANSPORT_PIN | 1)
    assert card.sw(query_user()) == "6984"
    assert card.sw(verify_user(PIN)) == "6984"
    assert card.sw(verify_user(WRONG_PIN)) == "6984"
    assert card.status.user_tries == 3
    assert card.sw(change_user(WRONG_PIN, PIN2)) == "63C2"
    assert card.sw(query_user()) == "6984"
    assert card.sw(change_user(PIN, PIN2)) == "9000"
    assert not card.status.transport_pin
    assert card.sw(query_user()) == "63C3"
    assert card.sw(verify_user(PIN2)) == "9000"


def test_transport_mode_survives_rrc() -> None:
    card = initialized_card(options=protocol.OPTION_TRANSPORT_PIN | 1)
    assert card.sw(rrc(SO, PIN2)) == "9000"
    assert card.sw(query_user()) == "6984"


# --- RESET RETRY COUNTER (R06) ------------------------------------------------------------------


def block_user(card) -> None:  # type: ignore[no-untyped-def]
    while card.status.user_tries:
        card.sw(verify_user(WRONG_PIN))


def test_rrc_counter_only() -> None:
    card = initialized_card()
    block_user(card)
    assert card.sw(rrc(SO)) == "9000"
    assert card.sw(query_user()) == "63C3"
    assert card.sw(verify_user(PIN)) == "9000"


def test_rrc_with_new_pin() -> None:
    card = initialized_card()
    block_user(card)
    assert card.sw(rrc(SO, PIN2)) == "9000"
    assert card.sw(verify_user(PIN)) == "63C2"
    assert card.sw(verify_user(PIN2)) == "9000"


def test_rrc_wrong_so_spends_an_so_try() -> None:
    card = initialized_card()
    block_user(card)
    assert card.sw(rrc(WRONG_SO)) == "63CE"
    assert card.sw(rrc(WRONG_SO, PIN2)) == "63CD"
    assert card.status.user_tries == 0
    assert card.sw(rrc(SO)) == "9000"
    assert card.status.so_tries == 15


@pytest.mark.parametrize(
    ("p1", "data"),
    [(0x01, SO[:7]), (0x01, SO + b"1"), (0x00, SO + SHORT_PIN), (0x00, SO + b"1" * 17), (0x00, SO[:4])],
)
def test_rrc_wrong_lengths(p1: int, data: bytes) -> None:
    card = initialized_card()
    assert card.sw(bytes([0x00, 0x2C, p1, 0x81]) + lc(data)) == "6A80"
    assert card.status.so_tries == 15


def test_rrc_p1_01_with_pin_is_wrong_length() -> None:
    card = initialized_card()
    assert card.sw(bytes.fromhex("002C0181") + lc(SO + PIN)) == "6A80"
    assert card.status.so_tries == 15


@pytest.mark.parametrize("capdu", ["002C0281083132333435363738", "002C0381", "002C0088083132333435363738", "002C0181"])
def test_rrc_bad_parameters(capdu: str) -> None:
    card = initialized_card()
    expected = "6700" if capdu == "002C0181" else "6A86"
    assert card.sw(capdu) == expected


def test_rrc_disabled_by_default_spends_nothing() -> None:
    card = initialized_card(options=0)
    block_user(card)
    assert card.sw(rrc(SO)) == "6986"
    assert card.sw(rrc(WRONG_SO, PIN2)) == "6986"
    assert card.status.so_tries == 15 and card.status.user_tries == 0


def test_rrc_disabled_profile_that_checks_the_so_pin_first() -> None:
    card = initialized_card(
        options=0, profile=Profile(rrc_disabled_sw="6985", rrc_disabled_spends_so_try=True)
    )
    block_user(card)
    assert card.sw(rrc(WRONG_SO)) == "6985"
    assert card.status.so_tries == 14
    assert card.sw(rrc(SO)) == "6985"  # a right SO-PIN only gets its own try back
    assert card.status.so_tries == 14 and card.status.user_tries == 0


def test_rrc_when_so_blocked_is_refused() -> None:
    card = initialized_card()
    for _ in range(15):
        card.sw(verify_so(WRONG_SO))
    block_user(card)
    assert card.sw(rrc(SO)) == "6983"
    assert card.status.user_tries == 0


def test_re_select_and_story_fcp_option_byte() -> None:
    card = initialized_card(options=1)
    data, _ = card.send(select_applet())
    assert data[-4] == 0x01  # sc-hsm-tool reads the options low byte at prop[len-4]


@pytest.mark.parametrize("accepted", [False, True])
def test_case3_le_on_pin_commands_follows_the_profile(accepted: bool):
    """Open behaviour case3-le: VERIFY, CHANGE and RESET RETRY COUNTER with data and a trailing
    Le run (the Le ignored) or are refused 6700 without spending or changing anything. A
    status query with an Le (case 2) is 6700 either way: the behaviour is about case 3."""
    card = initialized_card(profile=Profile(case3_le_accepted=accepted))
    with_le = lambda capdu: capdu + b"\x00"  # noqa: E731
    assert card.sw(with_le(verify_user(PIN))) == ("9000" if accepted else "6700")
    assert card.sw(with_le(change_user(PIN, PIN2))) == ("9000" if accepted else "6700")
    assert card.sw(with_le(rrc(SO))) == ("9000" if accepted else "6700")
    assert card.sw(with_le(query_user())) == "6700"
    assert card.sw(verify_user(PIN2 if accepted else PIN)) == "9000"  # the PIN changed only if the CHANGE ran
    assert card.token.profile.open_behaviours()["case3-le"] == ("accepted" if accepted else "refused (6700)")
