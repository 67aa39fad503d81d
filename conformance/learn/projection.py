"""The model projected onto a learning alphabet: a finite Mealy machine to diff against.

Breadth-first over the model's oracle from the start state (what a reset of the target
produces), one transition per (state, input), with the key bound of the alphabet applied
exactly as the SUL applies it. Outputs are the *sets* the oracle admits: with a fully resolved
profile (the emulator's defaults) most are single status words; the rest are sets the rules
leave open on purpose ("sign without a key: 6A88, 6A82 or 6982"), and the diff accepts any
member. The machine is then minimised (the extended state carries variables the alphabet
cannot see, such as the identity generation), so its size compares with the learned one.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from hsm_lifecycle.conformance.learn.alphabet import KEY_BOUND, LearningAlphabet
from hsm_lifecycle.model.commands import GENERATE_KEY, Command
from hsm_lifecycle.model.oracle import expect
from hsm_lifecycle.model.profiles import REFUSED, Profile
from hsm_lifecycle.model.states import ExtState

KEY_BOUND_TRANSITION = "key-bound"  # the pseudo-transition of a generate_key not sent


@dataclass(frozen=True)
class Edge:
    """One projected transition: where it goes and what the model admits on the way."""

    target: int
    outputs: frozenset[str]
    transition: str  # model transition id, or KEY_BOUND_TRANSITION
    rules: tuple[str, ...]
    open: str | None

    @property
    def label(self) -> str:
        return output_label(self.outputs)

    def admits(self, output: str) -> bool:
        return output in self.outputs or (REFUSED in self.outputs and output != "9000" and _is_sw(output))


def _is_sw(text: str) -> bool:
    return len(text) == 4 and all(ch in "0123456789ABCDEF" for ch in text)


def output_label(outputs: frozenset[str]) -> str:
    """The text a diagram and a report show: one SW, or the admitted set ("6982|6A82")."""
    return "|".join(sorted("!9000" if o == REFUSED else o for o in outputs))


@dataclass(frozen=True)
class ModelStep:
    """One step of the model itself (not of the minimised machine): exact extended states."""

    before: ExtState
    command: Command
    outputs: frozenset[str]
    transition: str
    rules: tuple[str, ...]
    open: str | None
    after: ExtState


@dataclass(frozen=True)
class Projection:
    alphabet: tuple[Command, ...]
    profile: Profile
    max_keys: int
    start: ExtState
    states: tuple[ExtState, ...]  # a representative per state (the first BFS reached); 0 = initial
    edges: tuple[tuple[Edge, ...], ...]  # [state][input index]
    access: tuple[tuple[Command, ...], ...]  # a shortest input sequence reaching each state
    extended_states: int  # distinct extended states before minimisation
    open_sets: int  # transitions whose output is a set (decided by the device, not the model)

    @property
    def size(self) -> int:
        return len(self.states)

    def index(self, command: Command) -> int:
        return self.alphabet.index(command)

    def walk(self, inputs: tuple[Command, ...] | list[Command]) -> list[tuple[int, Edge]]:
        """(source state, edge) per input, from the initial state."""
        out, state = [], 0
        for command in inputs:
            edge = self.edges[state][self.index(command)]
            out.append((state, edge))
            state = edge.target
        return out

    def run_model(self, inputs: tuple[Command, ...] | list[Command]) -> list[ModelStep]:
        """The model's own steps along `inputs` from the start state, key bound applied."""
        steps, state = [], self.start
        for command in inputs:
            nxt, outputs, tid, rules, open_ = _step(state, command, self.profile, self.max_keys)
            steps.append(ModelStep(state, command, outputs, tid, rules, open_, nxt))
            state = nxt
        return steps


def _step(state: ExtState, command: Command, profile: Profile, max_keys: int) -> tuple[ExtState, frozenset[str], str, tuple[str, ...], str | None]:
    if command.name == GENERATE_KEY and state.keys >= max_keys:
        return state, frozenset({KEY_BOUND}), KEY_BOUND_TRANSITION, (), None
    outcome = expect(state, command, profile)
    return outcome.next, outcome.outputs, outcome.transition, outcome.rules, outcome.open


def project(alphabet: LearningAlphabet, profile: Profile, start: ExtState | None = None) -> Projection:
    """The model's Mealy machine over `alphabet`, minimised. Raises model.profiles
    UnresolvedBehaviour if a reachable step depends on an open behaviour the profile leaves unknown."""
    start = ExtState.shipped() if start is None else start
    commands = alphabet.commands
    index: dict[ExtState, int] = {start: 0}
    order: list[ExtState] = [start]
    access: list[tuple[Command, ...]] = [()]
    raw: list[list[tuple[int, frozenset[str], str, tuple[str, ...], str | None]]] = []
    queue = deque([start])
    while queue:
        state = queue.popleft()
        row = []
        for command in commands:
            nxt, outputs, tid, rules, open_ = _step(state, command, profile, alphabet.max_keys)
            if nxt not in index:
                index[nxt] = len(order)
                order.append(nxt)
                access.append((*access[index[state]], command))
                queue.append(nxt)
            row.append((index[nxt], outputs, tid, rules, open_))
        raw.append(row)
    block = _minimise(raw)
    # Blocks numbered by their first (BFS-earliest, so shortest-access) member; 0 stays initial.
    first: dict[int, int] = {}
    for i, b in enumerate(block):
        first.setdefault(b, i)
    renumber = {b: n for n, b in enumerate(sorted(first, key=first.__getitem__))}
    reps = sorted(first.values())
    edges = tuple(
        tuple(Edge(renumber[block[t]], outputs, tid, rules, open_) for t, outputs, tid, rules, open_ in raw[rep])
        for rep in reps
    )
    return Projection(
        alphabet=commands,
        profile=profile,
        max_keys=alphabet.max_keys,
        start=start,
        states=tuple(order[r] for r in reps),
        edges=edges,
        access=tuple(access[r] for r in reps),
        extended_states=len(order),
        open_sets=sum(1 for row in edges for e in row if len(e.outputs) > 1 or REFUSED in e.outputs),
    )


def _minimise(raw: list[list[tuple[int, frozenset[str], str, tuple[str, ...], str | None]]]) -> list[int]:
    """Moore's partition refinement: states with the same admitted outputs on every input,
    whose successors stay together, are one state. Returns a block number per state."""
    signature = [tuple(sorted(e[1]) for e in row) for row in raw]
    names: dict[object, int] = {}
    block = [names.setdefault(tuple(map(tuple, s)), len(names)) for s in signature]
    while True:
        keyed = [(block[i], tuple(block[e[0]] for e in raw[i])) for i in range(len(raw))]
        names = {}
        refined = [names.setdefault(k, len(names)) for k in keyed]
        if len(names) == len(set(block)):
            return refined
        block = refined
