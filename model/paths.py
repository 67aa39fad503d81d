"""Command sequences that take a given transition: what the conformance transition tour runs.

`shortest_path_to` minimises the number of commands; `cheapest_path_to` first minimises the
cost class of the most expensive step (so a real token is never spent more than needed),
then the length.
"""

from __future__ import annotations

from typing import Iterable

from hsm_lifecycle.model.cost import COST_CLASSES, OPERATOR, cost_rank
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.explorer import Bounds, explore
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.lifecycle import BY_ID
from hsm_lifecycle.model.profiles import Profile
from hsm_lifecycle.model.states import ExtState


class Unreachable(Exception):
    """No command sequence within the bounds (and cost limit) takes the transition."""


def _known(transition_id: str) -> None:
    if transition_id not in BY_ID:
        raise KeyError(f"unknown transition {transition_id!r}")


def _unreachable(transition_id: str, start: ExtState | None, bounds: Bounds, max_cost: str) -> Unreachable:
    where = "shipped" if start is None else str(start)
    return Unreachable(f"{transition_id} is not reachable from {where} within {bounds} at cost <= {max_cost}")


def shortest_path_to(
    transition_id: str,
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
    max_cost: str = OPERATOR,
) -> list[Command]:
    """The shortest command sequence from `start` (default shipped) whose last step takes it."""
    _known(transition_id)
    found = explore(profile, start, alphabet, bounds, max_cost=max_cost, target=transition_id)
    if transition_id not in found.witnesses:
        raise _unreachable(transition_id, start, bounds, max_cost)
    return found.path_to_transition(transition_id)


def shortest_paths(
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
    max_cost: str = OPERATOR,
) -> dict[str, list[Command]]:
    """For every reachable transition, its shortest command sequence (one exploration)."""
    found = explore(profile, start, alphabet, bounds, max_cost=max_cost)
    return {tid: found.path_to_transition(tid) for tid in sorted(found.witnesses)}


def cheapest_paths(
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
    max_cost: str = OPERATOR,
) -> dict[str, tuple[str, list[Command]]]:
    """For every reachable transition: the cheapest cost class of a path to it, and the
    shortest path at that cost. One exploration per cost class, cheapest first."""
    result: dict[str, tuple[str, list[Command]]] = {}
    for cost in COST_CLASSES[: cost_rank(max_cost) + 1]:
        found = explore(profile, start, alphabet, bounds, max_cost=cost)
        for tid in sorted(found.witnesses):
            if tid not in result:
                result[tid] = (cost, found.path_to_transition(tid))
    return result


def cheapest_path_to(
    transition_id: str,
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
    max_cost: str = OPERATOR,
) -> tuple[str, list[Command]]:
    """(cost class, path): the cheapest way to take the transition, shortest at that cost."""
    _known(transition_id)
    for cost in COST_CLASSES[: cost_rank(max_cost) + 1]:
        found = explore(profile, start, alphabet, bounds, max_cost=cost, target=transition_id)
        if transition_id in found.witnesses:
            return cost, found.path_to_transition(transition_id)
    raise _unreachable(transition_id, start, bounds, max_cost)


def cheapest_costs(
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
) -> dict[str, str]:
    """For every reachable transition, the cost class of the cheapest path that takes it.

    One pass: states are settled cheapest bottleneck first (a bucket queue over the five cost
    classes), so no state is expanded twice. Paths come from `cheapest_path_to`.
    """
    start = ExtState.shipped() if start is None else start
    commands = tuple(Command.alphabet() if alphabet is None else alphabet)
    buckets: list[list[ExtState]] = [[] for _ in COST_CLASSES]
    best: dict[ExtState, int] = {start: 0}
    buckets[0].append(start)
    found: dict[str, int] = {}
    for level, bucket in enumerate(buckets):
        while bucket:
            state = bucket.pop()
            if best[state] < level:
                continue  # settled in a cheaper bucket already
            for command in commands:
                outcome = expect(state, command, profile)
                reach = max(level, cost_rank(outcome.cost))
                if reach < found.get(outcome.transition, len(COST_CLASSES)):
                    found[outcome.transition] = reach
                nxt = outcome.next
                if reach < best.get(nxt, len(COST_CLASSES)) and bounds.admits(start, nxt):
                    best[nxt] = reach
                    buckets[reach].append(nxt)
    return {tid: COST_CLASSES[rank] for tid, rank in sorted(found.items())}
