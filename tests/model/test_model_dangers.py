"""model.dangers against expectations worked out by hand from rules.md, in all six states and at
the counter edges. Each row says, for every loss still ahead, how many mistakes (wrong PINs)
and deliberate actions (initialize, firmware update) its shortest route takes, by mistakes
alone (True) or with actions (False); which losses are imminent; which are already behind.

How the numbers were worked (SO 15 tries, user 3, 5 SO-blocked updates):
* an SO-PIN blocks after its tries left in wrong SO-PINs (R02); both PINs need both counters;
* keys are unusable for good once the user PIN is blocked and the SO cannot reset it (SO-PIN
  blocked: R03, or option 0x0001 off: R06); with 0x0001 on, only both counters spent do it;
* keys are erased by a re-initialization (R07) or a firmware update (R14), which a token with
  keys admits only with a blocked SO-PIN (R12);
* the last update: each admitted with a blocked SO-PIN counts (R13); from an unblocked token
  that is (tries left) wrong SO-PINs + update, then 4 x (initialize + 15 + update).
"""

from __future__ import annotations

import pytest

from hsm_lifecycle.model.commands import CHANGE_USER_PIN, FIRMWARE_UPDATE, INITIALIZE, VERIFY_USER
from hsm_lifecycle.model.dangers import (
    BOTH_PINS_BLOCKED as BOTH,
    IDENTITY_CHANGED as IDENT,
    KEYS_ERASED as ERASED,
    KEYS_UNUSABLE as UNUSABLE,
    LAST_UPDATE_SPENT as LAST,
    SO_PIN_BLOCKED as SO,
    WORST_CASE,
    find_dangers,
    keys_usable,
    worst_case,
)
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, SMARTCARD_HSM, STATE_AFFECTING
from hsm_lifecycle.model.states import ExtState

E = ExtState.initialized
RRC, TRANSPORT = 0x0001, 0x0002
LAST_FROM_OPEN = (75, 9)  # 15 wrong SO-PINs + update, then 4 x (initialize + 15 + update)

