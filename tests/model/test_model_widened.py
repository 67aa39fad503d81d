"""The widened alphabet, by hand: DECIPHER, the data object, warm reset, the device key CC00 and
PINs of the wrong length in every PIN command (rules R07-R10, R16, R20)."""

from __future__ import annotations

import pytest

from hsm_lifecycle.model import EMULATOR_DEFAULTS, SMARTCARD_HSM, Command, ExtState, expect
from hsm_lifecycle.model.divergence import blame
from hsm_lifecycle.model.oracle import run

E = EMULATOR_DEFAULTS
C = Command.parse
READY = ExtState.initialized()  # SO 15, user 3/3, RRC on, no keys, not authenticated
LOGGED_IN = ExtState.initialized(authenticated=True, keys=1)
WITH_DATA = ExtState.initialized(authenticated=True, data=True)


@pytest.mark.parametrize("step", ["decipher", "write_data", "read_protected", "device_sign"])
@pytest.mark.parametrize("state", [ExtState.shipped(), ExtState(identity=1)])
def test_uninitialized_refuses_them_with_6a88(state: ExtState, step: str) -> None:
    o = expect(state, C(step), E)
    assert o.outputs == {"6A88"} and o.next == state and o.rules == ("R20",)


def test_a_wrong_length_so_pin_cannot_be_the_first_so_pin() -> None:
    """R21 takes any *8-byte* code: 7 or 9 bytes are refused and the token stays shipped."""
    for variant in ("wrong_length", "over_long"):
        o = expect(ExtState.shipped(), Command.initialize(variant), E)
        assert not o.accepts("9000") and o.accepts("6A80") and o.next == ExtState.shipped()


@pytest.mark.parametrize("step", ["decipher", "write_data", "read_protected", "device_sign"])
def test_without_login_each_answers_6982_and_changes_nothing(step: str) -> None:
    for state in (READY.but(keys=1, data=True), ExtState.initialized(options=0x0002), ExtState.initialized(user_tries=0, keys=1)):
        o = expect(state, C(step), E)
        assert o.outputs == {"6982"} and o.next == state


def test_decipher_needs_a_key_and_a_session() -> None:
    assert expect(LOGGED_IN, C("decipher"), E).outputs == {"9000"}
    assert expect(LOGGED_IN, C("decipher"), E).transition == "I46"
    no_key = expect(LOGGED_IN.but(keys=0), C("decipher"), E)
    assert no_key.outputs == {"6A88", "6A82", "6982"} and no_key.transition == "I47"
    so_blocked = ExtState.initialized(so_tries=0, keys=1, authenticated=True)
    assert expect(so_blocked, C("decipher"), E).outputs == {"9000"} and "R03" in expect(so_blocked, C("decipher"), E).rules


def test_the_data_object_is_written_with_login_read_back_and_erased_by_initialize() -> None:
    """R10 (update needs login), R09 (only the user PIN reads it), R07 (INITIALIZE erases it)."""
    steps = ["write_data", "verify_user(right)", "read_protected", "write_data", "read_protected", "select",
             "read_protected", "reset_retry_counter(right)", "read_protected", "verify_user(right)",
             "initialize(right)", "verify_user(right)", "read_protected"]  # fmt: skip
    outs = run(READY, [C(s) for s in steps], E)
    assert [sorted(o.outputs) for o in outs] == [
        ["6982"], ["9000"], ["6A82"], ["9000"], ["9000"], ["9000"],
        ["6982"], ["9000"], ["6982"], ["9000"],
        ["9000"], ["9000"], ["6A82"],
    ]  # fmt: skip
    assert [o.next.data for o in outs] == [False] * 3 + [True] * 7 + [False] * 3
    assert outs[10].transition == "I12" and outs[-1].transition == "I52"


def test_a_firmware_update_takes_the_data_object_with_it() -> None:
    o = expect(ExtState.initialized(data=True), C("firmware_update"), E)
    assert o.outputs == {"update-ok"} and not o.next.data and o.next.identity == 1


def test_warm_reset_ends_the_session_like_a_power_cycle() -> None:
    for state in (LOGGED_IN, ExtState.initialized(so_tries=0, authenticated=True), ExtState.shipped()):
        o = expect(state, C("warm_reset"), E)
        assert o.outputs == {"9000"} and o.next == state.but(authenticated=False) if state.is_initialized else o.next == state
    assert expect(LOGGED_IN, C("warm_reset"), E).rules == ("R10",)


def test_device_sign_needs_login_and_is_r08s_comparison() -> None:
    o = expect(LOGGED_IN, C("device_sign"), E)
    assert o.outputs == {"9000"} and o.rules == ("R08",) and o.next == LOGGED_IN
    assert expect(ExtState.initialized(keys=1), C("device_sign"), E).outputs == {"6982"}


