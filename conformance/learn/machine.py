"""A learned Mealy machine as a plain table, numbered breadth-first from the initial state.

AALpy's MealyMachine is a graph of state objects; the diff, the renderer and the summary want
indices they can compare and write down. Inputs are the alphabet's `Command`s in its order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from aalpy.automata import MealyMachine

from hsm_lifecycle.model.commands import Command


@dataclass(frozen=True)
class LearnedMachine:
    alphabet: tuple[Command, ...]
    outputs: tuple[tuple[str, ...], ...]  # [state][input index]
    targets: tuple[tuple[int, ...], ...]  # [state][input index]; state 0 is initial

    @property
    def size(self) -> int:
        return len(self.outputs)

    @property
    def transitions(self) -> int:
        return self.size * len(self.alphabet)

    def run(self, inputs: tuple[Command, ...] | list[Command]) -> list[str]:
        state, out = 0, []
        for command in inputs:
            i = self.alphabet.index(command)
            out.append(self.outputs[state][i])
            state = self.targets[state][i]
        return out

    @classmethod
    def from_aalpy(cls, machine: MealyMachine, alphabet: tuple[Command, ...]) -> "LearnedMachine":
        """`machine` is over the commands' string forms (see DeviceSUL)."""
        number = {machine.initial_state: 0}
        order = [machine.initial_state]
        queue = deque(order)
        while queue:
            state = queue.popleft()
            for command in alphabet:
                nxt = state.transitions[str(command)]
                if nxt not in number:
                    number[nxt] = len(order)
                    order.append(nxt)
                    queue.append(nxt)
        return cls(
            alphabet=alphabet,
            outputs=tuple(tuple(str(s.output_fun[str(c)]) for c in alphabet) for s in order),
            targets=tuple(tuple(number[s.transitions[str(c)]] for c in alphabet) for s in order),
        )
