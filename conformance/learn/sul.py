"""The device as an AALpy system under learning: abstract commands in, abstract outputs out.

Every query starts from a reset the target provides (a freshly manufactured in-memory token
for the emulator). The SUL keeps its own prefix tree of everything the device answered and is
lazy: a query is answered from the tree while it can be, and only a step the tree does not
know opens a device session, replays the prefix and goes on. Equivalence-oracle tests, which
AALpy's own cache does not cover, so cost only their new suffixes. A replay that answers
differently from the tree means the device is not deterministic at this abstraction, and
learning stops (NonDeterminism) rather than learn a wrong machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

from aalpy.base import SUL

from hsm_lifecycle.conformance.learn.alphabet import KEY_BOUND, LearningAlphabet
from hsm_lifecycle.conformance.mapper import Mapper
from hsm_lifecycle.conformance.trace import TraceRecorder
from hsm_lifecycle.conformance.transport.base import Response, Transport, TransportWrapper
from hsm_lifecycle.model.commands import GENERATE_KEY, INITIALIZE, Command
from hsm_lifecycle.model.profiles import Profile
from hsm_lifecycle.model.states import ExtState

OK = "9000"


class NonDeterminism(Exception):
    """The device answered one input sequence in two ways."""


class LearningAborted(Exception):
    """The target cannot go on safely (a real token left the states the learner may visit)."""


@dataclass
class LearningCost:
    """What learning cost the device: the numbers to compare with other studies."""

    resets: int = 0  # device sessions opened: the queries that reached the device
    steps: int = 0  # abstract commands executed on the device (replays included)
    apdus: int = 0  # command APDUs transmitted
    cached_queries: int = 0  # queries answered wholly from the prefix tree

    def to_dict(self) -> dict[str, int]:
        return {"resets": self.resets, "steps": self.steps, "apdus": self.apdus, "cached_queries": self.cached_queries}


class CountingTransport(TransportWrapper):
    """Counts the command APDUs that reach the device."""

    def __init__(self, inner: Transport, cost: LearningCost) -> None:
        super().__init__(inner)
        self.cost = cost

    def transmit(self, capdu: bytes) -> Response:
        self.cost.apdus += 1
        return self.inner.transmit(capdu)

    # The mapper tells a guarding transport which keys it made; pass that on.
    def note_generated(self, key_id: int) -> None:
        note = getattr(self.inner, "note_generated", None)
        if note is not None:
            note(key_id)

    def note_deleted(self, key_id: int) -> None:
        note = getattr(self.inner, "note_deleted", None)
        if note is not None:
            note(key_id)


@dataclass
class DeviceSession:
    """One query's worth of device: the mapper on a freshly reset target."""

    mapper: Mapper
    max_keys: int
    uninitialized: bool  # from the device's own answers: an accepted INITIALIZE ends it
    recorder: TraceRecorder | None = None
    watch: Callable[[Command, str], None] | None = None  # sees every answer; may raise LearningAborted

    def execute(self, command: Command) -> str:
        # The key bound (alphabet.py): no key beyond max_keys. The count is the device's own
        # (ENUMERATE OBJECTS, a free read), not the mapper's record, so a device that keeps
        # keys it should have erased shows it here too. The device key CC00 does not count.
        if command.name == GENERATE_KEY:
            held = self.mapper.key_ids()
            if held is not None and len(held) >= self.max_keys:
                return KEY_BOUND
        output = self.mapper.run(command, uninitialized=self.uninitialized)
        if command.name == INITIALIZE and output == OK:
            self.uninitialized = False
        if self.watch is not None:
            self.watch(command, output)
        return output


class Target(ABC):
    """Something that can be reset to one known state, again and again."""

    kind: str

    @abstractmethod
    def open_session(self, alphabet: LearningAlphabet, cost: LearningCost, recorder: TraceRecorder | None = None) -> DeviceSession:
        """Reset the device to the start state and return a session on it."""

    def close_session(self, session: DeviceSession) -> None:
        session.mapper.transport.close()

    @abstractmethod
    def start_state(self) -> ExtState:
        """The model's extended state a reset produces (where the projection starts)."""

    @property
    @abstractmethod
    def model_profile(self) -> Profile:
        """The model profile to project with: fully resolved for this target."""

    @abstractmethod
    def describe(self) -> dict[str, object]:
        """The target as the summary shows it."""

    def finish(self) -> None:
        """Leave the device as the user should find it after learning (nothing by default)."""


class _Node:
    __slots__ = ("output", "children")

    def __init__(self, output: str | None) -> None:
        self.output = output
        self.children: dict[str, _Node] = {}


class DeviceSUL(SUL):
    """AALpy SUL over a target, with a lazy prefix-tree cache (see the module docstring).

    Letters are the commands' string forms: AALpy hashes letters tens of millions of times
    in a large learn, and strings cache their hash where a dataclass recomputes it."""

    def __init__(self, target: Target, alphabet: LearningAlphabet, cost: LearningCost | None = None) -> None:
        super().__init__()
        self.target = target
        self.alphabet = alphabet
        self.commands: dict[str, Command] = {str(c): c for c in alphabet.commands}
        self.cost = LearningCost() if cost is None else cost
        self._root = _Node(None)
        self._node = self._root
        self._word: list[str] = []
        self._session: DeviceSession | None = None

    def pre(self) -> None:
        self._node = self._root
        self._word = []
        self._session = None

    def post(self) -> None:
        if self._session is not None:
            self.target.close_session(self._session)
            self._session = None
        elif self._word:
            self.cost.cached_queries += 1

    @property
    def letters(self) -> list[str]:
        return list(self.commands)

    def step(self, letter: str) -> str:
        self._word.append(letter)
        known = self._node.children.get(letter)
        if self._session is None:
            if known is not None:
                self._node = known
                return known.output  # type: ignore[return-value]
            self._open_and_replay()
        output = self._execute(letter)
        if known is None:
            known = self._node.children[letter] = _Node(output)
        elif known.output != output:
            raise NonDeterminism(self._disagreement(self._word, known.output, output))
        self._node = known
        return output

    def _open_and_replay(self) -> None:
        self._session = self.target.open_session(self.alphabet, self.cost)
        self.cost.resets += 1
        node = self._root
        prefix = self._word[:-1]
        for i, command in enumerate(prefix):
            node = node.children[command]
            output = self._execute(command)
            if output != node.output:
                raise NonDeterminism(self._disagreement(prefix[: i + 1], node.output, output))

    def _execute(self, letter: str) -> str:
        assert self._session is not None
        self.cost.steps += 1
        return self._session.execute(self.commands[letter])

    @staticmethod
    def _disagreement(word: list[str], before: str | None, now: str) -> str:
        inputs = ", ".join(word)
        return f"the device answered [{inputs}] with {before} once and {now} now: it is not deterministic at this abstraction"

    @property
    def tree_steps(self) -> int:
        """Distinct (prefix, input) pairs the device has answered."""
        count, stack = 0, [self._root]
        while stack:
            node = stack.pop()
            count += len(node.children)
            stack.extend(node.children.values())
        return count