@pytest.mark.parametrize(
    ("state", "step", "allowed"),
    [
        (READY, "verify_user(over_long)", {"6A80"}),
        (READY, "change_user_pin(wrong_length)", {"6A80"}),
        (READY, "change_user_pin(over_long)", {"6A80"}),
        (READY, "change_so_pin(wrong_length)", {"6A80"}),
        (READY, "reset_retry_counter(so=over_long,new_pin=true)", {"6A80"}),
        (READY, "initialize(so=wrong_length)", {"6A80"}),
        (ExtState.initialized(options=0), "reset_retry_counter(so=wrong_length)", {"6A80", "6986"}),  # R06's refusal may come first
        (ExtState.initialized(options=0x0002), "change_user_pin(wrong_length)", {"6A80", "6984"}),  # transport PIN
        (ExtState.initialized(user_tries=0), "verify_user(over_long)", {"6A80", "6983"}),  # blocked PIN
        (ExtState.initialized(user_tries=0), "change_user_pin(over_long)", {"6983"}),  # blocked: U19
        (ExtState.initialized(so_tries=0), "change_so_pin(over_long)", {"6983"}),  # SO blocked: O17
    ],
)
def test_a_pin_of_the_wrong_length_spends_no_try(state: ExtState, step: str, allowed: set[str]) -> None:
    o = expect(state, C(step), E)
    assert o.outputs == allowed and o.next == state


def test_the_wrong_length_sw_is_the_open_behaviour_and_63cx_names_the_right_counter() -> None:
    s = ExtState.initialized(so_tries=9, user_tries=2)
    assert expect(s, C("change_so_pin(wrong_length)"), SMARTCARD_HSM).outputs == {"6A80", "6700", "63C9"}
    assert expect(s, C("change_user_pin(wrong_length)"), SMARTCARD_HSM).outputs == {"6A80", "6700", "63C2"}
    rrc_new = expect(s, C("reset_retry_counter(so=wrong_length,new_pin=true)"), SMARTCARD_HSM).outputs
    assert rrc_new == {"6A80", "6700", "63C9", "63C2"}
    assert expect(s, C("change_so_pin(wrong_length)"), SMARTCARD_HSM).open == "wrong-length-pin-sw"


def walk(start: ExtState, *steps: str):
    outs = run(start, [C(s) for s in steps], E)
    return outs, outs[-1].next if outs else start


def test_blame_names_the_check_of_what_diverged() -> None:
    history, s = walk(READY.but(keys=0), "verify_user(right)", "write_data", "initialize(right)", "verify_user(right)")
    assert blame(expect(s, C("read_protected"), E), "9000", history).checks == ("R07.data-objects-erased",)
    history, s = walk(READY, "write_data", "verify_user(right)")
    assert blame(expect(s, C("read_protected"), E), "9000", history).checks == ("R10.update-needs-login",)
    history, s = walk(READY.but(keys=1), "verify_user(right)", "warm_reset")
    found = blame(expect(s, C("decipher"), E), "9000", history)
    assert found.variable == "session" and found.checks == ("R10.warm-reset-ends-session",)
    history, s = walk(READY.but(keys=1), "reset_retry_counter(right)")
    assert blame(expect(s, C("read_protected"), E), "9000", history).checks == ("R09.protected-read-refused",)
    assert blame(expect(s, C("decipher"), E), "9000", history).checks == ("R09.rrc-opens-nothing",)
    assert blame(expect(READY, C("decipher"), E), "9000", []).checks == ("R10.decipher-needs-login",)
    assert blame(expect(READY, C("write_data"), E), "9000", []).checks == ("R10.update-needs-login",)
    assert blame(expect(LOGGED_IN, C("device_sign"), E), "device-key-differs", []).checks == ("R08.device-key-unchanged",)
    assert blame(expect(WITH_DATA, C("read_protected"), E), "data-differs", []).checks == ("R09.protected-read-refused",)


@pytest.mark.parametrize(
    ("step", "query", "spent", "check"),
    [
        ("verify_user(over_long)", "query_user", "63C2", "R16.verify-long-user-pin-free"),
        ("verify_user(wrong_length)", "query_user", "63C2", "R16.verify-short-user-pin-free"),
        ("change_user_pin(over_long)", "query_user", "63C2", "R16.change-user-wrong-length-free"),
        ("change_so_pin(wrong_length)", "query_so", "63CE", "R16.so-pin-wrong-length-free"),
        ("reset_retry_counter(so=wrong_length)", "query_so", "63CE", "R16.so-pin-wrong-length-free"),
        ("reset_retry_counter(so=wrong_length,new_pin=true)", "query_so", "63CE", "R16.rrc-user-wrong-length-free"),
        ("initialize(so=over_long)", "query_so", "63CE", "R16.initialize-wrong-length-free"),
    ],
)
def test_a_try_spent_on_a_wrong_length_pin_blames_that_commands_r16_check(step: str, query: str, spent: str, check: str) -> None:
    history, s = walk(READY, step)
    found = blame(expect(s, C(query), E), spent, history)
    assert found.checks == (check,)


def test_a_lost_data_object_is_not_blamed_on_the_keys() -> None:
    s = WITH_DATA.but(keys=2)
    found = blame(expect(s, C("read_protected"), E), "6A82", [])
    assert found.variable == "status word" and found.checks == ("R09.protected-read-refused",)
