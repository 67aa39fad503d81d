"""Exhaustive exploration of the extended state space proves the lifecycle invariants."""

from __future__ import annotations

from dataclasses import replace

import pytest
from model_invariants import ALTERNATIVE, Checker, Explored

from hsm_lifecycle.model import (
    BY_ID,
    EMULATOR_DEFAULTS,
    RULES,
    STATES,
    TRANSITIONS,
    Bounds,
    Command,
    ExtState,
    catalog,
    expect,
)
from hsm_lifecycle.model.catalog import CHECKED_OUTSIDE_ALPHABET
from hsm_lifecycle.model.cost import COST_CLASSES, cost_rank
from hsm_lifecycle.model.paths import cheapest_costs


def test_every_step_of_every_exploration_keeps_the_invariants(explorations: tuple[Explored, ...]) -> None:
    for run in explorations:
        assert run.violations == (), f"{run.label}:\n" + "\n".join(run.violations)
        assert run.exploration.steps == len(run.exploration.states) * len(run.exploration.alphabet)


def test_explorations_are_big_enough_to_mean_something(explorations: tuple[Explored, ...]) -> None:
    sizes = {run.label: len(run.exploration.states) for run in explorations}
    assert min(sizes.values()) > 400 and sum(sizes.values()) > 6_000, sizes
    assert max(s.keys for s in explorations[1].exploration.states) == 3
    assert max(s.identity for s in explorations[0].exploration.states) == 5
    assert max(s.so_blocked_updates for s in explorations[0].exploration.states) == 5
    assert {s.user_max for s in explorations[2].exploration.states if s.is_initialized} == {1, 10}


def test_every_abstract_state_is_reachable(explorations: tuple[Explored, ...]) -> None:
    for run in explorations:
        expected = set(STATES) if run.exploration.bounds.max_updates else set(STATES) - {"firmware-reset"}
        assert run.exploration.abstract_states == expected, run.label


def test_every_transition_is_taken_by_some_profile(explorations: tuple[Explored, ...]) -> None:
    taken = set().union(*(run.exploration.transitions for run in explorations))
    assert taken == set(BY_ID), sorted(set(BY_ID) - taken)


def test_profile_dependent_transitions_follow_the_profile(explorations: tuple[Explored, ...]) -> None:
    default, alternative = explorations[1].exploration.transitions, explorations[3].exploration.transitions
    # rrc-disabled: the emulator spends no SO try (I16), the alternative spends one (I17, I18).
    assert {"I16", "U13"} <= default and not {"I17", "I18", "U14", "U15"} & default
    assert {"I17", "I18", "U14", "U15"} <= alternative and not {"I16", "U13"} & alternative


def test_every_rule_is_exercised_by_a_transition() -> None:
    exercised = {r for t in TRANSITIONS for r in t.rules}
    # R22 (malformed commands) lives outside the abstract alphabet: its checks send raw APDUs.
    assert exercised | {"R22"} == set(RULES) and "R22" in CHECKED_OUTSIDE_ALPHABET
    assert all(r in RULES for t in TRANSITIONS for r in t.rules)


def test_the_model_is_total_in_every_explored_state(explorations: tuple[Explored, ...]) -> None:
    # explore() evaluates every command of the alphabet in every state it reaches; the
    # alphabet holds every command name.
    names = {c.name for c in explorations[-1].exploration.alphabet}
    assert names == {c.name for c in Command.alphabet()} and len(names) == 23


def test_so_counter_only_rises_through_a_correct_so_pin_when_the_profile_says_so() -> None:
    # The restoring profile: a wrong then a right SO-PIN brings 15 back; the other keeps 14.
    state = ExtState.initialized()
    for profile, expected in ((EMULATOR_DEFAULTS, 15), (ALTERNATIVE, 14)):
        checker = Checker(profile)
        s = state
        for command in (Command.change_so_pin("wrong"), Command.change_so_pin("right")):
            outcome = expect(s, command, profile)
            checker.check(outcome)
            s = outcome.next
        assert s.so_tries == expected and checker.violations == []


def test_the_checker_catches_a_broken_step() -> None:
    # The invariants are not vacuous: a forged outcome that re-initializes with a wrong code fails.
    real = expect(ExtState.initialized(keys=2), Command.initialize("wrong"), EMULATOR_DEFAULTS)
    forged = replace(real, outputs=frozenset({"9000"}), next=ExtState.initialized())
    checker = Checker(EMULATOR_DEFAULTS)
    checker.check(forged)
    assert any("R01" in v for v in checker.violations), checker.violations


def test_both_blocked_is_left_only_by_a_firmware_update() -> None:
    for keys in (0, 2):
        for transport in (False, True):
            s = ExtState.initialized(so_tries=0, user_tries=0, keys=keys, options=0x0003 if transport else 0x0001)
            for command in Command.alphabet():
                for profile in (EMULATOR_DEFAULTS, ALTERNATIVE):
                    after = expect(s, command, profile).next.abstract
                    assert (after != "both-blocked") == (command.name == "firmware_update"), (command, s)


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_each_rule_can_be_checked_at_its_catalogued_cost(rule_id: str, rule_costs: dict[str, str]) -> None:
    """The catalog never claims a rule is cheaper to check than the model allows."""
    rule = RULES[rule_id]
    reachable = [cost_rank(rule_costs[t.id]) for t in TRANSITIONS if rule_id in t.rules and t.id in rule_costs]
    if not reachable and rule_id in CHECKED_OUTSIDE_ALPHABET:
        return  # judged only by APDUs outside the alphabet (malformed commands): no model path
    assert reachable, f"no transition exercising {rule_id} is reachable"
    cheapest = COST_CLASSES[min(reachable)]
    if rule_id in CHECKED_OUTSIDE_ALPHABET:
        assert cost_rank(rule.cost) <= cost_rank(cheapest)
    else:
        assert cost_rank(cheapest) <= cost_rank(rule.cost), f"{rule_id}: model needs {cheapest}, catalog says {rule.cost}"


def test_blocking_the_so_pin_is_irreversible_everywhere(rule_costs: dict[str, str]) -> None:
    for t in TRANSITIONS:
        if t.dest in ("so-blocked", "both-blocked") and t.source in ("initialized", "user-blocked"):
            if t.trigger != "verify_user" and t.trigger != "change_user_pin":
                assert t.cost == "irreversible", t


@pytest.fixture(scope="module")
def rule_costs() -> dict[str, str]:
    """Cheapest cost of each transition from a shipped token or a working initialized one."""
    best: dict[str, str] = {}
    for start in (ExtState.shipped(), ExtState.initialized(keys=1)):
        for tid, cost in cheapest_costs(EMULATOR_DEFAULTS, start, bounds=Bounds(1, 1)).items():
            if tid not in best or cost_rank(cost) < cost_rank(best[tid]):
                best[tid] = cost
    return best
