"""Shortest and cheapest command sequences to a transition (the conformance tour's input)."""

from __future__ import annotations

import pytest
from model_invariants import ALTERNATIVE

from hsm_lifecycle.model import BY_ID, EMULATOR_DEFAULTS, SMARTCARD_HSM, Bounds, Command, ExtState, UnresolvedBehaviour, oracle, paths
from hsm_lifecycle.model.cost import cost_rank
from hsm_lifecycle.model.paths import Unreachable

E = EMULATOR_DEFAULTS
SMALL = Bounds(max_keys=1, max_updates=1)
RRC_ONLY = Command.alphabet(options=(0x0001,))


@pytest.fixture(scope="module")
def tour() -> dict[str, list[Command]]:
    return paths.shortest_paths(E, bounds=SMALL)


def test_every_path_ends_by_taking_its_transition(tour: dict[str, list[Command]]) -> None:
    assert len(tour) > 130
    for tid, path in tour.items():
        assert oracle.run(ExtState.shipped(), path, E)[-1].transition == tid


def test_paths_are_shortest(tour: dict[str, list[Command]]) -> None:
    assert tour["S01"] == [Command.select()]
    assert [str(c) for c in tour["I09"]] == [
        "initialize(so=right,options=0x0001,retries=3)", "verify_user(wrong)", "verify_user(wrong)", "verify_user(wrong)",
    ]  # fmt: skip
    assert len(tour["I14"]) == 1 + 15  # initialize, then 15 wrong codes
    # no shorter path exists: every path one step shorter misses the transition
    assert paths.shortest_path_to("I09", E) == tour["I09"]


def test_shortest_path_to_reaches_the_r13_limit() -> None:
    # From a token whose four SO-blocked updates are spent: one more, then the limit holds.
    start = ExtState(identity=4, so_blocked_updates=4)
    path = paths.shortest_path_to("B18", E, start=start, alphabet=RRC_ONLY, bounds=Bounds(max_keys=1, max_updates=2))
    outcomes = oracle.run(start, path, E)
    assert outcomes[-1].transition == "B18" and outcomes[-1].outputs == {"update-refused-limit"}
    assert [o.transition for o in outcomes].count("B16") + [o.transition for o in outcomes].count("O29") == 1


def test_paths_from_another_start_and_profile() -> None:
    story = ExtState.initialized(so_tries=7, user_tries=2, keys=2)
    path = paths.shortest_path_to("I18", ALTERNATIVE, start=story.but(options=0))
    assert len(path) == 7 and path[-1] == Command.reset_retry_counter("wrong")  # 6 wrong codes of any kind, then RRC
    with pytest.raises(Unreachable):
        paths.shortest_path_to("I18", E, start=story.but(options=0), bounds=SMALL)  # this profile spends nothing
    with pytest.raises(KeyError):
        paths.shortest_path_to("X99", E)


def test_cheapest_path_prefers_restorable_costs() -> None:
    token = ExtState.initialized(keys=1)
    cost, path = paths.cheapest_path_to("U16", E, start=token, alphabet=RRC_ONLY, bounds=SMALL)
    assert cost == "tries" and [c.name for c in path] == ["verify_user"] * 3 + ["reset_retry_counter"]
    cost, path = paths.cheapest_path_to("O05", E, start=token, alphabet=RRC_ONLY, bounds=SMALL)
    assert cost == "irreversible" and len(path) == 16
    with pytest.raises(Unreachable):
        paths.cheapest_path_to("O05", E, start=token, alphabet=RRC_ONLY, bounds=SMALL, max_cost="wipes")
    assert paths.shortest_path_to("O05", E, start=token, alphabet=RRC_ONLY, bounds=SMALL, max_cost="irreversible") == path


def test_cheapest_paths_agree_with_cheapest_costs() -> None:
    token = ExtState.initialized(keys=1)
    full = paths.cheapest_paths(E, start=token, alphabet=RRC_ONLY, bounds=SMALL)
    costs = paths.cheapest_costs(E, start=token, alphabet=RRC_ONLY, bounds=SMALL)
    assert {tid: c for tid, (c, _) in full.items()} == costs
    for tid, (cost, path) in full.items():
        outcomes = oracle.run(token, path, E)
        assert outcomes[-1].transition == tid
        assert max(cost_rank(o.cost) for o in outcomes) == cost_rank(cost) == cost_rank(costs[tid])
        assert cost_rank(BY_ID[tid].cost) <= cost_rank(cost)


def test_paths_need_a_resolved_profile() -> None:
    with pytest.raises(UnresolvedBehaviour):
        paths.shortest_path_to("I09", SMARTCARD_HSM)