# name: (state, {(loss, by mistakes alone): (mistakes, actions)}, imminent losses, suffered losses)
CASES: dict[str, tuple[ExtState, dict[tuple[str, bool], tuple[int, int]], set[str], set[str]]] = {
    "shipped": (
        ExtState.shipped(),
        {(SO, False): (15, 1), (BOTH, False): (18, 1), (LAST, False): (75, 10), (IDENT, False): (0, 1)},
        set(), set(),
    ),
    "firmware-reset": (
        ExtState(identity=1),
        {(SO, False): (15, 1), (BOTH, False): (18, 1), (LAST, False): (75, 10), (IDENT, False): (0, 1)},
        set(), set(),
    ),
    "firmware-reset, 4 updates spent": (
        ExtState(identity=4, so_blocked_updates=4),
        {(SO, False): (15, 1), (BOTH, False): (18, 1), (LAST, False): (15, 2), (IDENT, False): (0, 1)},
        set(), set(),
    ),
    "firmware-reset, 5 updates spent": (
        ExtState(identity=5, so_blocked_updates=5),
        {(SO, False): (15, 1), (BOTH, False): (18, 1), (IDENT, False): (0, 1)},
        set(), {LAST},
    ),
    "initialized, no keys": (
        E(),
        {(SO, True): (15, 0), (BOTH, True): (18, 0), (LAST, False): LAST_FROM_OPEN, (IDENT, False): (0, 1)},
        set(), set(),
    ),
    "initialized, a key": (
        E(keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (18, 0), (UNUSABLE, True): (18, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        set(), set(),
    ),
    "initialized, a key, option 0x0001 off": (
        E(options=0, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (18, 0), (UNUSABLE, True): (3, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        {UNUSABLE}, set(),
    ),
    "initialized, a key, 1 user try left": (
        E(user_tries=1, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (16, 0), (UNUSABLE, True): (16, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        set(), set(),
    ),
    "initialized, a key, 1 user try left, option 0x0001 off": (
        E(user_tries=1, options=0, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (16, 0), (UNUSABLE, True): (1, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        {UNUSABLE}, set(),
    ),
    "initialized, a key, 1 SO try left": (
        E(so_tries=1, keys=1),
        {
            (SO, True): (1, 0), (BOTH, True): (4, 0), (UNUSABLE, True): (4, 0),
            (ERASED, False): (0, 1), (LAST, False): (61, 9),
        },  # identity: 2 steps either way (checked below)
        {SO}, set(),
    ),
    "initialized, transport PIN, no keys": (
        E(options=RRC | TRANSPORT),
        {(SO, True): (15, 0), (BOTH, True): (18, 0), (LAST, False): LAST_FROM_OPEN, (IDENT, False): (0, 1)},
        set(), set(),
    ),
    "initialized, transport PIN, a key, option 0x0001 off": (
        E(options=TRANSPORT, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (18, 0), (UNUSABLE, True): (3, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        {UNUSABLE}, set(),
    ),
    "user-blocked, a key": (
        E(user_tries=0, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (15, 0), (UNUSABLE, True): (15, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        set(), set(),
    ),
    "user-blocked, a key, 1 SO try left": (
        E(user_tries=0, so_tries=1, keys=1),
        {
            (SO, True): (1, 0), (BOTH, True): (1, 0), (UNUSABLE, True): (1, 0),
            (ERASED, False): (0, 1), (LAST, False): (61, 9),
        },  # identity: 2 steps either way (checked below)
        {SO, BOTH, UNUSABLE}, set(),
    ),
    "user-blocked, a key, option 0x0001 off": (
        E(user_tries=0, options=0, keys=1),
        {
            (SO, True): (15, 0), (BOTH, True): (15, 0),
            (ERASED, False): (0, 1), (IDENT, False): (0, 2), (LAST, False): LAST_FROM_OPEN,
        },
        set(), {UNUSABLE},
    ),
    "so-blocked, a key (the issue's token)": (
        E(so_tries=0, keys=1),
        {(UNUSABLE, True): (3, 0), (BOTH, True): (3, 0), (ERASED, False): (0, 1), (IDENT, False): (0, 1), (LAST, False): (60, 9)},
        {UNUSABLE}, {SO},
    ),
    "so-blocked, a key, 1 user try left": (
        E(so_tries=0, user_tries=1, keys=1),
        {(UNUSABLE, True): (1, 0), (BOTH, True): (1, 0), (ERASED, False): (0, 1), (IDENT, False): (0, 1), (LAST, False): (60, 9)},
        {UNUSABLE, BOTH}, {SO},
    ),
    "so-blocked, no keys": (
        E(so_tries=0),
        {(BOTH, True): (3, 0), (IDENT, False): (0, 1), (LAST, False): (60, 9)},
        set(), {SO},
    ),
    "so-blocked, a key, 4 updates spent": (
        E(so_tries=0, keys=1, identity=4, so_blocked_updates=4),
        {(UNUSABLE, True): (3, 0), (BOTH, True): (3, 0), (ERASED, False): (0, 1), (IDENT, False): (0, 1), (LAST, False): (0, 1)},
        {UNUSABLE}, {SO},
    ),
    "so-blocked, a key, 5 updates spent": (
        E(so_tries=0, keys=1, identity=5, so_blocked_updates=5),
        {(UNUSABLE, True): (3, 0), (BOTH, True): (3, 0)},  # no update is admitted: nothing erases the key
        {UNUSABLE}, {SO, LAST},
    ),
    "so-blocked, no keys, 5 updates spent": (
        E(so_tries=0, identity=5, so_blocked_updates=5),
        {(BOTH, True): (3, 0), (IDENT, False): (0, 1)},  # without keys an update is still admitted
        set(), {SO, LAST},
    ),
    "both-blocked, a key": (
        E(so_tries=0, user_tries=0, keys=1),
        {(ERASED, False): (0, 1), (IDENT, False): (0, 1), (LAST, False): (60, 9)},
        set(), {SO, BOTH, UNUSABLE},
    ),
    "both-blocked, no keys": (
        E(so_tries=0, user_tries=0),
        {(IDENT, False): (0, 1), (LAST, False): (60, 9)},
        set(), {SO, BOTH},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_dangers_match_the_hand_worked_expectations(name):
    state, expected, imminent, already = CASES[name]
    found = find_dangers(state, SMARTCARD_HSM)
    got = {(d.loss.id, d.by_mistakes_alone): (d.route.mistakes, d.route.actions) for d in found.dangers}
    if "1 SO try left" in name:
        ident = got.pop((IDENT, False))
        assert sum(ident) == 2  # 1 wrong SO-PIN + update, or re-initialize + update: equally short
    assert got == expected
    assert {d.loss.id for d in found.imminent} == imminent
    assert set(found.suffered) == already
    for danger in found.dangers:  # the route really ends in the loss it names, through the oracle
        assert len(danger.route.steps) == danger.route.mistakes + danger.route.actions == danger.steps_away
        assert danger.route.states[0] == state


def test_the_issue_token_three_wrong_user_pins_lose_the_key_and_the_update_erases_it():
    found = find_dangers(E(so_tries=0, keys=1), SMARTCARD_HSM)
    first = found.dangers[0]
    assert first.imminent and first.loss.id == UNUSABLE
    assert first.route.summary == "3 wrong user PINs (3 tries left)"
    assert [c.name for c in first.route.steps] == [VERIFY_USER] * 3
    ways = {w.key: w for w in first.ways_out}
    assert not ways["reset-user-pin"].admitted and ways["reset-user-pin"].rules == ("R03",)
    assert not ways["re-initialize"].admitted
    update = ways["firmware-update"]
    assert update.admitted and update.counted_update and set(update.losses) == {ERASED, IDENT}
    assert not ways["portal-login"].admitted and "R15" in ways["portal-login"].rules  # another HSM must log in
    erase = next(d for d in found.dangers if d.loss.id == ERASED)
    assert [c.name for c in erase.route.steps] == [FIRMWARE_UPDATE]


def test_at_the_update_limit_nothing_gets_a_blocked_token_with_keys_out():
    found = find_dangers(E(so_tries=0, keys=1, identity=5, so_blocked_updates=5), SMARTCARD_HSM)
    lost = next(d for d in found.dangers if d.loss.id == UNUSABLE)
    assert not any(w.admitted for w in lost.ways_out if w.key != "portal-login")
    assert next(w for w in lost.ways_out if w.key == "firmware-update").rules == ("R13",)


def test_option_0x0001_off_only_a_reinitialization_gets_out_and_it_erases():
    lost = next(d for d in find_dangers(E(options=0, keys=2), SMARTCARD_HSM).dangers if d.loss.id == UNUSABLE)
    ways = {w.key: w for w in lost.ways_out}
    assert not ways["reset-user-pin"].admitted and ways["reset-user-pin"].rules == ("R06",)
    assert ways["re-initialize"].admitted and ways["re-initialize"].losses == (ERASED,)
    assert not ways["firmware-update"].admitted  # keys on it, SO-PIN not blocked (R12)


def test_a_transport_pin_is_spent_through_change_pin_not_verify():
    lost = next(d for d in find_dangers(E(options=TRANSPORT, keys=1), SMARTCARD_HSM).dangers if d.loss.id == UNUSABLE)
    assert [c.name for c in lost.route.steps] == [CHANGE_USER_PIN] * 3  # VERIFY answers 6984 and spends nothing (R11)


def test_uninitialized_steps_are_actions_even_with_any_code():
    found = find_dangers(ExtState.shipped(), SMARTCARD_HSM)
    so = next(d for d in found.dangers if d.loss.id == SO)
    assert so.route.steps[0].name == INITIALIZE and so.route.runs[0].kind == "action"
    assert so.route.summary == "an initialization, then 15 wrong SO-PINs (15 tries left)"


@pytest.mark.parametrize(
    "state, usable",
    [
        (E(keys=1), True),
        (E(user_tries=0, keys=1), True),  # the SO resets the user PIN (R06)
        (E(user_tries=0, options=0, keys=1), False),
        (E(so_tries=0, keys=1), True),  # R03: the user PIN and the keys keep working
        (E(so_tries=0, user_tries=0, keys=1), False),
        (E(options=TRANSPORT, keys=1), True),  # change the transport PIN, then log in
        (E(keys=0), False),
    ],
)
def test_keys_usable(state, usable):
    assert keys_usable(state, SMARTCARD_HSM) is usable


def test_unknown_behaviours_are_resolved_towards_the_worse_and_a_resolved_profile_is_kept():
    worst = worst_case(SMARTCARD_HSM)
    assert worst.is_resolved and worst.so_success_restores is False and worst.rrc_disabled_spends_so_try is True
    assert worst_case(EMULATOR_DEFAULTS) is EMULATOR_DEFAULTS
    # The forum thread's token: the re-initialization reads so-success-restores (7 < 15 tries).
    erase = next(d for d in find_dangers(E(so_tries=7, user_tries=2, keys=2), SMARTCARD_HSM).dangers if d.loss.id == ERASED)
    assert "so-success-restores" in erase.route.depends
    same = find_dangers(E(so_tries=7, user_tries=2, keys=2), EMULATOR_DEFAULTS)
    assert {(d.loss.id, d.steps_away) for d in same.dangers} >= {(SO, 7), (UNUSABLE, 9), (ERASED, 1)}


def test_every_state_affecting_open_behaviour_has_a_worst_case():
    assert set(STATE_AFFECTING) <= set(WORST_CASE)
