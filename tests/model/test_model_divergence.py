"""model.divergence: the first variable that differs decides the blamed checks."""

from __future__ import annotations

from hsm_lifecycle.model.checks import BY_ID
from hsm_lifecycle.model.commands import Command as C
from hsm_lifecycle.model.divergence import ODD_BEHAVIOUR_CHECKS, OFF_ALPHABET, TEAR_CHECKS, Torn, blame, query_moves_itself
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS as P
from hsm_lifecycle.model.states import ExtState


def walk(start, *cmds):
    out, s = [], start
    for c in cmds:
        o = expect(s, c, P)
        out.append(o)
        s = o.next
    return out, s


def test_refused_rrc_that_spends_two_blames_r02_not_the_query():
    history, s = walk(ExtState.initialized(options=0), C.reset_retry_counter("wrong", False))
    found = blame(expect(s, C.query_so(), P), "63CD", history)
    assert found.variable == "SO tries" and found.checks == ("R02.rrc-disabled-wrong-spends-per-profile",)


def test_a_query_after_queries_only_blames_r19():
    history, s = walk(ExtState.initialized(), C.query_user())
    assert blame(expect(s, C.query_user(), P), "63C2", history).checks == ("R19.query-user-free",)


def test_key_use_after_an_so_presentation_blames_r09_not_r10():
    history, s = walk(ExtState.initialized(keys=1), C.reset_retry_counter("right", False))
    found = blame(expect(s, C.sign(), P), "9000", history)
    assert found.variable == "session" and found.checks == ("R09.rrc-opens-nothing",)


def test_session_kept_after_reselect_blames_r10_reselect():
    history, s = walk(ExtState.initialized(keys=1), C.verify_user("right"), C.select())
    assert blame(expect(s, C.sign(), P), "9000", history).checks == ("R10.reselect-ends-session",)


def test_only_the_status_word_differs_names_the_transition_checks():
    history, s = walk(ExtState.initialized(keys=1), C.select())
    found = blame(expect(s, C.initialize("wrong"), P), "9000", history)
    assert found.variable == "status word" and "R01.wrong-init-refused" in found.checks


def test_after_a_command_outside_the_alphabet_no_check_is_guessed():
    history, s = walk(ExtState.initialized(), C.query_user())
    found = blame(expect(s, C.query_user(), P), "63C2", [*history, None])
    assert found.checks == () and "outside the alphabet" in found.detail
    assert OFF_ALPHABET is not None


def test_a_counter_wrong_after_a_power_cut_blames_r17():
    history, s = walk(ExtState.initialized(), C.verify_user("wrong"))
    torn = [Torn(history[0]), *walk(s, C.power_cycle())[0]]
    found = blame(expect(s.but(authenticated=False), C.query_user(), P), "63C3", torn)
    assert found.checks == ("R17.verify-user-tear",)


def test_a_query_that_moves_when_asked_again_is_r19():
    _, s = walk(ExtState.initialized())
    assert query_moves_itself(expect(s, C.query_user(), P), "63C2", "63C1").checks == ("R19.query-user-free",)
    assert query_moves_itself(expect(s, C.query_user(), P), "63C2", "63C2") is None


def test_every_named_check_exists():
    assert set(TEAR_CHECKS.values()) | set(ODD_BEHAVIOUR_CHECKS.values()) <= set(BY_ID)


def test_every_check_id_the_blame_tables_name_is_in_the_catalog():
    import re
    from pathlib import Path

    import hsm_lifecycle.model.divergence as module

    named = set(re.findall(r'"(R\d\d\.[a-z0-9-]+)"', Path(module.__file__).read_text()))
    assert named and named <= set(BY_ID), sorted(named - set(BY_ID))


def test_a_refused_update_is_blamed_by_the_portals_reason():
    """A keyless, user-blocked token: the gate's refusal breaks R12, the portal refusing the
    logged-in account that device breaks R15; with keys and a blocked SO-PIN, a limit reached
    early is R13's and a refusal for the keys R12's."""
    blocked = expect(ExtState.initialized(user_tries=0), C.firmware_update(), P)
    assert blame(blocked, "update-refused-user-blocked").checks == ("R12.admitted-without-keys",)
    assert blame(blocked, "update-refused-account").checks == ("R15.account-updates-blocked-device",)
    so_blocked = expect(ExtState.initialized(so_tries=0, keys=1), C.firmware_update(), P)
    assert blame(so_blocked, "update-refused-limit").checks == ("R13.five-admitted",)
    assert blame(so_blocked, "update-refused-keys").checks == ("R12.admitted-when-so-blocked",)
    with_keys = expect(ExtState.initialized(keys=1), C.firmware_update(), P)
    assert blame(with_keys, "update-ok").variable == "status word"  # not a refusal: the status word decides


def test_a_refused_update_after_commands_outside_the_alphabet_keeps_its_blame():
    """The portal's reason is the step's own answer, not a variable an earlier raw command may
    have moved; an update done only in part is no refusal (the status word decides)."""
    blocked = expect(ExtState.initialized(user_tries=0), C.firmware_update(), P)
    assert blame(blocked, "update-refused-account", [None]).checks == ("R15.account-updates-blocked-device",)
    keyless = expect(ExtState.initialized(), C.firmware_update(), P)
    assert blame(keyless, "update-incomplete(no new identity)", [None]).variable == "status word"
