"""The oracle against design.md's normative table, row by row, and the forum thread's token."""

from __future__ import annotations

import pytest
from model_invariants import ALTERNATIVE
from transitions import Machine

from hsm_lifecycle.model import EMULATOR_DEFAULTS, SMARTCARD_HSM, Command, ExtState, Outcome, expect, oracle
from hsm_lifecycle.model.lifecycle import TRANSITIONS
from hsm_lifecycle.model.machine import lifecycle_machine

E = EMULATOR_DEFAULTS
C = Command.parse
SHIPPED = ExtState.shipped()
READY = ExtState.initialized()  # SO 15, user 3/3, RRC on, no keys, not authenticated
LOGGED_IN = ExtState.initialized(authenticated=True, keys=1)
TRANSPORT = ExtState.initialized(options=0x0002)
USER_BLOCKED = ExtState.initialized(user_tries=0, keys=1)
SO_BLOCKED = ExtState.initialized(so_tries=0, keys=1)
BOTH_BLOCKED = ExtState.initialized(so_tries=0, user_tries=0, keys=1)


def out(state: ExtState, step: str, profile=E) -> Outcome:  # noqa: ANN001
    return expect(state, C(step), profile)


def test_the_story_token_refuses_initialize_with_a_wrong_code() -> None:
    """NK-1895: SO tries 7, user tries 2, RRC on; sc-hsm-tool --initialize fails, 6 left."""
    token = ExtState.initialized(so_tries=7, user_tries=2, options=0x0001, keys=2)
    for profile in (SMARTCARD_HSM, E, ALTERNATIVE):
        o = expect(token, Command.initialize("wrong"), profile)
        assert not o.accepts("9000") and o.next.so_tries == 6
        assert o.next == token.but(so_tries=6)  # keys, user PIN, options untouched (R01)
        assert {"R01", "R02"} <= set(o.rules) and o.open == "init-wrong-so-sw"
    o = expect(token, Command.initialize("wrong"), SMARTCARD_HSM)
    assert o.accepts("63C6") and o.accepts("6985") and not o.accepts("63C7")
    # and its status queries read as in the thread
    assert out(token, "query_so").outputs == {"63C7"} and out(token, "query_user").outputs == {"63C2"}


@pytest.mark.parametrize("state", [SHIPPED, ExtState(identity=1)])
@pytest.mark.parametrize(
    "step",
    ["query_user", "query_so", "verify_user(right)", "verify_user(wrong_length)", "reset_retry_counter(right)",
     "change_user_pin(right)", "change_so_pin(wrong)", "generate_key", "sign", "delete_key"],
)  # fmt: skip
def test_uninitialized_answers_6a88_and_changes_nothing(state: ExtState, step: str) -> None:
    o = out(state, step)
    assert o.outputs == {"6A88"} and o.next == state and "R20" in o.rules


def test_first_initialize_takes_any_code() -> None:
    for so in ("right", "wrong"):
        o = out(SHIPPED, f"initialize(so={so},options=0x0001,retries=5)")
        assert o.outputs == {"9000"} and "R21" in o.rules
        assert o.next == ExtState.initialized(so_tries=15, user_max=5, options=0x0001)
    assert out(SHIPPED, "initialize(so=right,options=0x0002,retries=3)").next.transport
    assert out(SHIPPED, "initialize(right)", ALTERNATIVE).next.authenticated  # auth-after-init


def test_select_and_power_cycle_end_the_session() -> None:
    for step in ("select", "power_cycle"):
        o = out(LOGGED_IN, step)
        assert o.outputs == {"9000"} and o.next == LOGGED_IN.but(authenticated=False)


@pytest.mark.parametrize(
    ("state", "query_user", "query_so"),
    [(READY, "63C3", "63CF"), (LOGGED_IN, "9000", "63CF"), (TRANSPORT, "6984", "63CF"),
     (USER_BLOCKED, "6983", "63CF"), (SO_BLOCKED, "63C3", "6983"), (BOTH_BLOCKED, "6983", "6983")],
)  # fmt: skip
def test_queries(state: ExtState, query_user: str, query_so: str) -> None:
    assert out(state, "query_user").outputs == {query_user}
    assert out(state, "query_so").outputs == {query_so}


