"""Exhaustive breadth-first exploration of the extended state space, through the oracle.

Bounded: key counts and firmware updates grow without limit on a real token, so successors
beyond `Bounds` are not expanded (their step is still evaluated and reported). Breadth-first
order makes the first witness of every state and transition a shortest one.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Iterable, Mapping

from hsm_lifecycle.model.cost import COST_CLASSES, OPERATOR, cost_rank
from hsm_lifecycle.model.commands import Command
from hsm_lifecycle.model.oracle import Outcome, expect
from hsm_lifecycle.model.profiles import Profile, UnresolvedBehaviour
from hsm_lifecycle.model.states import ExtState


@dataclass(frozen=True, slots=True)
class Bounds:
    max_keys: int = 3
    max_updates: int = 5  # firmware updates beyond the start state's identity generation

    def admits(self, start: ExtState, s: ExtState) -> bool:
        return s.keys <= self.max_keys and s.identity - start.identity <= self.max_updates


@dataclass(frozen=True)
class Exploration:
    profile: Profile
    start: ExtState
    alphabet: tuple[Command, ...]
    bounds: Bounds
    max_cost: str
    parents: Mapping[ExtState, tuple[ExtState, Command] | None]  # breadth-first tree
    witnesses: Mapping[str, tuple[ExtState, Command]]  # first state + command taking each transition
    steps: int  # (state, command) pairs evaluated
    pruned: int  # successors outside the bounds, not expanded
    seconds: float
    complete: bool  # False when stopped early at a target transition

    @property
    def states(self) -> frozenset[ExtState]:
        return frozenset(self.parents)

    @property
    def abstract_states(self) -> frozenset[str]:
        return frozenset(s.abstract for s in self.parents)

    @property
    def transitions(self) -> frozenset[str]:
        return frozenset(self.witnesses)

    def path_to_state(self, target: ExtState) -> list[Command]:
        """The shortest command sequence from the start to `target` (KeyError if unexplored)."""
        path: list[Command] = []
        link = self.parents[target]
        while link is not None:
            previous, command = link
            path.append(command)
            link = self.parents[previous]
        path.reverse()
        return path

    def path_to_transition(self, transition_id: str) -> list[Command]:
        """The shortest command sequence whose last command takes `transition_id`."""
        state, command = self.witnesses[transition_id]
        return [*self.path_to_state(state), command]


def explore(
    profile: Profile,
    start: ExtState | None = None,
    alphabet: Iterable[Command] | None = None,
    bounds: Bounds = Bounds(),
    *,
    max_cost: str = OPERATOR,
    on_step: Callable[[Outcome], None] | None = None,
    target: str | None = None,
    skip_unresolved: bool = False,
) -> Exploration:
    """Visit every state reachable from `start` (default: shipped) within `bounds`.

    Only transitions of cost class `max_cost` or cheaper are followed. `on_step` sees the
    outcome of every (state, command) pair evaluated; `target` stops at the first step that
    takes that transition. The profile must be resolved for every step reached, unless
    `skip_unresolved`: then a step whose next state hangs on an open behaviour the profile
    leaves unknown is not taken (a campaign cannot predict it, so it does not plan it).
    """
    if max_cost not in COST_CLASSES:
        raise ValueError(f"unknown cost class {max_cost!r}")
    start = ExtState.shipped() if start is None else start
    commands = tuple(Command.alphabet() if alphabet is None else alphabet)
    limit = cost_rank(max_cost)
    rank: dict[str, int] = {c: cost_rank(c) for c in COST_CLASSES}
    parents: dict[ExtState, tuple[ExtState, Command] | None] = {start: None}
    witnesses: dict[str, tuple[ExtState, Command]] = {}
    queue = deque([start])
    steps = pruned = 0
    began = time.perf_counter()
    complete = True
    while queue:
        state = queue.popleft()
        for command in commands:
            try:
                outcome = expect(state, command, profile)
            except UnresolvedBehaviour:
                if not skip_unresolved:
                    raise
                continue
            steps += 1
            if on_step is not None:
                on_step(outcome)
            if rank[outcome.cost] > limit:
                continue
            if outcome.transition not in witnesses:
                witnesses[outcome.transition] = (state, command)
                if outcome.transition == target:
                    complete = False
                    queue.clear()
                    break
            nxt = outcome.next
            if nxt in parents:
                continue
            if not bounds.admits(start, nxt):
                pruned += 1
                continue
            parents[nxt] = (state, command)
            queue.append(nxt)
    return Exploration(
        profile=profile,
        start=start,
        alphabet=commands,
        bounds=bounds,
        max_cost=max_cost,
        parents=MappingProxyType(parents),
        witnesses=MappingProxyType(witnesses),
        steps=steps,
        pruned=pruned,
        seconds=time.perf_counter() - began,
        complete=complete,
    )
