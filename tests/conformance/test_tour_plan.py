"""The transition tour's plan: complete for what the target allows, deterministic, short, and on a
real token inside the interlocks."""

from __future__ import annotations

import pytest

from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.conformance.tour import TourLimits, plan_tour
from hsm_lifecycle.model import paths
from hsm_lifecycle.model.explorer import explore
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.profiles import EMULATOR_DEFAULTS, SMARTCARD_HSM
from hsm_lifecycle.model.states import ExtState

EMULATOR = TourLimits(max_cost="operator", portal=True)
OWNER_TOKEN = ExtState.initialized(keys=1)
REAL_NO_SERIAL = TourLimits(max_cost="tries", so_floor=5, initialize=False, renewable=False)


def walk(plan, profile, start):
    """Every step of the plan through the oracle; returns the outcomes."""
    outcomes = []
    for index, segment in enumerate(plan.segments):
        state = start if index == 0 else ExtState.shipped()
        for cmd in segment:
            outcome = expect(state, cmd, profile)
            outcomes.append(outcome)
            state = outcome.next
    return outcomes


def test_emulator_tour_takes_every_transition_the_explorer_reaches():
    plan = plan_tour(EMULATOR_DEFAULTS, limits=EMULATOR)
    reachable = explore(EMULATOR_DEFAULTS, None, EMULATOR.alphabet(), EMULATOR.bounds, max_cost=EMULATOR.max_cost).transitions
    assert set(plan.covered) >= set(reachable)
    assert {o.transition for o in walk(plan, EMULATOR_DEFAULTS, ExtState.shipped())} == set(plan.covered)
    assert all("not reachable with this device profile" in why or "portal" in why for why in plan.left_out.values())


def test_tour_is_deterministic_and_shorter_than_separate_shortest_paths():
    first, second = plan_tour(EMULATOR_DEFAULTS, limits=EMULATOR), plan_tour(EMULATOR_DEFAULTS, limits=EMULATOR)
    assert first.segments == second.segments
    separate = paths.shortest_paths(EMULATOR_DEFAULTS, None, EMULATOR.alphabet(), EMULATOR.bounds, max_cost=EMULATOR.max_cost)
    assert first.steps < sum(len(p) for p in separate.values()) / 3


def test_real_token_tour_stays_inside_the_interlocks():
    profile = SMARTCARD_HSM.resolve({"so-success-restores": True, "auth-after-init": False, "auth-after-change": False, "rrc-disabled": False, "wrong-pin-ends-session": True})
    plan = plan_tour(profile, OWNER_TOKEN, REAL_NO_SERIAL)
    assert len(plan.segments) == 1, "a real token cannot be renewed"
    outcomes = walk(plan, profile, OWNER_TOKEN)
    assert outcomes, "the free and tries transitions are toured"
    assert all(o.command.name != "initialize" for o in outcomes)
    assert all(o.cost in ("free", "tries") for o in outcomes)
    assert min(o.next.so_tries for o in outcomes) >= 5
    assert plan.left_out["I12"].startswith("INITIALIZE is never sent")


@pytest.mark.parametrize("floor", [5, 14])
def test_floor_limits_the_tour(floor):
    profile = SMARTCARD_HSM.resolve({"so-success-restores": False, "auth-after-init": False, "auth-after-change": False, "rrc-disabled": False, "wrong-pin-ends-session": True})
    limits = TourLimits(max_cost="tries", so_floor=floor, initialize=False, renewable=False)
    outcomes = walk(plan_tour(profile, OWNER_TOKEN, limits), profile, OWNER_TOKEN)
    assert min(o.next.so_tries for o in outcomes) >= floor


def test_emulator_tour_reaches_the_transitions_at_the_update_limit():
    """R13's limit lies five SO-blocked updates deep: the last segments get there and take
    O30, O31, B17 and B18, every step as the oracle walks it from a fresh token."""
    from hsm_lifecycle.protocol import FIRMWARE_UPDATES_WHILE_SO_BLOCKED
    from hsm_lifecycle.model.explorer import Bounds

    limits = TourLimits(max_cost="operator", portal=True, bounds=Bounds(max_keys=1, max_updates=1), counted_updates=FIRMWARE_UPDATES_WHILE_SO_BLOCKED)
    plan = plan_tour(EMULATOR_DEFAULTS, limits=limits)
    at_limit = {"O30", "O31", "B17", "B18"}
    assert at_limit <= set(plan.covered)
    assert {o.transition for o in walk(plan, EMULATOR_DEFAULTS, ExtState.shipped())} == set(plan.covered)
    without = plan_tour(EMULATOR_DEFAULTS, limits=TourLimits(max_cost="operator", portal=True, bounds=Bounds(max_keys=1, max_updates=1)))
    assert not at_limit & set(without.covered)
    assert set(plan.covered) - set(without.covered) == at_limit
    assert plan.steps < 2 * without.steps


def test_the_tour_takes_every_widened_transition_and_the_stateful_test_may_draw_each_input():
    """Decipher, the data object, warm reset, CC00 and the wrong-length PINs are toured (every
    one of their transitions the emulator's profile allows) and are in the stateful test's alphabet."""
    from hsm_lifecycle.model.lifecycle import WIDENED

    plan = plan_tour(EMULATOR_DEFAULTS, limits=EMULATOR)
    # firmware-reset (F..) is reached only through the portal, which these limits leave out
    assert {t.id for t in WIDENED if t.source != "firmware-reset"} <= set(plan.covered)
    toured = walk(plan, EMULATOR_DEFAULTS, ExtState.shipped())
    assert {c.name for c in Command.widened()} <= {o.command.name for o in toured}
    # each wrong_length|over_long row is taken with one of its two variants; verify has both rows
    assert {"wrong_length", "over_long"} <= {o.command.pin for o in toured if o.command.name == "verify_user"}
    assert set(Command.widened()) <= set(Command.alphabet())  # what test_stateful draws from