def test_verify_user() -> None:
    o = out(READY.but(user_tries=1), "verify_user(right)")
    assert o.outputs == {"9000"} and o.next.user_tries == 3 and o.next.authenticated
    o = out(LOGGED_IN, "verify_user(wrong)")
    assert o.outputs == {"63C2"} and o.next.user_tries == 2 and not o.next.authenticated
    last = out(READY.but(user_tries=1), "verify_user(wrong)", SMARTCARD_HSM)
    assert last.outputs == {"63C0", "6983"} and last.open == "last-wrong-try-sw" and last.next.abstract == "user-blocked"
    assert out(USER_BLOCKED, "verify_user(right)").outputs == {"6983"}
    assert out(TRANSPORT, "verify_user(right)").outputs == {"6984"}
    assert out(TRANSPORT, "verify_user(wrong)").next == TRANSPORT  # nothing spent under a transport PIN


def test_wrong_length_pin_spends_nothing() -> None:
    o = out(READY, "verify_user(wrong_length)", SMARTCARD_HSM)
    assert o.outputs == {"6A80", "6700", "63C3"} and o.next == READY and o.open == "wrong-length-pin-sw"
    assert "6983" in out(USER_BLOCKED, "verify_user(wrong_length)").outputs
    assert out(TRANSPORT, "verify_user(wrong_length)").outputs == {"6A80", "6984"}


def test_reinitialize() -> None:
    o = out(LOGGED_IN.but(so_tries=9, identity=2), "initialize(so=right,options=0x0000,retries=10)")
    assert o.outputs == {"9000"} and set(o.rules) >= {"R07", "R08"}
    assert o.next == ExtState(so_tries=15, user_tries=10, user_max=10, options=0, keys=0, identity=2)
    assert out(READY.but(so_tries=9), "initialize(right)", ALTERNATIVE).next.so_tries == 9  # no restore
    assert out(USER_BLOCKED, "initialize(right)").next.abstract == "initialized"
    for state in (SO_BLOCKED, BOTH_BLOCKED):
        o = out(state, "initialize(right)")
        assert o.refused_any and o.next == state and "R03" in o.rules


def test_wrong_initialization_code_spends_one_so_try() -> None:
    assert out(READY, "initialize(wrong)").outputs == {"63CE"}
    last = out(READY.but(so_tries=1, keys=2), "initialize(wrong)", SMARTCARD_HSM)
    assert last.next == READY.but(so_tries=0, keys=2) and last.next.abstract == "so-blocked"
    assert last.outputs == {"63C0", "6983", "6900", "6982", "6985", "6986"}
    assert out(READY.but(so_tries=1), "initialize(wrong)", ALTERNATIVE).outputs == {"6982", "6985"}


def test_reset_retry_counter() -> None:
    o = out(USER_BLOCKED.but(so_tries=4), "reset_retry_counter(so=right,new_pin=true)")
    assert o.outputs == {"9000"} and o.next.user_tries == 3 and o.next.so_tries == 15 and o.next.abstract == "initialized"
    assert out(USER_BLOCKED.but(so_tries=4), "reset_retry_counter(right)", ALTERNATIVE).next.so_tries == 4
    o = out(USER_BLOCKED, "reset_retry_counter(wrong)")
    assert o.outputs == {"63CE"} and o.next == USER_BLOCKED.but(so_tries=14)
    off = USER_BLOCKED.but(options=0)
    assert out(off, "reset_retry_counter(right)").outputs == {"6986"} and out(off, "reset_retry_counter(right)").next == off
    assert out(off, "reset_retry_counter(wrong)").next == off  # emulator: spends nothing
    spent = out(off, "reset_retry_counter(wrong)", ALTERNATIVE)
    assert spent.next == off.but(so_tries=14) and spent.outputs == {"6985"} and spent.open == "rrc-disabled"
    assert out(SO_BLOCKED.but(user_tries=1), "reset_retry_counter(right)").refused_any


