"""doctor's diagnosis: what the model admits from the token's state, worded for the owner."""

from __future__ import annotations

import pytest

from hsm_lifecycle.conformance.doctor import ExtState, candidates, describe_changes, diagnose, predict, read_token
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.outputs import OK


def _diag(token_in, state):
    return diagnose(read_token(token_in(state).transport))


def _verdict(diag, key):
    return next(v for v in diag.actions if v.action.key == key)


def test_the_forum_threads_token(token_in):
    """SO tries 7, user tries 2, option 0x0001, two keys: what the thread's owner needed to hear."""
    diag = _diag(token_in, "initialized")
    assert diag.states == ("initialized",)

    reset = _verdict(diag, "reset-user-pin")
    assert reset.admitted and "R06" in reset.prediction.rules
    assert "--init-pin" in reset.action.tool and "--login-type so" in reset.action.tool
    assert any("pkcs15-tool --unblock-pin" in w and "3352" in w for w in diag.warnings)

    reinit = _verdict(diag, "initialize")
    assert reinit.admitted and reinit.prediction.cost == "wipes"
    assert any("erases every key" in c and "2 key(s)" in c for c in reinit.prediction.changes)
    assert any(c.startswith("device identity kept") for c in reinit.prediction.changes)
    assert "sc-hsm-tool --initialize" in reinit.action.tool

    assert "R01 no-factory-reset" in diag.no_factory_reset
    update = _verdict(diag, "firmware-update")
    assert not update.admitted and update.prediction.output == "update-refused-keys" and "R12" in update.prediction.rules

    budget = diag.so_budget
    assert budget is not None and budget.tries_left == 7
    assert "SO-PIN tries 7 → 6" in budget.cost_each
    assert budget.blocked_state == "so-blocked"
    assert [v.action.key for v in budget.ways_back] == ["firmware-update"]
    fw = next(v for v in budget.after_block if v.action.key == "firmware-update")
    assert fw.admitted and "new device identity" in "; ".join(fw.prediction.changes)
    assert "update-refused-limit" in fw.caveat and "5 updates" in fw.caveat
    for key in ("initialize", "reset-user-pin"):
        refused = next(v for v in budget.after_block if v.action.key == key)
        assert not refused.admitted and "R03" in refused.prediction.rules


def test_an_unknown_open_behaviour_is_reported_not_assumed(token_in):
    reset = _verdict(_diag(token_in, "initialized"), "reset-user-pin")
    # Whether a correct SO-PIN restores the SO counter is not public: never stated as certain.
    assert not any("SO-PIN tries" in c for c in reset.prediction.changes)
    assert reset.prediction.maybe == ("SO-PIN tries 7 → 15",)
    assert reset.prediction.depends == "so-success-restores"


def test_user_blocked_token_can_be_reset_by_the_so_but_not_used(token_in):
    diag = _diag(token_in, "user-blocked")
    assert diag.states == ("user-blocked",)
    login = _verdict(diag, "login")
    assert not login.admitted and "6983" in login.prediction.output and "R05" in login.prediction.rules
    reset = _verdict(diag, "reset-user-pin")
    assert reset.admitted and "the token becomes initialized" in reset.prediction.changes
    assert not _verdict(diag, "portal-login").admitted


def test_so_blocked_token_keeps_its_keys_and_can_only_be_updated(token_in):
    diag = _diag(token_in, "so-blocked")
    assert diag.so_budget is None  # nothing left to spend
    for key in ("initialize", "reset-user-pin", "change-so-pin"):
        v = _verdict(diag, key)
        assert not v.admitted and "R03" in v.prediction.rules, key
    assert _verdict(diag, "login").admitted  # R03: the user PIN and keys keep working
    update = _verdict(diag, "firmware-update")
    assert update.admitted  # keys present, but the SO-PIN is blocked (R12)
    assert "update-refused-limit" in update.caveat  # unless 5 such updates were used (R13)


def test_both_blocked_token_needs_another_hsm_for_the_portal(token_in):
    diag = _diag(token_in, "both-blocked")
    assert not _verdict(diag, "portal-login").admitted
    assert not _verdict(diag, "login").admitted
    assert _verdict(diag, "firmware-update").admitted
    assert {v.action.key for v in diag.can} == {"firmware-update"}


def test_shipped_token_takes_any_code_as_its_so_pin(token_in):
    diag = _diag(token_in, "shipped")
    assert diag.states == ("shipped", "firmware-reset")
    init = _verdict(diag, "initialize")
    assert init.admitted
    assert "the code becomes the SO-PIN, 15 tries" in init.prediction.changes
    login = _verdict(diag, "login")
    assert not login.admitted and login.prediction.output == "6A88" and "R20" in login.prediction.rules
    assert diag.so_budget is None


def test_candidates_for_a_blocked_so_pin_include_the_exhausted_update_budget(token_in):
    reading = read_token(token_in("so-blocked").transport)
    cands = candidates(reading)
    assert [c.state.so_blocked_updates for c in cands] == [0, 5]
    assert cands[1].assumption.startswith("if 5 updates")


def test_a_transport_pin_token_is_told_to_change_it_first():
    from doctor_tokens import build_token

    built = build_token(options=0x0003)
    diag = diagnose(read_token(built.transport))
    assert diag.reading.transport_pin
    assert any("transport PIN is active" in w for w in diag.warnings)
    assert not _verdict(diag, "login").admitted
    change = _verdict(diag, "change-user-pin")
    assert change.admitted and "transport PIN ended" in change.prediction.changes


@pytest.mark.parametrize(
    "before, after, command, expected",
    [
        (ExtState.initialized(so_tries=3), ExtState.initialized(so_tries=2), None, ("SO-PIN tries 3 → 2",)),
        (ExtState.initialized(so_tries=1), ExtState.initialized(so_tries=0), None,
         ("the token becomes so-blocked", "SO-PIN tries 1 → 0")),
        (ExtState.shipped(), ExtState.initialized(), Command.initialize(), ("the token becomes initialized", "the code becomes the SO-PIN, 15 tries")),
    ],
)
def test_changes_are_worded_from_the_two_model_states(before, after, command, expected):
    assert describe_changes(before, after, command) == expected


def test_prediction_follows_the_oracle_for_every_step():
    state = ExtState.initialized(user_tries=0)
    p = predict(state, (Command.verify_user("right"), Command.generate_key()), OK)
    assert not p.admitted and p.output == "6983"  # the login step fails first


def test_after_a_firmware_update_the_token_starts_over():
    from doctor_tokens import firmware_reset_token

    built, _ = firmware_reset_token()
    diag = diagnose(read_token(built.transport))
    assert diag.states == ("shipped", "firmware-reset")
    assert _verdict(diag, "initialize").admitted
    assert not _verdict(diag, "login").admitted
    assert _verdict(diag, "firmware-update").admitted  # no keys on it: R12