def test_change_user_pin() -> None:
    o = out(TRANSPORT, "change_user_pin(right)")
    assert o.outputs == {"9000"} and not o.next.transport and not o.next.authenticated and "R11" in o.rules
    assert out(TRANSPORT, "change_user_pin(right)", ALTERNATIVE).next.authenticated
    o = out(TRANSPORT, "change_user_pin(wrong)")
    assert o.outputs == {"63C2"} and o.next.transport  # a wrong old PIN spends a try, keeps transport
    assert out(USER_BLOCKED, "change_user_pin(right)").outputs == {"6983"}
    assert out(LOGGED_IN, "change_user_pin(wrong)").next.authenticated is False


def test_change_so_pin() -> None:
    assert out(READY.but(so_tries=3), "change_so_pin(right)").next.so_tries == 15
    assert out(READY.but(so_tries=3), "change_so_pin(wrong)").outputs == {"63C2"}
    last = out(READY.but(so_tries=1), "change_so_pin(wrong)")
    assert last.outputs == {"63C0"} and last.next.abstract == "so-blocked"
    assert out(SO_BLOCKED, "change_so_pin(right)").outputs == {"6983"}


def test_key_commands_need_a_session() -> None:
    assert out(LOGGED_IN, "generate_key").next.keys == 2
    assert out(LOGGED_IN, "sign").outputs == {"9000"}
    assert out(LOGGED_IN, "delete_key").next.keys == 0
    empty = LOGGED_IN.but(keys=0)
    assert out(empty, "sign").outputs == {"6A88", "6A82", "6982"} and out(empty, "delete_key").outputs == {"6A82", "6982"}
    for state in (READY, TRANSPORT, USER_BLOCKED, BOTH_BLOCKED):
        for step in ("generate_key", "sign", "delete_key"):
            o = out(state, step)
            assert o.outputs == {"6982"} and o.next == state
    so_blocked_session = SO_BLOCKED.but(authenticated=True)
    assert "R03" in out(so_blocked_session, "sign").rules  # keys keep working with the SO-PIN blocked


def test_firmware_update_gate_and_limit() -> None:
    fresh = out(READY, "firmware_update")
    assert fresh.outputs == {"update-ok"} and fresh.next == ExtState(identity=1) and fresh.next.abstract == "firmware-reset"
    assert out(LOGGED_IN, "firmware_update").outputs == {"update-refused-keys"}
    assert out(USER_BLOCKED, "firmware_update").outputs == {"update-refused-keys"}
    assert out(USER_BLOCKED.but(keys=0), "firmware_update").outputs == {"update-ok"}  # blocked user PIN: fine
    waived = out(SO_BLOCKED.but(identity=4, so_blocked_updates=4), "firmware_update")
    assert waived.outputs == {"update-ok"} and waived.next == ExtState(identity=5, so_blocked_updates=5)
    spent = SO_BLOCKED.but(identity=5, so_blocked_updates=5)
    assert out(spent, "firmware_update").outputs == {"update-refused-limit"}
    assert out(spent.but(keys=0), "firmware_update").next == ExtState(identity=6, so_blocked_updates=5)
    assert out(BOTH_BLOCKED, "firmware_update").next.so_blocked_updates == 1


def test_portal_login() -> None:
    o = out(READY.but(user_tries=1), "portal_login")
    assert o.outputs == {"login-ok"} and o.next.authenticated and o.next.user_tries == 3
    assert out(SO_BLOCKED, "portal_login").outputs == {"login-ok"}
    for state in (SHIPPED, TRANSPORT, USER_BLOCKED, BOTH_BLOCKED):
        o = out(state, "portal_login")
        assert o.outputs == {"login-refused"} and o.next == state


def test_outcome_accepts_and_sws() -> None:
    o = out(READY.but(user_tries=1), "verify_user(wrong)", SMARTCARD_HSM)
    assert o.accepts("63C0") and o.accepts("6983") and o.accepts("63c0") and not o.accepts("9000")
    assert o.sws == {0x63C0, 0x6983}
    refused = out(SO_BLOCKED, "initialize(right)")
    assert refused.sws == frozenset() and refused.accepts("6985") and not refused.accepts("9000")
    assert not refused.accepts("login-ok")
    assert "O11" in refused.describe() and "any SW but 9000" in refused.describe()


def test_run_chains_outcomes() -> None:
    steps = [C("initialize(right)"), C("verify_user(right)"), C("generate_key"), C("select"), C("sign")]
    outcomes = oracle.run(SHIPPED, steps, E)
    assert [o.transition for o in outcomes] == ["S06", "I07", "I30", "I01", "I35"]
    assert outcomes[-1].outputs == {"6982"} and outcomes[-1].next.keys == 1


def test_the_oracle_runs_the_transitions_machine() -> None:
    machine = lifecycle_machine()
    assert isinstance(machine, Machine) and machine is lifecycle_machine()  # built once
    assert set(machine.states) == {"shipped", "initialized", "user-blocked", "so-blocked", "both-blocked", "firmware-reset"}
    count = sum(len(ts) for event in machine.events.values() for ts in event.transitions.values())
    assert count == len(TRANSITIONS)


# -- retries-by-pin-length: tag 91 above 3/5/10 for a 6/7/8+-byte user PIN -----------------------


def test_an_enforced_retries_cap_refuses_initialize_and_changes_nothing():
    capped = EMULATOR_DEFAULTS.resolve({"retries-by-pin-length": True})
    for start in (ExtState.shipped(), ExtState.initialized(keys=1), ExtState.initialized(user_tries=0)):
        for so in ("right", "wrong"):
            over = expect(start, Command.initialize(so, 1, 4), capped)
            assert over.next == start and not over.accepts("9000") and over.accepts("6A80"), over.transition
            assert over.transition in ("S15", "I45", "U29")
    # The cap depends on the PIN's length: 7 bytes allow 5, 8 and more allow 10.
    for length, allowed, refused in ((6, 3, 4), (7, 5, 6), (8, 10, None), (16, 10, None)):
        assert expect(ExtState.shipped(), Command.initialize("right", 1, allowed, length), capped).accepts("9000")
        if refused is not None:
            assert not expect(ExtState.shipped(), Command.initialize("right", 1, refused, length), capped).accepts("9000")


def test_a_device_without_the_cap_takes_any_retries():
    outcome = expect(ExtState.shipped(), Command.initialize("right", 1, 10), EMULATOR_DEFAULTS)
    assert outcome.accepts("9000") and outcome.next.user_max == 10


def test_an_unknown_cap_predicts_only_what_it_does_not_decide():
    """Within every cap the answer is known; above it the next state would be a guess
    (initialized with the new counter, or unchanged), so the oracle refuses to predict."""
    from hsm_lifecycle.model import UnresolvedBehaviour

    profile = SMARTCARD_HSM.resolve({"auth-after-init": False})
    assert expect(ExtState.shipped(), Command.initialize("right", 1, 3), profile).accepts("9000")
    with pytest.raises(UnresolvedBehaviour, match="retries-by-pin-length"):
        expect(ExtState.shipped(), Command.initialize("right", 1, 4), profile)


def test_pin_length_is_part_of_initialize_and_of_its_string_form():
    assert Command.initialize().pin_length == 6
    assert str(Command.initialize()) == "initialize(so=right,options=0x0001,retries=3)"  # traces keep their form
    long = Command.initialize("right", 1, 5, 8)
    assert str(long) == "initialize(so=right,options=0x0001,retries=5,pin_length=8)"
    assert Command.parse(str(long)) == long
    with pytest.raises(ValueError):
        Command.initialize("right", 1, 3, 5)
